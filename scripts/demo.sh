#!/usr/bin/env bash
# Builds (Release, build/) and runs the quickstart example; arguments go to the example.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLSA_BUILD_EXAMPLES=ON
cmake --build build -j "${LSA_JOBS:-2}" --target lsa_quickstart
exec ./build/examples/lsa_quickstart "$@"
