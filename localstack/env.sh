# shellcheck shell=bash
# Source this (`. localstack/env.sh`) to point AWS SDKs and CLIs at LocalStack.
# Only fills in variables that are not already set, so a caller can aim the
# same tests at another endpoint (e.g. a LocalStack container) or real creds.
: "${AWS_ENDPOINT_URL:=http://127.0.0.1:4566}"
: "${AWS_ACCESS_KEY_ID:=test}"
: "${AWS_SECRET_ACCESS_KEY:=test}"
: "${AWS_REGION:=${AWS_DEFAULT_REGION:-us-east-1}}"
: "${AWS_DEFAULT_REGION:=$AWS_REGION}"
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION
