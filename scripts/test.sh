#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit tests, local-backend and multi-process
# MPI tests) with ctest. Extra arguments go to ctest, e.g. scripts/test.sh -R topology.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@"
