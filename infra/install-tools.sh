#!/usr/bin/env bash
# Install the deployment tools into infra/.venv (a Python 3.11 venv, git-ignored):
# cfn-lint, aws-sam-cli (sam), cargo-lambda and ziglang (its cross linker), pinned in
# infra/requirements.txt. Idempotent: a second run only compares a stamp and exits.
#
#   bash infra/install-tools.sh          # install or confirm
#   . infra/.venv/bin/activate           # then: sam, cfn-lint, cargo lambda
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.installed"

want="$(cat "$req")"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" \
      && -x "$venv/bin/sam" && -x "$venv/bin/cfn-lint" && -x "$venv/bin/cargo-lambda" ]]; then
    exit 0
fi

pick_python() {
    local c
    for c in "${PYTHON:-}" python3.11 /root/.pyenv/versions/3.11*/bin/python3.11 python3.12 python3.13 python3; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null 2>&1 \
           && "$c" -c 'import sys, venv; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
            command -v "$c"; return 0
        fi
    done
    echo "install-tools: no Python 3.9-3.13 found (3.11 preferred); set PYTHON=" >&2
    return 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    py="$(pick_python)"
    echo "install-tools: creating $venv with $("$py" --version 2>&1)"
    "$py" -m venv "$venv"
fi
echo "install-tools: installing $(grep -v '^#' "$req" | xargs)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/cfn-lint" --version >/dev/null
"$venv/bin/sam" --version >/dev/null
"$venv/bin/cargo-lambda" lambda --version >/dev/null
printf '%s' "$want" >"$stamp"
echo "install-tools: ok ($("$venv/bin/sam" --version), cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'), $("$venv/bin/cargo-lambda" lambda --version))"
