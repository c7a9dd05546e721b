#!/usr/bin/env bash
# IWSLT14 de-en as in the paper (MIXER / Ma et al. preprocessing) -> data-bin/iwslt14.de-en.
# Moses tokenization (sacremoses), lowercase, train cleaned to 1-50 tokens with ratio 1.5,
# valid = every 23rd cleaned training line, test = dev2010 + TEDX.dev2012 + tst2010-2012,
# word-level vocabulary of words seen >= 3 times (or a joint BPE). Usage:
#   bash scripts/prepare-iwslt14.sh [--src de-en.tgz|DIR] [--bpe none|subword-nmt|sentencepiece]
#                                   [--bpe-size N] [--threshold 3] [--out data-bin/iwslt14.de-en]
# Without --src the official archive is downloaded. DIR is the extracted de-en folder
# (train.tags.de-en.*, IWSLT14.*.xml); a folder without the training files yields the test set
# only (text in OUT.text, nothing binarized).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prepare_common.sh "$@"  # the venv, then the shared options ($bpe, $out, $src_path, ...)
out="${out:-data-bin/iwslt14.de-en}"
text="$out.text"; rm -rf "$text"; mkdir -p "$text"
if [ -z "$src_path" ]; then
    src_path="$text/de-en.tgz"
    curl -fL http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz -o "$src_path"
fi
if [ -f "$src_path" ]; then  # an archive: extract it
    tar -xzf "$src_path" -C "$text"
    src_path="$text/de-en"
fi
python scripts/prepare_data.py iwslt14 "$src_path" "$text"
if [ ! -f "$text/train.de" ]; then
    echo "no training data in $src_path: test set written to $text/test.{de,en}, not binarized"
    exit 0
fi
binarize "$text" de en
