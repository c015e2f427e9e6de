#!/usr/bin/env bash
# Installs the build and test dependencies that are missing: Debian/Ubuntu packages (apt), then the
# indexer trainer's pinned Python packages (examples/indexer/requirements.txt) into the git-ignored
# virtual environment .venv/. Idempotent: when everything is present it only runs `dpkg-query` and
# compares the requirements with what .venv was built from (no network, no root needed).
set -euo pipefail

packages=(build-essential cmake catch2 libfmt-dev libbenchmark-dev libhwy-dev libxxhash-dev python3-pip
          python3-venv bible-kjv gnuplot-nox)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The trainer's virtual environment, rebuilt when the pinned requirements change.
python_env() {
  local req=examples/indexer/requirements.txt stamp=.venv/.lsa-requirements
  if [[ -f "$stamp" ]] && cmp -s "$req" "$stamp"; then
    echo "setup: .venv is up to date with $req"
    return 0
  fi
  echo "setup: installing the indexer trainer's Python packages into .venv ($req)"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$stamp"
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: no dpkg here; install yourself: CMake >= 3.21, a C++20 compiler (g++ >= 12 or" \
       "clang >= 14), Catch2, fmt, xxHash (xxhash.h), Google Benchmark, Highway >= 1.0" >&2
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "setup: all dependencies present (${packages[*]})"
  python_env
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Retried once: mirrors of a fresh machine sometimes fail the first time.
for attempt in 1 2; do
  if "${sudo[@]}" apt-get update -q && \
     "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; then
    python_env
    echo "setup: done"
    exit 0
  fi
  echo "setup: apt-get failed (attempt $attempt)" >&2
  sleep 5
done
exit 1
