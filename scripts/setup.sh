#!/usr/bin/env bash
# Installs the build and test dependencies that are missing (Debian/Ubuntu, apt).
# Idempotent: when everything is present it only runs `dpkg-query` (no network, no root needed).
set -euo pipefail

packages=(build-essential cmake catch2 libfmt-dev libbenchmark-dev libhwy-dev python3-pip bible-kjv gnuplot-nox)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: no dpkg here; install yourself: CMake >= 3.21, a C++20 compiler (g++ >= 12 or" \
       "clang >= 14), Catch2, fmt, Google Benchmark, Highway >= 1.0" >&2
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
    echo "setup: done"
    exit 0
  fi
  echo "setup: apt-get failed (attempt $attempt)" >&2
  sleep 5
done
exit 1
