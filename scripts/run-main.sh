#!/usr/bin/env bash
# The main job: builds (installing dependencies first) and trains a CNN on Fashion-MNIST with
# 4 ranks over Open MPI — DecentLaM on the ring, heterogeneous (Dirichlet)
# data — printing one line per epoch and writing build/main-job-metrics.json.
# Extra arguments go to decent-train (e.g. --epochs 5 --algorithm dmsgd --topology ring).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec build/bin/decentrun -np 4 build/bin/decent-train \
  --algorithm decentlam --topology ring \
  --dataset fashion-mnist --model cnn --partition dirichlet --alpha 0.5 \
  --batch-size 64 --lr 0.05 --momentum 0.9 --epochs 3 \
  --metrics build/main-job-metrics.json "$@"
