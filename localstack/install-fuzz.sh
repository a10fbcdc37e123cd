#!/usr/bin/env bash
# Installs the API fuzzer (schemathesis, from PyPI) into localstack/.state/fuzz-venv
# (git-ignored). Idempotent: a marker holding the pinned version skips a second run.
# Needs CPython >= 3.9 (3.11 here; FUZZ_PYTHON=/path/to/python to choose) and PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${LOCALSTACK_STATE_DIR:-$here/.state}"
venv="$state/fuzz-venv"
schemathesis_version=4.32.5
marker="$venv/.schemathesis-installed"

log() { printf '[fuzz] %s\n' "$*"; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -f "$marker" && "$(cat "$marker")" == "$schemathesis_version" && -x "$venv/bin/st" ]]; then
    log "schemathesis $schemathesis_version ok"
    exit 0
fi

find_python() {
    local candidate
    for candidate in "${FUZZ_PYTHON:-}" "$(command -v python3.11 || true)" \
        "$(command -v python3.12 || true)" "$(command -v python3 || true)"; do
        # Run it: a pyenv shim exists on PATH even when its version is not installed.
        if [[ -n "$candidate" ]] \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    return 1
}

python="$(find_python)" || die "no CPython >= 3.9 found (set FUZZ_PYTHON=/path/to/python3)"
log "installing schemathesis $schemathesis_version with $python"
mkdir -p "$state/tmp"
rm -rf "$venv"
"$python" -m venv "$venv"
TMPDIR="$state/tmp" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$schemathesis_version"
printf '%s\n' "$schemathesis_version" >"$marker"
log "installed: $("$venv/bin/st" --version)"
