#!/usr/bin/env bash
# The main job on the embedded default corpus (data-bin/synthetic), from a bare clone:
# trains each algorithm below with fairseq-train, decodes the test split with beam 5, prints BLEU.
# Usage: bash scripts/demo.sh [OUTDIR]      (default: runs/demo; about 4 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
# Two torch threads, whatever the environment says: torch's CPU kernels split their sums by thread
# count, so 1 and 2 threads give different floats (they diverge from update ~30), and the printed
# numbers are reproducible only for a fixed count. Two threads give the README's numbers on any
# number of cores (the split, not the core count, decides the floats).
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
out="${1:-runs/demo}"
data=data-bin/synthetic
updates="${DEMO_UPDATES:-400}"
mkdir -p "$out"

# name | task and criterion arguments. Interpolation anneals its lambdas on validation BLEU
# (beam 5, every 100 updates), as in the paper's appendix C.
algorithms=(
    "mle|--criterion cross_entropy"
    "interpolation|--task erpo_translation --criterion interpolation --eval-bleu --eval-tokenized-bleu --validate-interval-updates 100 --required-batch-size-multiple 1"
)

for spec in "${algorithms[@]}"; do
    name="${spec%%|*}"; crit="${spec#*|}"
    echo "== $name: training $updates updates (log: $out/$name/train.log)"
    rm -rf "$out/$name"; mkdir -p "$out/$name"
    # shellcheck disable=SC2086
    fairseq-train "$data" --user-dir fairseq_erpo --arch lstm_erpo_iwslt_de_en $crit \
        --optimizer adam --lr 1e-3 --batch-size 64 --max-update "$updates" --seed 1 \
        --save-dir "$out/$name" --no-epoch-checkpoints --no-progress-bar --log-interval 100 \
        --num-workers 0 >"$out/$name/train.log" 2>&1 || { tail -20 "$out/$name/train.log"; exit 1; }
    fairseq-generate "$data" --user-dir fairseq_erpo --path "$out/$name/checkpoint_last.pt" \
        --beam 5 --batch-size 128 --required-batch-size-multiple 1 --gen-subset test >"$out/$name/generate.txt" 2>"$out/$name/generate.log" \
        || { tail -20 "$out/$name/generate.log"; exit 1; }
done

echo
printf 'algorithm\ttest BLEU (beam 5)\n'
for spec in "${algorithms[@]}"; do
    name="${spec%%|*}"
    python scripts/score_generate.py "$out/$name/generate.txt" --name "$name" | cut -f1,2
done
