#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan+UBSan) into build-fuzz and runs each for
# FUZZ_SECONDS (default 60) starting from its seed corpus in fuzz/corpus/<target>/.
#   scripts/fuzz.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh idx
# New inputs go to build-fuzz/corpus/<target>/ (the seed corpus in the repository is not
# touched); a crash leaves its input as build-fuzz/artifacts/<target>/crash-* and fails the
# script. Replay one with build-fuzz/fuzz_<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-60}
jobs=${JOBS:-$(nproc)}
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(idx topology_json)
[[ $# -eq 0 && -f src/compress/compressor.cpp ]] && targets+=(compress)

# -O1 with line tables: the usual trade-off for fuzzing between speed and build time.
cmake -S "$root/fuzz" -B "$root/build-fuzz" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
cmake --build "$root/build-fuzz" -j "$jobs" --target "${targets[@]/#/fuzz_}"

# Malformed sizes must fail with an error, not allocate: inputs are tiny, so 512 MB is ample.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for target in "${targets[@]}"; do
  work="$root/build-fuzz/corpus/$target"
  artifacts="$root/build-fuzz/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  echo "== fuzz_$target for $seconds s"
  if ! "$root/build-fuzz/fuzz_$target" "$work" "$root/fuzz/corpus/$target" \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" 2>"$artifacts/log.txt"; then
    tail -n 60 "$artifacts/log.txt"
    echo "fuzz_$target FAILED: inputs in $artifacts" >&2
    status=1
  else
    grep -E "^stat::(number_of_executed_units|new_units_added)|cov:" "$artifacts/log.txt" | tail -n 3
  fi
done
exit $status
