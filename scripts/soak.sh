#!/usr/bin/env bash
# Soak test (not in CI): 30 minutes of decentralized training over MPI (4 ranks, DmSGD on the
# one-peer exponential graph, a checkpoint every epoch) while random ranks are paused for up to
# 2 s; samples every rank's RSS and fails on memory growth, a hang or a job that dies.
#   scripts/soak.sh                          # 30 minutes, build/ (built by scripts/build.sh)
#   scripts/soak.sh --minutes 5 --ranks 8 --build build-rel --out /tmp/soak
# Options go to tests/reliability/soak.py (--help lists them). Results: --out/rss.csv, job.log.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tests/reliability/soak.py "$@"
