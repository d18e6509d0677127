#!/usr/bin/env bash
# Reproduces docs/compression.md: 8 MPI ranks on one machine, Fashion-MNIST, cnn, iid split,
# batch 64 per rank, 2 epochs (234 steps). Usage: docs/results/compression/run.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
out=$(dirname "$0")
common=(--topology ring --model cnn --partition iid --batch-size 64 --epochs 2 --seed 1 --quiet)

run() {  # run NAME decent-train-options...
  local name=$1
  shift
  echo "== $name"
  "$build/bin/decentrun" -np 8 "$build/bin/decent-train" "${common[@]}" "$@" \
    --metrics "$out/$name.json" 2>&1 | grep -E "^(epoch|final|decent-train: error)" | head -8 || true
}

# Decentralized, no momentum, lr 0.1: D-SGD vs the compressed algorithms at 8, 4 and 2 bits
# per element (QSGD with s = 127, 7, 1 levels of the bucket's max |v|, buckets of 512).
run dsgd --algorithm dsgd --lr 0.1
declare -A levels=([8]=127 [4]=7 [2]=1)
declare -A eta=([8]=1.0 [4]=0.3 [2]=0.05)
for bits in 8 4 2; do
  c="qsgd:s=${levels[$bits]},bucket=512,norm=max"
  run "dcd-psgd_${bits}bit" --algorithm dcd-psgd --lr 0.1 --compressor "$c"
  run "deepsqueeze_${bits}bit" --algorithm deepsqueeze --lr 0.1 --compressor "$c" \
    --consensus-step "${eta[$bits]}"
  run "choco-sgd_${bits}bit" --algorithm choco-sgd --lr 0.1 --compressor "$c" \
    --consensus-step "${eta[$bits]}"
done

# Centralized, momentum 0.9, lr 0.05: PmSGD vs DoubleSqueeze (2-bit QSGD, top-1%).
run pmsgd --algorithm pmsgd --lr 0.05 --momentum 0.9
run doublesqueeze_2bit --algorithm doublesqueeze --lr 0.05 --momentum 0.9 \
  --compressor "qsgd:s=1,bucket=512,norm=max"
run doublesqueeze_top1pct --algorithm doublesqueeze --lr 0.05 --momentum 0.9 \
  --compressor "topk:ratio=0.01"
