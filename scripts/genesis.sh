#!/usr/bin/env bash
# Prints the book of Genesis (King James Version, public domain) from Debian's bible-kjv package as
# plain text: one verse per line, without chapter headings or verse numbers. The decoder's
# perplexity and long-context evaluations use it as their fixed text.
set -euo pipefail
if ! command -v bible >/dev/null 2>&1; then
  echo "genesis.sh: the 'bible' program is missing; install the Debian package bible-kjv" >&2
  exit 1
fi
bible -l100000 gen1:1-gen50:26 | sed -n 's/^ *[0-9][0-9]* //p'
