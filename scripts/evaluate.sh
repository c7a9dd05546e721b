#!/usr/bin/env bash
# Test-set scores of a trained run, as the paper reports them:
#   bash scripts/evaluate.sh RUN_DIR DATA [SUBSET=test] [extra fairseq-generate args...]
# fairseq-generate --beam 5 with checkpoint_best.pt; corpus BLEU on tokenized words (multi-bleu
# equivalent) plus detokenized sacrebleu with its signature, or ROUGE-1/2/L for summarization.
# Writes RUN_DIR/generate-SUBSET.txt and RUN_DIR/scores-SUBSET.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
[ $# -ge 2 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
run="$1"; data="$2"; subset="${3:-test}"; shift $(( $# >= 3 ? 3 : 2 ))
ckpt="$run/checkpoint_best.pt"; [ -f "$ckpt" ] || ckpt="$run/checkpoint_last.pt"
[ -f "$ckpt" ] || { echo "$run: no checkpoint_best.pt or checkpoint_last.pt" >&2; exit 2; }
if ls "$data"/dict.title.txt >/dev/null 2>&1; then
    langs=(--source-lang article --target-lang title); score=(--rouge)
else
    langs=(); tgt=$(ls "$data" | sed -n 's/^[a-z]*\.[a-z]*-\([a-z]*\)\..*\.bin$/\1/p' | head -1); score=(--detok "$tgt")
fi
bpe=(); [ -f "$data.text/bpe.codes" ] && bpe=(--remove-bpe); [ -f "$data.text/spm.model" ] && bpe=(--remove-bpe sentencepiece)
fairseq-generate "$data" "${langs[@]}" --user-dir fairseq_erpo --path "$ckpt" --gen-subset "$subset" \
    --beam 5 --batch-size 128 --required-batch-size-multiple 1 "${bpe[@]}" "$@" \
    >"$run/generate-$subset.txt" 2>"$run/generate-$subset.log" || { tail -20 "$run/generate-$subset.log"; exit 1; }
# scores-SUBSET.json appears complete or not at all (temporary file + rename): the queue skips runs
# that have it, and report.py, run by a parallel job, may read it at any moment
python scripts/score_generate.py "$run/generate-$subset.txt" --name "$run" "${score[@]}" --json \
    >"$run/scores-$subset.json.tmp"
mv -f "$run/scores-$subset.json.tmp" "$run/scores-$subset.json"
cat "$run/scores-$subset.json"
