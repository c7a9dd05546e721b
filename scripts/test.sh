#!/usr/bin/env bash
# Run the whole test suite (sets up ./.venv on first use). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
# two cores: torch intra-op threads beyond that only contend with the fairseq subprocesses
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec python -m pytest "$@"
