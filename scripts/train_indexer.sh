#!/usr/bin/env bash
# Reproduces the shipped memory indexer, examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf
# (docs/indexer.md): the training text (KJV Exodus-Revelation), one lsa-indexer-dump pass of the
# model over it and over synthetic retrieval documents, then the JAX trainer with a fixed seed.
# About 34 minutes for the dump and 10 for training on a 2-core machine.
# Usage: scripts/train_indexer.sh [--out FILE]   Env: LSA_BUILD_DIR (default build), LSA_WORK_DIR
# (default $LSA_BUILD_DIR/indexer-training: text, dump, log).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf
while (($#)); do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_indexer.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
build="${LSA_BUILD_DIR:-build}"
work="${LSA_WORK_DIR:-$build/indexer-training}"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf

[[ -x .venv/bin/python ]] || { echo "train_indexer.sh: no .venv; run scripts/setup.sh first" >&2; exit 1; }
bash scripts/fetch_model.sh
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" -j "${LSA_JOBS:-2}" --target lsa_indexer_dump

mkdir -p "$work" "$(dirname "$out")"
bash scripts/training_text.sh >"$work/training.txt"
rm -rf "$work/dump"
start=$SECONDS
# Documents: 100 of 2,048 tokens spread over the text and 120 synthetic ones of 1,024-4,096 tokens
# with the varied note templates; chunks of 4 tokens; features entering layers 8 (keys) and 16
# (queries); a chunk is golden when 6 of the 30 layers need it among the 60% of their attention
# over the next 64 steps.
"$build/examples/indexer/lsa-indexer-dump" -m "$model" --text "$work/training.txt" --out "$work/dump" \
  --notes varied --synthetic-docs 120 --taps 8,16 --min-layers 6 --seed 1 --chunk-tokens 4
echo "train_indexer.sh: dump written in $((SECONDS - start)) s"

start=$SECONDS
(cd examples/indexer && ../../.venv/bin/python -m lsa_indexer.train --dump "../../$work/dump" \
  --out "../../$out" --record "../../${out%.gguf}.record.json" --query-tap 16 --key-tap 8 --special-weight 6 --rank-weight 1 --seed 0 \
  --sink-chunks 4 --recent-chunks 16 --max-positives 128 --list-width 512)
echo "train_indexer.sh: trained in $((SECONDS - start)) s: $out"
