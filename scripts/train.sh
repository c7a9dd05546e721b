#!/usr/bin/env bash
# One paper configuration per command:
#   bash scripts/train.sh ALGO DATA [SEED] [extra fairseq-train args...]
# ALGO: mle | interpolation | raml | raml_resampled | mixer | spg | data_noising | scheduled_sampling |
# scheduled_sampling_per_epoch | erpo (pass --reward/--alpha/--beta as extras). raml_resampled draws
# RAML's 10 samples but trains on one of them per example, picked by weight: the same loss in
# expectation at MLE's cost per update. scheduled_sampling_per_epoch restarts the decay every epoch,
# as the authors' code does (docs/baselines.md).
# DATA: a fairseq data-bin folder (from scripts/prepare-*.sh). Summarization is detected from its
# dictionaries (dict.article.txt / dict.title.txt): reward and validation metric become ROUGE.
# Paper settings (section 5, appendix C): the LSTM preset (dropout 0.2), Adam 1e-3, batches of
# 64 sentences, validation by beam-5 decoding every epoch, best checkpoint by validation
# BLEU/ROUGE, interpolation lambdas (0.04, 0, 0.96) annealed by 0.06 (model once, reward 4x).
# Output: runs/<data>/<algo>/seed<SEED>/ (checkpoints, train.log; ERPO_RUNS replaces runs/). Extra args override the
# defaults (e.g. --max-epoch 10, --validate-interval-updates 500). Running the same command again
# resumes from the run's checkpoint_last.pt (fairseq's default) and appends to its train.log.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
[ $# -ge 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
algo="$1"; data="$2"; shift 2
seed=1
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then seed="$1"; shift; fi
[ -d "$data" ] || { echo "DATA $data: no such folder (prepare it with scripts/prepare-*.sh)" >&2; exit 2; }

if ls "$data"/dict.title.txt >/dev/null 2>&1; then
    langs=(--source-lang article --target-lang title); metric=rouge; eval=(--eval-rouge --anneal-metric rouge); ss_k=600
else
    langs=(); metric=bleu; eval=(--eval-bleu --eval-tokenized-bleu); ss_k=500
fi
case "$algo" in
    mle) crit=(--criterion cross_entropy) ;;
    interpolation) crit=(--criterion interpolation --reward "$metric" --lambdas 0.04,0,0.96) ;;
    spg) crit=(--criterion spg --reward "$metric") ;;
    data_noising) crit=(--criterion data_noising --noise-prob 0.1) ;;
    scheduled_sampling) crit=(--criterion scheduled_sampling --ss-k "$ss_k") ;;
    scheduled_sampling_per_epoch) crit=(--criterion scheduled_sampling --ss-k "$ss_k" --ss-counter epoch) ;;
    raml) crit=(--criterion raml --reward "$metric" --raml-samples 10 --raml-tau 0.4) ;;
    raml_resampled) crit=(--criterion raml --reward "$metric" --raml-samples 10 --raml-tau 0.4 --raml-resample 1) ;;
    # MIXER: 2 epochs of MLE, then 2 more tokens per sentence to REINFORCE every 2 epochs
    mixer) crit=(--criterion mixer --reward "$metric" --mixer-delta 2 --mixer-epochs-per-step 2) ;;
    erpo) crit=(--criterion erpo) ;;
    *) echo "ALGO $algo: choose mle, interpolation, raml, raml_resampled, mixer, spg, data_noising, scheduled_sampling, scheduled_sampling_per_epoch or erpo" >&2; exit 2 ;;
esac

save="${ERPO_RUNS:-runs}/$(basename "$data")/$algo/seed$seed"
mkdir -p "$save"
echo "training $algo on $data (seed $seed) -> $save"
fairseq-train "$data" "${langs[@]}" --user-dir fairseq_erpo --task erpo_translation \
    --arch lstm_erpo_iwslt_de_en "${crit[@]}" \
    --optimizer adam --lr 1e-3 --batch-size 64 --required-batch-size-multiple 1 --max-epoch 30 \
    "${eval[@]}" --eval-bleu-args '{"beam": 5}' \
    --best-checkpoint-metric "$metric" --maximize-best-checkpoint-metric \
    --seed "$seed" --save-dir "$save" --no-epoch-checkpoints --no-progress-bar --log-format simple \
    --log-interval 100 --num-workers 0 "$@" 2>&1 | tee -a "$save/train.log"
