#!/usr/bin/env bash
# The main job: builds (installing dependencies) and runs decentralized training on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
if [ -x build/bin/decent-train ]; then
  exec build/bin/decentrun -np 4 build/bin/decent-train "$@"
fi
build/bin/average_consensus --local 10 "$@"
exec build/bin/decentrun -np 10 build/bin/average_consensus "$@"
