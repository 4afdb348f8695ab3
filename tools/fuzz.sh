#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan + UBSan and runs each for a bounded time over
# the seed corpus in fuzz/corpus/ (new inputs go to BUILD/corpus/, not into the repository).
# Any crash, sanitizer report, leak (memory, or an fd in the broker target) or timeout fails.
#   tools/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-2}

tools/install-deps.sh clang-14 libclang-rt-14-dev
if [[ ! -f $build/build.ninja ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -gline-tables-only -DNDEBUG" \
    -DSHMFD_SANITIZE=address,undefined -DSHMFD_BUILD_FUZZERS=ON \
    -DSHMFD_BUILD_TESTS=OFF -DSHMFD_BUILD_BENCH=OFF -DSHMFD_BUILD_EXAMPLES=OFF
fi
cmake --build "$build" -j "$jobs" --target shmfd-fuzz-decode shmfd-fuzz-layout shmfd-fuzz-broker shmfd-fuzz-channel \
  shmfd-fuzz-meta

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for target in decode layout broker channel meta; do
  work=$build/corpus/$target
  mkdir -p "$work" "$build/artifacts"
  echo "fuzz: shmfd-fuzz-$target for ${seconds}s (seeds: fuzz/corpus/$target)"
  if ! "$build/bin/shmfd-fuzz-$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
      "$work" "fuzz/corpus/$target" >"$build/fuzz-$target.log" 2>&1; then
    tail -n 60 "$build/fuzz-$target.log"
    echo "fuzz: shmfd-fuzz-$target FAILED; the input is in $build/artifacts/ (log: $build/fuzz-$target.log)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz-$target.log" | tr '\n' ' '
  echo
done
echo "fuzz: all targets ran ${seconds}s without a finding"
