#!/usr/bin/env bash
# Runs the communication benchmark (decent-bench-comm) at 2, 4 and 8 ranks, prints its tables and
# writes one CSV per rank count to bench/results/comm_n<N>.csv.
#
#   scripts/bench_comm.sh                      # build into build-bench/, then run n = 2, 4, 8
#   RANKS="4 8" scripts/bench_comm.sh --sizes 4M,16M --reps 50
#
# Extra arguments go to decent-bench-comm (see decent-bench-comm --help). Environment:
#   BUILD_DIR  build directory (default build-bench)   RANKS  rank counts (default "2 4 8")
#   RESULTS    output folder (default bench/results)    SKIP_BUILD=1  use the existing binary
#   LAUNCHER   launcher and its rank-count flag (default: mpiexec ... -n)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-bench}
RANKS=${RANKS:-"2 4 8"}
RESULTS=${RESULTS:-bench/results}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target decent-bench-comm -j "$(nproc)"
fi
BENCH="$BUILD_DIR/bin/decent-bench-comm"
[[ -x "$BENCH" ]] || { echo "bench_comm.sh: $BENCH not found" >&2; exit 1; }

# mpiexec with the flags this machine needs (2 cores, up to 8 ranks, possibly root); LAUNCHER
# replaces it, e.g. LAUNCHER="build-bench/bin/decentrun -np" (the rank count is appended).
if [[ -n "${LAUNCHER:-}" ]]; then
  read -r -a LAUNCH <<<"$LAUNCHER"
else
  LAUNCH=(mpiexec --oversubscribe --bind-to none)
  [[ "$(id -u)" == 0 ]] && LAUNCH+=(--allow-run-as-root)
  LAUNCH+=(-n)
fi

mkdir -p "$RESULTS"
echo "host: $(uname -n), $(nproc) cores, $(uname -sr); $(mpiexec --version | head -1)"
for n in $RANKS; do
  echo
  echo "==== $n ranks ===="
  start=$(date +%s)
  "${LAUNCH[@]}" "$n" "$BENCH" --csv "$RESULTS/comm_n$n.csv" "$@"
  echo "($n ranks took $(( $(date +%s) - start )) s)"
done
