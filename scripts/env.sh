# Source me: creates or reuses ./.venv with everything fairseq-erpo needs, then activates it.
#
# Idempotent and quiet: the install runs only when setup.py (or the torch pin) changed since the
# last successful install, recorded in .venv/.erpo-installed. Set ERPO_TORCH to install another
# torch build first (default torch==2.13.0, the local CPU wheel on the project's machines).
# shellcheck shell=bash
ERPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ERPO_VENV="${ERPO_VENV:-$ERPO_ROOT/.venv}"
ERPO_TORCH="${ERPO_TORCH:-torch==2.13.0}"
ERPO_PYTHON="${ERPO_PYTHON:-python3}"

erpo_install() {
    local stamp="$ERPO_VENV/.erpo-installed" want log
    want="$(cat "$ERPO_ROOT/setup.py" | sha256sum | cut -c1-16) $ERPO_TORCH"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    [ -x "$ERPO_VENV/bin/python" ] || "$ERPO_PYTHON" -m venv "$ERPO_VENV" || return 1
    log="$ERPO_VENV/install.log"
    echo "fairseq-erpo: installing into $ERPO_VENV (first run takes ~5 min; log: $log)" >&2
    {
        "$ERPO_VENV/bin/python" -m pip install --upgrade pip setuptools wheel &&
        # torch first, pinned, so that fairseq's `torch` requirement is already satisfied
        "$ERPO_VENV/bin/python" -m pip install "$ERPO_TORCH" &&
        "$ERPO_VENV/bin/python" -m pip install -e "$ERPO_ROOT[test,plots]"
    } >"$log" 2>&1 || { echo "fairseq-erpo: install failed, see $log" >&2; tail -20 "$log" >&2; return 1; }
    echo "$want" >"$stamp"
}

erpo_install || return 1 2>/dev/null || exit 1
# shellcheck disable=SC1091
. "$ERPO_VENV/bin/activate"
export PYTHONUNBUFFERED=1
# fairseq logs an INFO line about tensorboardX on every import; keep the console readable
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::UserWarning}"
