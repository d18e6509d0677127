#!/bin/bash
# Time and bytes per training step, compressed vs uncompressed, on an emulated cluster
# (decent-cluster) at 1 Gbit/s: D-SGD against CHOCO-SGD and DeepSqueeze with QSGD at 8/4/2 bits
# and top-k, mlp-large (5.8M parameters) on Fashion-MNIST, ring topology. Each run is short
# (STEPS steps, one evaluation at the end); one metrics JSON per run in $RESULTS. The
# configurations run one after another on one cluster per run, ROUNDS times in turn.
#
#   BUILD_DIR=build RESULTS=bench/results/cluster_compress bench/cluster_compress.sh
#
# A run that has not ended after RUN_TIMEOUT seconds (900) is stopped (an Open MPI launch that
# never starts its ranks was seen once), and the cluster torn down.
# Environment: BUILD_DIR (build), RESULTS, HOSTS ("4"), RATE (1gbit), STEPS (30), BATCH (32),
# ROUNDS (1), FIRST_ROUND (1: the number in the first round's file names), ONLY (tags to run,
# e.g. "dsgd choco_q8"; default all).
set -eu
BUILD_DIR=${BUILD_DIR:-build}
RESULTS=${RESULTS:-bench/results/cluster_compress}
HOSTS=${HOSTS:-4}
RATE=${RATE:-1gbit}
STEPS=${STEPS:-30}
BATCH=${BATCH:-32}
ROUNDS=${ROUNDS:-1}
FIRST_ROUND=${FIRST_ROUND:-1}
ONLY=${ONLY:-}
BIN=$BUILD_DIR/bin
mkdir -p "$RESULTS"

# tag | algorithm | compressor | consensus step (eta as in docs/results.md's compression section)
CONFIGS=(
  "dsgd|dsgd|none|1"
  "choco_q8|choco-sgd|qsgd:s=127,bucket=512,norm=max|1"
  "choco_q4|choco-sgd|qsgd:s=7,bucket=512,norm=max|0.3"
  "choco_q2|choco-sgd|qsgd:s=1,bucket=512,norm=max|0.05"
  "choco_top1|choco-sgd|topk:ratio=0.01|0.3"
  "deepsqueeze_q4|deepsqueeze|qsgd:s=7,bucket=512,norm=max|0.3"
)
for round in $(seq "$FIRST_ROUND" $((FIRST_ROUND + ROUNDS - 1))); do
  for n in $HOSTS; do
    for config in "${CONFIGS[@]}"; do
      IFS='|' read -r tag alg compressor eta <<<"$config"
      [[ -z $ONLY || " $ONLY " == *" $tag "* ]] || continue
      echo "== round $round, $RATE, $n hosts, $tag: $(uptime)"
      extra=()
      [[ $compressor != none ]] && extra=(--compressor "$compressor" --consensus-step "$eta")
      timeout -s TERM "${RUN_TIMEOUT:-900}" "$BIN/decent-cluster" run -q -n "$n" --rate "$RATE" --name bcomp -- \
        "$BIN/decent-train" --model mlp-large --dataset fashion-mnist --partition iid \
        --algorithm "$alg" --topology ring --batch-size "$BATCH" --lr 0.05 \
        --lr-schedule constant --epochs 1 --max-steps-per-epoch "$STEPS" --eval-samples 1000 \
        --seed 1 "${extra[@]}" --metrics "$RESULTS/${tag}_n${n}_r${round}.json" -q ||
        echo "== $tag failed with status $?"
    done
  done
done
echo "== done: $(uptime)"
