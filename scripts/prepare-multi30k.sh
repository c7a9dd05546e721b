#!/usr/bin/env bash
# Multi30k de-en (task 1, lowercased Moses-tokenized text) -> data-bin/multi30k.de-en.
# Splits: train 29,000 / valid 1,014 / test = test2016 (test2017, test2018 and mscoco are held out
# and never prepared). Usage:
#   bash scripts/prepare-multi30k.sh [--src DIR] [--bpe none|subword-nmt|sentencepiece] [--bpe-size N]
#                                    [--threshold 3] [--out data-bin/multi30k.de-en]
# DIR holds {train,valid,test2016}.{de,en} (default: ../shared/data/multi30k-de-en/tok; without it,
# the tokenized files are downloaded from github.com/multi30k/dataset).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prepare_common.sh "$@"  # the venv, then the shared options ($bpe, $out, $src_path, ...)
out="${out:-data-bin/multi30k.de-en}"
src_path="${src_path:-../shared/data/multi30k-de-en/tok}"
text="$out.text"; rm -rf "$text"; mkdir -p "$text"
if [ ! -d "$src_path" ]; then
    url=https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/tok
    src_path="$text/download"; mkdir -p "$src_path"
    for pair in "train:train" "val:valid" "test_2016_flickr:test2016"; do
        for l in de en; do
            curl -fsSL "$url/${pair%%:*}.lc.norm.tok.$l" -o "$src_path/${pair#*:}.$l"
        done
    done
fi
python scripts/prepare_data.py multi30k "$src_path" "$text"
binarize "$text" de en
