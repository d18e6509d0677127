#!/bin/sh
# The straggler table of docs/async.md: PmSGD, D-SGD and AD-PSGD on 8 MPI ranks, with rank 3
# 1x (no straggler), 2x, 10x and 100x slower. Run from the repository root after building
# decent-train and decentrun in build-async. Each run appends `uptime` to load.txt.
set -e
OUT=docs/results/async
COMMON="--model cnn --batch-size 32 --lr 0.05 --momentum 0.9 --epochs 1 --max-steps-per-epoch 60 \
        --eval-samples 2000 --topology ring --partition iid --seed 1 --quiet"
for slowdown in 1 2 10 100; do
  for alg in pmsgd dsgd ad-psgd; do
    straggler=""
    if [ "$slowdown" != 1 ]; then straggler="--slow-rank 3 --slowdown $slowdown"; fi
    echo "$alg x$slowdown $(uptime)" >> $OUT/load.txt
    build-async/bin/decentrun -np 8 build-async/bin/decent-train $COMMON --algorithm $alg \
        $straggler --metrics $OUT/straggler_${alg}_x${slowdown}.json
  done
done
