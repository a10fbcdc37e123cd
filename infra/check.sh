#!/usr/bin/env bash
# Offline checks of the SAM template (part of localstack/run-tests.sh):
#   cfn-lint infra/template.yaml        (errors, warnings and informational findings fail)
#   sam validate --lint                 (SAM transform + cfn-lint, as `sam deploy` sees it)
# No AWS account is contacted: a dummy region and dummy credentials are set. The
# template's agreement with the code (queues, table, IAM, functions) is tested by
# tests/tests/infra_template.rs, which runs with the other Rust tests.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/install-tools.sh"
bin="$here/.venv/bin"
template="$here/template.yaml"

export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=offline-check AWS_SECRET_ACCESS_KEY=offline-check
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
export SAM_CLI_TELEMETRY=0 SAM_CLI_CONTAINER_CONNECTION_TIMEOUT=1

"$bin/cfn-lint" --format parseable "$template"
echo "cfn-lint: ok"
# sam validate prints its verdict; with --lint it exits non-zero on any cfn-lint error.
out="$("$bin/sam" validate --lint --template-file "$template" 2>&1)" || { echo "$out"; exit 1; }
echo "sam validate --lint: ${out##*/}"
