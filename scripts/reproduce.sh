#!/usr/bin/env bash
# The Table 1 (translation) or Table 2 (summarization) reproduction as one resumable queue:
#   bash scripts/reproduce.sh DATA RESULTS [JOBS=2] [extra fairseq-train args...]
# e.g. bash scripts/reproduce.sh data-bin/multi30k.de-en results/multi30k 2 --max-epoch 30
# or   bash scripts/reproduce.sh data-bin/gigaword.article-title results/gigaword 2 --max-epoch 30
# Trains every (algorithm, seed) of PLAN (default below; override with PLAN="mle:1 raml:2 ...") with
# scripts/train.sh, JOBS at a time (OMP_NUM_THREADS split between them), evaluates each finished
# run on the test split with scripts/evaluate.sh, and refreshes RESULTS (table.md, convergence.png,
# the runs' logs and scores) with scripts/report.py after each one. Interrupted? Run the same
# command again: finished runs are skipped, unfinished ones resume from their checkpoint_last.pt
# (a run trained to a shorter budget, e.g. by hand with --max-epoch 4, is unfinished).
# EVAL_ARGS: extra fairseq-generate arguments for every evaluation (the tests cap the length of
# their untrained models' hypotheses); the tables use evaluate.sh's defaults, beam 5.
# DRY_RUN=1 prints the plan, one ALGO:SEED a line, and exits. With --init CHECKPOINT among the extra
# args every run fine-tunes from it ({seed} in the path becomes the run's seed; see train.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
data="$1"; results="$2"; jobs="${3:-2}"; shift $(( $# >= 3 ? 3 : 2 ))
[ -d "$data" ] || { echo "DATA $data: no such folder (prepare it with scripts/prepare-*.sh)" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "JOBS must be a positive integer, got $jobs" >&2; exit 2; }
# Table 1 as results/multi30k runs it: 3 seeds of the seven algorithms (RAML resampled, the CPU's
# RAML); seed 1 of every algorithm first, so that a partial reproduction already compares them all.
# Summarization data (dict.title.txt, Table 2 as results/gigaword runs it): 5 seeds of the same seven.
algorithms="mle interpolation scheduled_sampling mixer spg raml_resampled data_noising"
if ls "$data"/dict.title.txt >/dev/null 2>&1; then seeds="1 2 3 4 5"; else seeds="1 2 3"; fi
default_plan="$(for seed in $seeds; do for algo in $algorithms; do printf '%s:%s ' "$algo" "$seed"; done; done)"
PLAN="${PLAN:-$default_plan}"
if [ -n "${DRY_RUN:-}" ]; then printf '%s\n' $PLAN; exit 0; fi  # DRY_RUN=1: list the plan, train nothing
runs="${ERPO_RUNS:-runs}/$(basename "$data")"
case " $* " in *" --init "*) runs="$runs/finetune" ;; esac  # where train.sh puts fine-tuning runs
threads=$(( $(nproc) / jobs )); [ "$threads" -ge 1 ] || threads=1
lock="$runs/.report.lock"; mkdir -p "$runs"

# A run is finished when its training ended under this queue's arguments: queue-args records them.
# A run trained under others (a shorter --max-epoch by hand, an older budget) is resumed to this
# budget, and its old test scores are removed first, so that a checkpoint short of the budget is
# never scored or reported as a final run.
finished() {
    local dir="$runs/$1/seed$2"; shift 2
    [ -f "$dir/train.log" ] && grep -q "done training" "$dir/train.log" &&
        [ -f "$dir/queue-args" ] && [ "$(cat "$dir/queue-args")" = "$*" ]
}

one() {  # train (or resume), evaluate, report
    local algo="$1" seed="$2"; shift 2
    local dir="$runs/$algo/seed$seed"
    if ! finished "$algo" "$seed" "$@"; then
        rm -f "$dir/queue-args" "$dir/scores-test.json" "$dir"/generate-test.*
        OMP_NUM_THREADS=$threads bash scripts/train.sh "$algo" "$data" "$seed" "$@" >/dev/null
        grep -q "done training" "$dir/train.log" || { echo "$algo seed $seed: training stopped early, see $dir/train.log" >&2; return 1; }
        printf '%s\n' "$*" > "$dir/queue-args"
    fi
    [ -f "$dir/scores-test.json" ] ||
        OMP_NUM_THREADS=$threads bash scripts/evaluate.sh "$dir" "$data" test ${EVAL_ARGS:-} >/dev/null
    flock "$lock" python scripts/report.py --runs "$runs" --results "$results" >/dev/null
    echo "$(date -u +%FT%TZ) $algo seed $seed: $(cat "$dir/scores-test.json")"
}

. scripts/env.sh
status=0
for item in $PLAN; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
    one "${item%%:*}" "${item##*:}" "$@" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
exit $status
