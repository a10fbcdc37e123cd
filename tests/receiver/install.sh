#!/usr/bin/env bash
# Install the test webhook receiver's one dependency, the Standard Webhooks reference
# library from PyPI, into tests/receiver/.venv (a Python 3.9-3.13 venv, git-ignored).
# Idempotent and safe to run from parallel test processes: a second run compares a stamp
# and exits. The integration tests' `Receiver::start` runs it before starting receiver.py.
#
#   bash tests/receiver/install.sh
#   tests/receiver/.venv/bin/python tests/receiver/receiver.py --secret whsec_...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.installed"
want="$(cat "$req")"

installed() { [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; }
installed && exit 0

# One installer at a time; the others wait and then find it done.
exec 9>"$here/.install.lock"
flock 9
installed && exit 0

pick_python() {
    local c
    for c in "${PYTHON:-}" python3.11 /root/.pyenv/versions/3.11*/bin/python3.11 python3.12 python3.13 python3; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null 2>&1 \
           && "$c" -c 'import sys, venv; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
            command -v "$c"; return 0
        fi
    done
    echo "receiver install: no Python 3.9-3.13 found (3.11 preferred); set PYTHON=" >&2
    return 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    py="$(pick_python)"
    echo "receiver install: creating $venv with $("$py" --version 2>&1)" >&2
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" -c 'import standardwebhooks' 
printf '%s' "$want" >"$stamp"
echo "receiver install: ok" >&2
