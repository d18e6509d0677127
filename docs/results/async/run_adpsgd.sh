#!/bin/sh
# The AD-PSGD row of the straggler table, rerun after the epoch end of asynchronous methods
# moved to a one-sided step counter (same settings as run_straggler.sh).
set -e
OUT=docs/results/async
COMMON="--model cnn --batch-size 32 --lr 0.05 --momentum 0.9 --epochs 1 --max-steps-per-epoch 60 \
        --eval-samples 2000 --topology ring --partition iid --seed 1 --quiet"
for slowdown in 1 2 10 100; do
  straggler=""
  if [ "$slowdown" != 1 ]; then straggler="--slow-rank 3 --slowdown $slowdown"; fi
  echo "ad-psgd x$slowdown (rerun) $(uptime)" >> $OUT/load.txt
  build-async/bin/decentrun -np 8 build-async/bin/decent-train $COMMON --algorithm ad-psgd \
      $straggler --metrics $OUT/straggler_ad-psgd_x${slowdown}.json
done
