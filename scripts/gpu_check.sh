#!/usr/bin/env bash
# The checks that need a GPU, in one run (for a machine with an NVIDIA GPU; CI has none):
#   1. Release build of lsa::cuda, its tests and benchmarks for this GPU (build-gpu/).
#   2. The GPU tests (ctest label gpu), then under compute-sanitizer memcheck and racecheck when
#      compute-sanitizer is installed (the large and randomized cases are left to step 2's run).
#   3. The GPU benchmarks, as console text and JSON.
# Logs go to $OUT when it is set, else build-gpu/gpu_check/. Usage: scripts/gpu_check.sh [--no-bench]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench=1
[[ "${1:-}" == "--no-bench" ]] && bench=0
out="${OUT:-build-gpu/gpu_check}"
mkdir -p "$out"
jobs="$(nproc)"
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLSA_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${LSA_CUDA_ARCHS:-90}" -DLSA_BUILD_EXAMPLES=OFF >"$out/configure.log" 2>&1 &&
  cmake --build build-gpu -j "$jobs" --target lsa_cuda_tests lsa_cuda_bench >"$out/build.log" 2>&1 || {
  echo "gpu_check: build failed (see $out/build.log)"
  tail -30 "$out/build.log"
  exit 1
}

tests=build-gpu/tests/cuda/lsa_cuda_tests
"$tests" --durations yes 2>&1 | tee "$out/tests.log" | tail -5 || status=1

if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 3 "$tests" '~[large]~[random]' \
      >"$out/$tool.log" 2>&1 || status=1
    echo "compute-sanitizer $tool: $(tail -1 "$out/$tool.log")"
  done
else
  echo "gpu_check: compute-sanitizer not installed: sanitizer runs skipped" | tee "$out/sanitizer.log"
fi

if ((bench)); then
  build-gpu/bench/cuda/lsa_cuda_bench --benchmark_min_time=0.1 \
    --benchmark_out="$out/bench.json" --benchmark_out_format=json 2>&1 | tee "$out/bench.log" | tail -60
fi
exit "$status"
