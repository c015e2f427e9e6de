#!/usr/bin/env bash
# The randomized API test at length, outside CI: N operations in sync recall mode and N in async
# mode (host store; a quarter of the episodes on a file mirror with injected read/write faults
# and bytes changed behind the cache), under ASan+UBSan unless --build-dir names another build.
# CI runs the same test cases with their short defaults (tests/unit/cache_random_test.cpp).
# Usage: scripts/random_long.sh [--ops N] [--seed S] [--build-dir DIR] [--no-faults]
#   defaults: --ops 1000000 --seed 0x15A2026 --build-dir build-asan. Env: LSA_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ops=1000000
seed=0x15A2026
dir=build-asan
faults=1
while (($#)); do
  case "$1" in
    --ops) ops="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --build-dir) dir="$2"; shift 2 ;;
    --no-faults) faults=0; shift ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "random_long.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$dir/CMakeCache.txt" ]]; then
  # The sanitizer build of scripts/test.sh, library and unit tests only.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
    -DLSA_BUILD_TESTS=ON -DLSA_BUILD_BENCH=OFF -DLSA_BUILD_EXAMPLES=OFF -DLSA_ENABLE_CUDA=OFF \
    "-DLSA_SANITIZE=address;undefined"
fi
cmake --build "$dir" -j "${LSA_JOBS:-2}" --target lsa_tests

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSA_RANDOM_SEED="$seed" LSA_RANDOM_OPS="$ops" LSA_RANDOM_FAULTS="$faults"
echo "random_long.sh: seed $seed, $ops operations per recall mode, faults $faults, build $dir"
start=$SECONDS
for mode in sync async; do
  "$dir/tests/lsa_tests" "random API operations against a reference model ($mode recall)"
done
echo "random_long.sh: PASSED in $((SECONDS - start)) s (seed $seed, $ops operations per mode)"
