#!/usr/bin/env bash
# The checks that need a GPU, in one run (for a machine with an NVIDIA GPU; CI has none). Nothing
# here passes without running on the GPU: every step below that fails, or runs nothing, fails the
# script, and the last lines say which steps failed.
#   1. nvidia-smi must work and list a GPU.
#   2. Two Release builds of lsa::cuda, its tests and benchmarks: build-gpu-native/ for the card
#      present (CMAKE_CUDA_ARCHITECTURES=native) and build-gpu/ for lsa's default architectures
#      (the binaries CI builds: sm_80 and sm_90 code, sm_90 PTX).
#   3. ctest -L gpu in both builds with LSA_REQUIRE_GPU=1 (a GPU test that cannot run fails); a
#      test that is skipped anyway, or no test at all, fails the step. The full summary is printed.
#   4. compute-sanitizer memcheck, racecheck, synccheck and initcheck over every GPU test, the
#      randomized ones included (native build; LSA_RANDOM_OPS, if set, sizes the randomized runs).
#   5. The GPU benchmarks (native build): a non-zero exit or a benchmark reporting an error fails.
# Every log goes under $OUT when it is set, else build-gpu/gpu_check/.
# Usage: scripts/gpu_check.sh [--no-bench] [--no-sanitizer]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

bench=1
sanitize=1
for arg in "$@"; do
  case "$arg" in
    --no-bench) bench=0 ;;
    --no-sanitizer) sanitize=0 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
out="${OUT:-build-gpu/gpu_check}"
mkdir -p "$out"
jobs="$(nproc)"
failed=()
export LSA_REQUIRE_GPU=1

fail() {
  echo "gpu_check: FAILED: $*" | tee -a "$out/failures.txt" >&2
  failed+=("$1")
}

# 1. The GPU.
if ! nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv \
  >"$out/gpu.txt" 2>&1; then
  cat "$out/gpu.txt"
  echo "gpu_check: FAILED: nvidia-smi failed (no usable GPU or driver); nothing was checked" >&2
  exit 1
fi
cat "$out/gpu.txt"
if (($(wc -l <"$out/gpu.txt") < 2)); then
  echo "gpu_check: FAILED: nvidia-smi lists no GPU; nothing was checked" >&2
  exit 1
fi

# 2. Builds.
build() {  # build <dir> <label> [cmake args...]
  local dir="$1" label="$2"
  shift 2
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLSA_ENABLE_CUDA=ON \
    -DLSA_BUILD_EXAMPLES=OFF "$@" >"$out/configure-$label.log" 2>&1; then
    tail -30 "$out/configure-$label.log"
    fail "configure-$label" "(see $out/configure-$label.log)"
    return 1
  fi
  if ! cmake --build "$dir" -j "$jobs" --target lsa_cuda_tests lsa_cuda_bench \
    >"$out/build-$label.log" 2>&1; then
    tail -30 "$out/build-$label.log"
    fail "build-$label" "(see $out/build-$label.log)"
    return 1
  fi
}
native_ok=0
default_ok=0
build build-gpu-native native -DCMAKE_CUDA_ARCHITECTURES=native && native_ok=1
build build-gpu default && default_ok=1

# 3. The GPU tests through ctest: each Catch2 case is one ctest test.
run_ctest() {  # run_ctest <dir> <label>
  local dir="$1" label="$2"
  local log="$out/ctest-$label.log"
  (cd "$dir" && ctest -L gpu --output-on-failure --timeout 1800) >"$log" 2>&1
  local rc=$?
  echo "== ctest ($label build) =="
  sed -n '/tests passed\|tests failed/,$p' "$log"
  ((rc == 0)) || fail "ctest-$label" "(exit $rc, see $log)"
  if grep -qE '\*\*\*Skipped|Not Run|tests did not run' "$log"; then
    fail "ctest-$label-skipped" "GPU tests were skipped (see $log)"
  fi
  if ! grep -qE '100% tests passed, 0 tests failed out of [1-9]' "$log"; then
    fail "ctest-$label-summary" "no passing GPU test in the summary (see $log)"
  fi
}
((native_ok)) && run_ctest build-gpu-native native
((default_ok)) && run_ctest build-gpu default

# 4. compute-sanitizer over every GPU test.
tests=build-gpu-native/tests/cuda/lsa_cuda_tests
if ((sanitize && native_ok)); then
  if ! command -v compute-sanitizer >/dev/null 2>&1; then
    fail "sanitizer" "compute-sanitizer is not installed (install it, or pass --no-sanitizer)"
  else
    for tool in memcheck racecheck synccheck initcheck; do
      compute-sanitizer --tool "$tool" --error-exitcode 3 "$tests" >"$out/$tool.log" 2>&1
      rc=$?
      summary="$(grep -E 'ERROR SUMMARY|test cases' "$out/$tool.log" | tr '\n' ' ')"
      echo "compute-sanitizer $tool: exit $rc; $summary"
      ((rc == 0)) || fail "sanitizer-$tool" "(exit $rc, see $out/$tool.log)"
      grep -q 'LSA_TEST_SKIPPED' "$out/$tool.log" && fail "sanitizer-$tool-skipped" "tests skipped"
    done
  fi
fi

# 5. Benchmarks.
if ((bench && native_ok)); then
  build-gpu-native/bench/cuda/lsa_cuda_bench --benchmark_min_time=0.1 \
    --benchmark_out="$out/bench.json" --benchmark_out_format=json >"$out/bench.log" 2>&1
  rc=$?
  tail -60 "$out/bench.log"
  ((rc == 0)) || fail "bench" "lsa_cuda_bench exited $rc (see $out/bench.log)"
  if grep -q '"error_occurred": true' "$out/bench.json" 2>/dev/null ||
    grep -q 'ERROR OCCURRED' "$out/bench.log"; then
    fail "bench-errors" "a benchmark reported an error (see $out/bench.log)"
  fi
fi

if ((${#failed[@]} > 0)); then
  echo "gpu_check: FAILED steps: ${failed[*]} (logs in $out)"
  exit 1
fi
echo "gpu_check: every step passed (logs in $out)"
