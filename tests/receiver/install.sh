#!/usr/bin/env bash
# Install the test webhook receiver's one dependency, the Standard Webhooks reference
# library from PyPI, into tests/receiver/.venv (a Python 3.9+ venv, git-ignored).
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

if [[ ! -x "$venv/bin/python" ]]; then
    # Any Python 3.9 or newer (the library's floor); PYTHON= picks another.
    py="${PYTHON:-python3}"
    "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
        || { echo "receiver install: $py is older than Python 3.9; set PYTHON=" >&2; exit 1; }
    echo "receiver install: creating $venv with $("$py" --version 2>&1)" >&2
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" -c 'import standardwebhooks'
printf '%s' "$want" >"$stamp"
echo "receiver install: ok" >&2
