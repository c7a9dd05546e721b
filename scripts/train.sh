#!/usr/bin/env bash
# One paper configuration per command:
#   bash scripts/train.sh ALGO DATA [SEED] [extra fairseq-train args...]
# ALGO: mle | interpolation | interpolation_paper | raml | raml_resampled | mixer | mixer_running_mean |
# spg | data_noising | scheduled_sampling | scheduled_sampling_paper | scheduled_sampling_per_epoch |
# risk | erpo (pass --reward/--alpha/--beta as extras). The baselines train as their authors did
# (docs/baselines.md); *_paper are the formulas as the ERPO paper states them. raml_resampled
# draws RAML's 10 samples but trains on one of them per example, picked by weight: the same loss in
# expectation at MLE's cost per update.
# DATA: a fairseq data-bin folder (from scripts/prepare-*.sh). Summarization is detected from its
# dictionaries (dict.article.txt / dict.title.txt): reward and validation metric become ROUGE.
# Paper settings (section 5, appendix C): the LSTM preset (dropout 0.2), Adam 1e-3, batches of
# 64 sentences, validation by beam-5 decoding every epoch, best checkpoint by validation
# BLEU/ROUGE, interpolation lambdas (0.04, 0, 0.96) annealed by 0.06 (model once, reward 4x).
# Output: runs/<data>/<algo>/seed<SEED>/ (checkpoints, train.log; ERPO_RUNS replaces runs/). Extra
# args override the defaults (e.g. --max-epoch 10, --validate-interval-updates 500). Running the
# same command again resumes from the run's checkpoint_last.pt (fairseq's default) and appends to
# its train.log. Fine-tuning: --init CHECKPOINT (below), e.g.
#   bash scripts/train.sh risk DATA 1 --init runs/DATA/mle/seed{seed}/checkpoint_best.pt --max-update 2000
# DRY_RUN=1 prints the fairseq-train arguments, one a line, and trains nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
algo="$1"; data="$2"; shift 2
seed=1
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then seed="$1"; shift; fi
[ -d "$data" ] || { echo "DATA $data: no such folder (prepare it with scripts/prepare-*.sh)" >&2; exit 2; }
# --init CHECKPOINT (anywhere among the extra args): fine-tune from that model ({seed} in the path
# becomes SEED). fairseq's --finetune-from-model loads its weights only: a fresh optimizer, learning
# rate, meters and data iterator, so the update count, the epoch and every schedule start at their
# beginning (the interpolation at --lambdas; MIXER without its cross-entropy phase, which the
# model already had). The run goes to runs/<data>/finetune/<algo>/seed<SEED>.
init=""; extra=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--init" ]; then
        [ $# -ge 2 ] || { echo "--init needs a checkpoint path" >&2; exit 2; }
        init="${2//\{seed\}/$seed}"; shift 2
    else
        extra+=("$1"); shift
    fi
done
set -- "${extra[@]+"${extra[@]}"}"
if [ -n "$init" ] && [ ! -f "$init" ]; then
    echo "--init $init: no such checkpoint (train the model first, e.g. bash scripts/train.sh mle $data $seed)" >&2; exit 2
fi

if ls "$data"/dict.title.txt >/dev/null 2>&1; then
    langs=(--source-lang article --target-lang title); metric=rouge; eval=(--eval-rouge --anneal-metric rouge); ss_k=600
    # ROUGE has no brevity penalty to move (a word past the reference lowers precision, EOS adds 0);
    # c_R = 1000: the branch's draws on Gigaword valid are at their large-c_R limit (docs/erpo.md)
    brevity=(); explore=(--reward-sample-scale 1000)
else
    langs=(); metric=bleu; eval=(--eval-bleu --eval-tokenized-bleu); ss_k=500
    brevity=(--bleu-brevity at-eos); explore=(--bleu-brevity at-eos --reward-sample-scale 1000)
fi
mixer_xent="${MIXER_XENT_EPOCHS:-10}"  # epochs of cross entropy before REINFORCE (Multi30k's MLE levels off by 10)
[ -z "$init" ] || mixer_xent="${MIXER_XENT_EPOCHS:-0}"  # fine-tuning: the model had its cross entropy
case "$algo" in
    mle) crit=(--criterion cross_entropy) ;;
    # the reward branch explores by reward: c_R = 1000, where the branch's draws on valid reach their
    # large-c_R limit (Multi30k and Gigaword), and BLEU's brevity penalty paid at EOS (docs/erpo.md)
    interpolation) crit=(--criterion interpolation --reward "$metric" --lambdas 0.04,0,0.96 "${explore[@]}") ;;
    interpolation_paper) crit=(--criterion interpolation --reward "$metric" --lambdas 0.04,0,0.96) ;;
    # Ding and Soricut's bang-bang weights (W 1e4, drop 0.4; docs/baselines.md), BLEU's penalty at EOS
    spg) crit=(--criterion spg --reward "$metric" --bang-bang-weight 1e4 --bang-bang-drop 0.4 "${brevity[@]}") ;;
    data_noising) crit=(--criterion data_noising --noise-prob 0.1) ;;
    # the authors' schedule: their per-epoch restart at their epoch's length, ~2,300 updates on IWSLT14
    scheduled_sampling) crit=(--criterion scheduled_sampling --ss-k "$ss_k" --ss-counter period --ss-period 2300) ;;
    scheduled_sampling_paper) crit=(--criterion scheduled_sampling --ss-k "$ss_k" --ss-counter global) ;;
    scheduled_sampling_per_epoch) crit=(--criterion scheduled_sampling --ss-k "$ss_k" --ss-counter epoch) ;;
    raml) crit=(--criterion raml --reward "$metric" --raml-samples 10 --raml-tau 0.4) ;;
    raml_resampled) crit=(--criterion raml --reward "$metric" --raml-samples 10 --raml-tau 0.4 --raml-resample 1) ;;
    # MIXER as Ranzato et al. ran it, in this budget: cross entropy until MLE levels off (10 epochs on
    # Multi30k), then 3 more tokens to REINFORCE every 2 epochs, XENT/REINFORCE 0.5/0.5, the learned
    # baseline, and the learning rate / 1.2 whenever validation stalls (docs/baselines.md#mixer)
    mixer) crit=(--criterion mixer --reward "$metric" --mixer-xent-epochs "$mixer_xent" --mixer-delta 3
                 --mixer-epochs-per-step 2 --mixer-xent-weight 0.5 --mixer-baseline learned
                 --lr-scheduler reduce_lr_on_plateau --lr-shrink 0.8333 --lr-patience 0) ;;
    # the earlier recipe (2 MLE epochs, 2 tokens every 2 epochs, running mean, constant learning rate)
    mixer_running_mean) crit=(--criterion mixer --reward "$metric" --mixer-delta 2 --mixer-epochs-per-step 2
                              --mixer-xent-weight 1 --mixer-baseline mean) ;;
    # minimum risk training as Edunov et al. ran it (16 beam candidates, the token NLL at 0.5); meant
    # for fine-tuning (--init): a beam search of width 16 per batch
    risk) crit=(--criterion risk --reward "$metric" --risk-candidates 16 --risk-generation beam --risk-nll-weight 0.5) ;;
    erpo) crit=(--criterion erpo) ;;
    *) echo "ALGO $algo: choose mle, interpolation, interpolation_paper, raml, raml_resampled, mixer, mixer_running_mean, spg, data_noising, scheduled_sampling, scheduled_sampling_paper, scheduled_sampling_per_epoch, risk or erpo" >&2; exit 2 ;;
esac

save="${ERPO_RUNS:-runs}/$(basename "$data")${init:+/finetune}/$algo/seed$seed"
start=(); [ -z "$init" ] || start=(--finetune-from-model "$init")
args=("$data" "${langs[@]}" --user-dir fairseq_erpo --task erpo_translation
    --arch lstm_erpo_iwslt_de_en "${crit[@]}" "${start[@]}"
    --optimizer adam --lr 1e-3 --batch-size 64 --required-batch-size-multiple 1 --max-epoch 30
    "${eval[@]}" --eval-bleu-args '{"beam": 5}'
    --best-checkpoint-metric "$metric" --maximize-best-checkpoint-metric
    --seed "$seed" --save-dir "$save" --no-epoch-checkpoints --no-progress-bar --log-format simple
    --log-interval 100 --num-workers 0 "$@")
# DRY_RUN=1: print fairseq-train's arguments, one a line, and train nothing
if [ -n "${DRY_RUN:-}" ]; then printf '%s\n' "${args[@]}"; exit 0; fi
mkdir -p "$save"
echo "training $algo on $data (seed $seed${init:+, from $init}) -> $save"
fairseq-train "${args[@]}" 2>&1 | tee -a "$save/train.log"
