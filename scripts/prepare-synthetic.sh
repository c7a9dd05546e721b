#!/usr/bin/env bash
# Rebuild the embedded default corpus data-bin/synthetic (committed; rerun only to change it).
# Usage: bash scripts/prepare-synthetic.sh [DESTDIR] [generator args, e.g. --train 12000 --seed 1]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
dest="${1:-data-bin/synthetic}"; shift || true
raw="$(mktemp -d)"; trap 'rm -rf "$raw"' EXIT
python scripts/make_synthetic_data.py "$raw" "$@"
rm -rf "$dest"
fairseq-preprocess --source-lang syn --target-lang en \
    --trainpref "$raw/train" --validpref "$raw/valid" --testpref "$raw/test" \
    --destdir "$dest" --workers 1 >"$raw/preprocess.log" 2>&1 || { cat "$raw/preprocess.log"; exit 1; }
rm -f "$dest/preprocess.log"
echo "wrote $dest"
