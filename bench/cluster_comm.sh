#!/bin/bash
# Benchmark 1 of docs/benchmarks-cluster.md: communication on emulated clusters (decent-cluster).
# For every rate and host count it brings a cluster up, runs decent-bench-comm (MPI_Allreduce,
# our allreduce, one-peer and static exponential neighbour averaging, the raw MPI_Sendrecv
# one-peer exchange) and decent-bench-fusion (the flat buffer on the ring and on one-peer), and
# tears the cluster down; then hierarchical averaging on hosts of 2 ranks. One CSV per run in
# $RESULTS (cluster_comm_<rate>_n<hosts>.csv, cluster_ring_..., cluster_hier_...).
#
#   BUILD_DIR=build RESULTS=bench/results bench/cluster_comm.sh
#
# Environment: BUILD_DIR (build), RESULTS (bench/results), RATES ("1gbit 10gbit"),
# HOSTS ("2 4 8"), HIER_HOSTS ("2 4"), SIZES (1M,4M,16M,64M), REPS (10), LARGE_REPS (5).
set -eu
BUILD_DIR=${BUILD_DIR:-build}
RESULTS=${RESULTS:-bench/results}
RATES=${RATES:-1gbit 10gbit}
HOSTS=${HOSTS:-2 4 8}
HIER_HOSTS=${HIER_HOSTS:-2 4}
SIZES=${SIZES:-1M,4M,16M,64M}
REPS=${REPS:-10}
LARGE_REPS=${LARGE_REPS:-5}
BIN=$BUILD_DIR/bin
mkdir -p "$RESULTS"

bench_comm() {  # rate hosts ranks-per-host ops csv
  "$BIN/decent-cluster" run -q -n "$2" --ranks-per-host "$3" --rate "$1" --name bcomm -- \
    "$BIN/decent-bench-comm" --sizes "$SIZES" --ops "$4" --reps "$REPS" --warmup 1 \
    --large-reps "$LARGE_REPS" --large-warmup 1 --ranks-per-machine "$3" --csv "$5"
}

for rate in $RATES; do
  for n in $HOSTS; do
    echo "== $rate, $n hosts: $(uptime)"
    bench_comm "$rate" "$n" 1 mpi-allreduce,allreduce,mpi-one-peer,one-peer,exponential \
      "$RESULTS/cluster_comm_${rate}_n${n}.csv"
    if [[ $n -gt 2 ]]; then  # at n = 2 the ring is the one-peer exchange
      for size in ${SIZES//,/ }; do
        "$BIN/decent-cluster" run -q -n "$n" --rate "$rate" --name bcomm -- \
          "$BIN/decent-bench-fusion" --total "$size" --tensors 2 --small 4 --ops flat,ring \
          --reps "$LARGE_REPS" --warmup 1 --csv "$RESULTS/cluster_ring_${rate}_n${n}_${size}.csv"
      done
    fi
  done
  for n in $HIER_HOSTS; do
    echo "== $rate, $n hosts x 2 ranks (hierarchical): $(uptime)"
    bench_comm "$rate" "$n" 2 mpi-allreduce,allreduce,one-peer,hierarchical \
      "$RESULTS/cluster_hier_${rate}_n${n}x2.csv"
  done
done
echo "== done: $(uptime)"
