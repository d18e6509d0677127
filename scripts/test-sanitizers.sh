#!/usr/bin/env bash
# Sanitizer and fuzzing stage of CI (after scripts/test.sh), without LibTorch:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan) running the unit tests of
#      topology, comm on the local backend, data, reliability (and compress when it exists);
#   2. ThreadSanitizer build (build-tsan) running the local-backend comm tests: the per-rank
#      communication threads, non-blocking handles, windows and the shared-memory transport;
#   3. a short libFuzzer run of every fuzz target (scripts/fuzz.sh, FUZZ_SECONDS each).
# Any sanitizer report fails the run. Usage: scripts/test-sanitizers.sh [asan] [tsan] [fuzz]
# (default: all three). JOBS sets the build parallelism (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc)}
stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=(asan tsan fuzz)

# halt_on_error: stop at the first report; the -fno-sanitize-recover build flag does the same
# for UBSan. detect_leaks stays on (the default) for ASan.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

elapsed() { echo "$((SECONDS - $1)) s"; }

# configure DIR SANITIZERS: a sanitizer build of the libraries and tests, LibTorch and the
# benchmarks left out. Compile time dominates this stage (Eigen under a sanitizer is slow to
# compile): -O0 with minimal debug information builds such files several times faster than
# -O2 -g, and line tables are all the reports need. The compiler is the project's (g++; CXX
# overrides it).
configure() {
  cmake -S "$root" -B "$root/$1" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DDECENT_SANITIZE="$2" -DDECENT_WITH_TORCH=OFF -DDECENT_BUILD_BENCH=OFF >/dev/null
}

# existing_targets DIR TARGET...: the targets among TARGET... that DIR's build defines.
existing_targets() {
  local dir=$1
  shift
  local all
  all=$(cmake --build "$root/$dir" --target help | sed -n 's/^\([^: ]*\):.*/\1/p')
  for target in "$@"; do
    grep -qx "$target" <<<"$all" && echo "$target"
  done
  return 0
}

# build_and_test DIR LABELS EXCLUDE TARGET...: builds the targets (all that can be built, -k 0)
# and runs the tests with those labels except those matching EXCLUDE; fails when either fails.
build_and_test() {
  local dir=$1 labels=$2 exclude=$3
  shift 3
  local status=0
  cmake --build "$root/$dir" --target "$@" -j "$jobs" -- -k 0 || status=1
  (cd "$root/$dir" &&
    ctest --output-on-failure -j "$jobs" --timeout 300 --no-tests=error -L "$labels" \
      -E "$exclude") || status=1
  return $status
}

run_asan() {
  local start=$SECONDS
  echo "== ASan+UBSan: topology, comm (local backend, allreduce algorithms included), data, reliability, compress"
  configure build-asan "address,undefined"
  mapfile -t targets < <(existing_targets build-asan topology_tests decent-topo comm_local_tests \
    comm_ring_local_tests comm_kernels_tests local_transport_tests local_run_tests comm_window_local_tests data_tests \
    reliability_input_tests decentrun compress_tests)
  # The big-buffer window cases check sizes; instrumented at -O0 they outlast their time limit.
  build_and_test build-asan '^(topology|local|data|compress|reliability_unit)$' 'BigBuffer' \
    "${targets[@]}"
  echo "== ASan+UBSan stage: $(elapsed "$start")"
}

run_tsan() {
  local start=$SECONDS
  echo "== TSan: comm on the local backend (operations, non-blocking handles, windows)"
  configure build-tsan thread
  mapfile -t targets < <(existing_targets build-tsan comm_local_tests local_transport_tests \
    local_run_tests comm_window_local_tests)
  # The 64 MB message and big-buffer window tests check sizes, not threads; instrumented at -O0
  # their element loops outlast the tests' time limits (even at one rank).
  build_and_test build-tsan '^local$' 'SixtyFourMegabyteMessage|BigBuffer' "${targets[@]}"
  echo "== TSan stage: $(elapsed "$start")"
}

run_fuzz() {
  local start=$SECONDS
  echo "== libFuzzer: ${FUZZ_SECONDS:=30} s per target"
  FUZZ_SECONDS=$FUZZ_SECONDS JOBS=$jobs scripts/fuzz.sh
  echo "== fuzz stage: $(elapsed "$start")"
}

total=$SECONDS
for stage in "${stages[@]}"; do
  case $stage in
    asan) run_asan ;;
    tsan) run_tsan ;;
    fuzz) run_fuzz ;;
    *)
      echo "unknown stage '$stage' (expected asan, tsan or fuzz)" >&2
      exit 2
      ;;
  esac
done
echo "== sanitizer stages done in $(elapsed "$total")"
