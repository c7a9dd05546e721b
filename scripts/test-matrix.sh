#!/usr/bin/env bash
# The compatibility matrix: the plugin on the official fairseq 0.12.2, beside the full suite on
# Python 3.11 + fairseq main (scripts/test.sh). For each PYTHON:TORCH combination of ERPO_MATRIX
# (default below) it builds an environment of its own, .venv-pyPYTHON-TORCH (scripts/env.sh, so the
# second run reuses it), and runs the tests that exercise fairseq's and torch's interfaces: the CLI
# round trip of every criterion under both tasks, an anneal with theta restore, kill -9 resumes
# (the interpolation across an anneal, MIXER with its learned baseline, a criterion parameter), checkpoint
# safety, and the reward agreement with sacrebleu / rouge-score.
#   bash scripts/test-matrix.sh [extra pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
matrix="${ERPO_MATRIX:-3.10:torch==2.13.0 3.10:torch==1.13.1}"
tests=("tests/test_cli_erpo.py::test_criterion_trains_20_updates"
       "tests/test_cli_erpo.py::test_annealing_moves_lambdas_and_restores_theta"
       "tests/test_resume.py::test_killed_run_resumes_bit_exactly[interpolation]"
       "tests/test_resume.py::test_killed_run_resumes_bit_exactly[mixer]"
       tests/test_checkpoint_safety.py tests/test_rewards_bleu.py tests/test_rewards_rouge.py)

interpreter() {  # the newest python$1 on PATH or under pyenv
    local found=""
    if "python$1" -c '' 2>/dev/null; then  # (a pyenv shim exists for every version, but may refuse)
        found="$(command -v "python$1")"
    else
        found="$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$1".*/bin/python"$1" 2>/dev/null |
                 sort -V | tail -1)"
    fi
    [ -n "$found" ] || { echo "test-matrix: no Python $1 (PATH or pyenv)" >&2; return 1; }
    echo "$found"
}

for combo in $matrix; do
    version="${combo%%:*}"; torch="${combo#*:}"
    python="$(interpreter "$version")"
    venv=".venv-py$version-${torch//[^A-Za-z0-9.]/}"
    echo "== Python $version ($python), $torch, fairseq 0.12.2: $venv"
    start=$SECONDS
    ERPO_PYTHON="$python" ERPO_TORCH="$torch" ERPO_VENV="$PWD/$venv" bash scripts/test.sh "${tests[@]}" "$@"
    echo "== Python $version, $torch: $(( SECONDS - start )) s (install included)"
done
