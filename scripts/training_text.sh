#!/usr/bin/env bash
# Prints the King James Version from Exodus to Revelation (public domain), from Debian's bible-kjv
# package: one verse per line, without headings or verse numbers (about a million tokens). The
# memory indexer trains on it; the evaluation's Genesis (scripts/genesis.sh) stays unseen.
set -euo pipefail
if ! command -v bible >/dev/null 2>&1; then
  echo "training_text.sh: the 'bible' program is missing; install the Debian package bible-kjv" >&2
  exit 1
fi
bible -l100000 ex1:1-rev22:21 | sed -n 's/^ *[0-9][0-9]* //p'
