#!/bin/bash
# Benchmark 2 of docs/benchmarks-cluster.md: training step time and time to accuracy on an
# emulated cluster at 1 Gbit/s (decent-cluster), mlp-large (5.8M parameters) on Fashion-MNIST.
# For every host count it runs PmSGD (allreduce) and D-SGD / DecentLaM on the one-peer
# exponential graph (overlap on, the default), each with a timeline, plus Local SGD with a
# period longer than the run (no communication during training) as the compute-only reference
# for the time spent waiting on communication. One metrics JSON per run in $RESULTS. Overlap of
# the neighbour average with the gradient computation exists for adapt-with-combine algorithms
# (awc-dmsgd, dsgd-awc); D-SGD and DecentLaM (adapt-then-combine) communicate after the step.
#
#   BUILD_DIR=build RESULTS=bench/results/cluster_train bench/cluster_train.sh
#
# Environment: BUILD_DIR (build), RESULTS (bench/results/cluster_train), HOSTS ("4 8"),
# RATE (1gbit), ALGORITHMS ("pmsgd awc-dmsgd dsgd decentlam local-sgd"), EPOCHS (6), STEPS (40 steps per
# epoch), BATCH (32 per rank), LR (0.05).
set -eu
BUILD_DIR=${BUILD_DIR:-build}
RESULTS=${RESULTS:-bench/results/cluster_train}
HOSTS=${HOSTS:-4 8}
RATE=${RATE:-1gbit}
ALGORITHMS=${ALGORITHMS:-pmsgd awc-dmsgd dsgd decentlam local-sgd}
EPOCHS=${EPOCHS:-6}
STEPS=${STEPS:-40}
BATCH=${BATCH:-32}
LR=${LR:-0.05}
BIN=$BUILD_DIR/bin
TIMELINES=${TIMELINES:-/tmp/decent_cluster_train_timelines}
mkdir -p "$RESULTS" "$TIMELINES"

for n in $HOSTS; do
  for alg in $ALGORITHMS; do
    echo "== $RATE, $n hosts, $alg: $(uptime)"
    rm -f "$TIMELINES/${alg}_n${n}_"*.json
    "$BIN/decent-cluster" run -q -n "$n" --rate "$RATE" --name btrain -- \
      --timeline "$TIMELINES/${alg}_n${n}_" \
      "$BIN/decent-train" --model mlp-large --dataset fashion-mnist --partition iid \
      --algorithm "$alg" --topology one-peer-exponential --batch-size "$BATCH" --lr "$LR" \
      --momentum 0.9 --lr-schedule constant --epochs "$EPOCHS" --max-steps-per-epoch "$STEPS" \
      --period 1000000 --eval-every 1 --eval-samples 2000 --seed 1 \
      --metrics "$RESULTS/${alg}_n${n}.json" || echo "== $alg on $n hosts failed with status $?"
    /usr/bin/python3 "$(dirname "$0")/timeline_comm.py" "$TIMELINES/${alg}_n${n}_"*.json \
      >"$RESULTS/${alg}_n${n}_timeline.txt"
    cat "$RESULTS/${alg}_n${n}_timeline.txt"
  done
done
echo "== done: $(uptime)"
