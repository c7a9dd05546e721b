# Source me: creates or reuses a virtual environment with everything fairseq-erpo needs, then
# activates it.
#
#   ERPO_PYTHON  the interpreter (default: the first python3 on PATH). Python 3.11+ gets
#                fairseq-fixed 0.12.3.1 (fairseq main); Python 3.8-3.10 the official fairseq 0.12.2,
#                installed with pip < 24.1 (its omegaconf 2.0.x carries the specifier
#                "PyYAML>=5.1.*", which pip 24.1+ rejects as invalid).
#   ERPO_TORCH   the torch requirement installed first (default torch==2.13.0: the local CPU wheel on
#                Python 3.11 here, the CUDA build from the registry elsewhere; it runs on the CPU).
#                What must match the installed torch is pinned with it (scripts/torch_pins.py).
#   ERPO_VENV    the environment's folder (default ./.venv).
#
# Idempotent and quiet: the install runs only when setup.py, the interpreter's version or the torch
# requirement changed since the last successful install, recorded in $ERPO_VENV/.erpo-installed.
# shellcheck shell=bash
ERPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ERPO_VENV="${ERPO_VENV:-$ERPO_ROOT/.venv}"
ERPO_TORCH="${ERPO_TORCH:-torch==2.13.0}"
ERPO_PYTHON="${ERPO_PYTHON:-python3}"

erpo_install() {
    local stamp="$ERPO_VENV/.erpo-installed" want log version venv_version pip_pin pins
    version="$("$ERPO_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ||
        { echo "fairseq-erpo: ERPO_PYTHON=$ERPO_PYTHON does not run" >&2; return 1; }
    want="$(cat "$ERPO_ROOT/setup.py" "$ERPO_ROOT/scripts/torch_pins.py" | sha256sum | cut -c1-16) python$version $ERPO_TORCH"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ -x "$ERPO_VENV/bin/python" ]; then
        venv_version="$("$ERPO_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        if [ "$venv_version" != "$version" ]; then
            echo "fairseq-erpo: $ERPO_VENV holds Python $venv_version, ERPO_PYTHON is $version: remove it, or" \
                 "set ERPO_VENV to another folder" >&2
            return 1
        fi
    else
        "$ERPO_PYTHON" -m venv "$ERPO_VENV" || return 1
    fi
    pip_pin="pip"
    case "$version" in 3.8|3.9|3.10) pip_pin="pip<24.1" ;; esac  # fairseq 0.12.2 (see above)
    log="$ERPO_VENV/install.log"
    echo "fairseq-erpo: installing into $ERPO_VENV for Python $version (first run takes ~5 min; log: $log)" >&2
    {
        "$ERPO_VENV/bin/python" -m pip install --upgrade "$pip_pin" setuptools wheel &&
        # torch first, pinned, so that fairseq's `torch` requirement is already satisfied
        "$ERPO_VENV/bin/python" -m pip install "$ERPO_TORCH" &&
        mapfile -t pins < <("$ERPO_VENV/bin/python" "$ERPO_ROOT/scripts/torch_pins.py") &&
        # torch again, so that no dependency replaces it: fairseq 0.12.2 asks for any torchaudio, and
        # a newer one pins a newer torch (pip then uninstalled torch 1.13.1 for 2.14.1)
        "$ERPO_VENV/bin/python" -m pip install -e "$ERPO_ROOT[test,plots]" "$ERPO_TORCH" "${pins[@]}"
    } >"$log" 2>&1 || { echo "fairseq-erpo: install failed, see $log" >&2; tail -20 "$log" >&2; return 1; }
    echo "$want" >"$stamp"
}

erpo_install || return 1 2>/dev/null || exit 1
# shellcheck disable=SC1091
. "$ERPO_VENV/bin/activate"
export PYTHONUNBUFFERED=1
# fairseq logs an INFO line about tensorboardX on every import; keep the console readable
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::UserWarning}"
