#!/usr/bin/env bash
# Gigaword headline generation (Rush et al. 2015 format) -> data-bin/gigaword.article-title.
# The test set's "UNK" becomes fairseq's <unk>. Usage:
#   bash scripts/prepare-gigaword.sh [--src DIR] [--bpe ...] [--bpe-size N] [--threshold 3] [--out DIR]
# DIR holds {train,valid,test}.{article,title}.txt (default: ../shared/data/gigaword, a 10K-pair
# sample; the full 3.8M-pair set is github.com/harvardnlp/sent-summary: download it and pass --src).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prepare_common.sh "$@"  # the venv, then the shared options ($bpe, $out, $src_path, ...)
out="${out:-data-bin/gigaword.article-title}"
src_path="${src_path:-../shared/data/gigaword}"
[ -d "$src_path" ] || { echo "--src $src_path: no such folder (download the Rush et al. data first)" >&2; exit 1; }
text="$out.text"; rm -rf "$text"; mkdir -p "$text"
python scripts/prepare_data.py gigaword "$src_path" "$text"
binarize "$text" article title
