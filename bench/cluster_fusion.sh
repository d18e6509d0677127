#!/bin/bash
# Benchmark 3 of docs/benchmarks-cluster.md: tensor fusion on an emulated cluster. One-peer
# neighbour averaging of a model made of many tensors (half of them small), fused and unfused,
# against one flat buffer of the same total size, all in the same run (decent-bench-fusion).
#
#   BUILD_DIR=build RESULTS=bench/results bench/cluster_fusion.sh
#
# Environment: BUILD_DIR (build), RESULTS (bench/results), HOSTS (4), RATE (1gbit), REPS (10).
set -eu
BUILD_DIR=${BUILD_DIR:-build}
RESULTS=${RESULTS:-bench/results}
HOSTS=${HOSTS:-4}
RATE=${RATE:-1gbit}
REPS=${REPS:-10}
mkdir -p "$RESULTS"
# total size | tensors | size of each small tensor
for case in "16M 64 1K" "1M 256 1K"; do
  read -r total tensors small <<<"$case"
  echo "== $RATE, $HOSTS hosts, $tensors tensors, $total: $(uptime)"
  timeout -s TERM "${RUN_TIMEOUT:-600}" "$BUILD_DIR/bin/decent-cluster" run -q -n "$HOSTS" --rate "$RATE" --name bfuse -- \
    "$BUILD_DIR/bin/decent-bench-fusion" --total "$total" --tensors "$tensors" --small "$small" \
    --ops flat,fused,unfused --reps "$REPS" --warmup 2 \
    --csv "$RESULTS/cluster_fusion_${RATE}_n${HOSTS}_${tensors}x${total}.csv"
done
echo "== done: $(uptime)"
