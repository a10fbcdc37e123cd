#!/usr/bin/env bash
# Every function under cargo-lambda, against LocalStack: provisions a fresh prefix, starts
# `cargo lambda watch` with the functions' environment (`local-runner provision --exports`),
# invokes each function in functions/ with a fixture from tests/fixtures, checks each answer,
# prints one PASS/FAIL line per function, stops what it started and deletes its prefix.
# Exits non-zero on any failure.
#
#   bash localstack/cargo-lambda.sh      # LocalStack must answer (bash localstack/start.sh)
#
# LAMBDA_PORT: the emulator's port (default: a free one). LAMBDA_INVOKE_TIMEOUT_SECS: how
# long one invoke may take (default 900: watch builds a function in debug on its first
# invoke, minutes on a small machine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
. localstack/env.sh
state=localstack/.state
mkdir -p "$state"

if ! curl -fsS -m 5 -o /dev/null "$AWS_ENDPOINT_URL/_localstack/health"; then
    echo "cargo-lambda: LocalStack does not answer at $AWS_ENDPOINT_URL; start it: bash localstack/start.sh" >&2
    exit 1
fi

bash infra/install-tools.sh
export PATH="$PWD/infra/.venv/bin:$PATH"
python=infra/.venv/bin/python3
cargo build --quiet -p local-runner -p evctl
# The functions: every package under functions/ with a binary (its name is the package's).
functions=()
for main in functions/*/src/main.rs; do
    functions+=("$(basename "$(dirname "$(dirname "$main")")")")
done
# Built here, where cargo shows its progress; watch's first invoke then only starts them.
cargo build --quiet $(printf -- '-p %s ' "${functions[@]}")

prefix="cl-$($python -c 'import uuid; print(uuid.uuid4().hex[:8])')"
port="${LAMBDA_PORT:-$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
invoke_timeout="${LAMBDA_INVOKE_TIMEOUT_SECS:-900}"
# Under localstack/.state, outside the sources: a log inside the watched tree would make
# watch rebuild in a loop (--ignore-changes stops that too).
log="$state/cargo-lambda-$prefix.log"
: >"$log"

watch_pid=""
cleanup() {
    if [[ -n "$watch_pid" ]]; then
        # Its process group: watch and the functions it started.
        kill -TERM -- "-$watch_pid" 2>/dev/null || true
        wait "$watch_pid" 2>/dev/null || true
    fi
    target/debug/local-runner teardown --prefix "$prefix" >>"$log" 2>&1 || true
    if [[ -n "${made:-}" ]]; then rm -rf "$made"; fi
}
trap cleanup EXIT
# watch is in a session of its own, out of reach of Ctrl-C: an interrupt must still run the
# clean-up.
trap 'exit 130' INT TERM

echo "cargo-lambda: prefix $prefix, port $port, log $log"
exports="$(target/debug/local-runner provision --prefix "$prefix" --exports 2>>"$log")"
eval "$exports"
# API Gateway v1 events carry the stage in their path (/prod/...); the router has none.
export AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$port" </dev/null >>"$log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 120); do
    code="$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
    [[ "$code" != "000" ]] && break
    if ! kill -0 "$watch_pid" 2>/dev/null; then
        echo "cargo-lambda: watch exited; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep 0.5
done

failures=0
answer=""
checked=()
# invoke <function> <fixture>: the answer in $answer; false when the invoke itself failed.
invoke() {
    local started=$SECONDS data="tests/fixtures/$2"
    # A fixture made during the run (it names what an earlier answer gave) has its own path.
    [[ "$2" == /* ]] && data="$2"
    echo "--- invoke $1 --data-file $data" >>"$log"
    if answer="$(timeout --foreground "$invoke_timeout" cargo lambda invoke "$1" -A 127.0.0.1 -P "$port" \
        --data-file "$data" 2>>"$log")"; then
        echo "--- $1 answered in $((SECONDS - started)) s: $answer" >>"$log"
        return 0
    fi
    echo "--- $1 failed after $((SECONDS - started)) s: $answer" >>"$log"
    return 1
}
# holds <python expression>: true when it holds of the answer (`r`; `body` is r["body"]
# parsed, for API Gateway responses).
holds() {
    ANSWER="$answer" "$python" - "$1" <<'PY'
import json, os, sys
try:
    r = json.loads(os.environ["ANSWER"])
    body = json.loads(r["body"]) if isinstance(r, dict) and isinstance(r.get("body"), str) else None
    ok = eval(sys.argv[1])
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}
# dead_letters <domain>: how many messages the domain's DLQ holds (a rejected message is
# acknowledged too, so an empty batchItemFailures alone does not prove success).
dead_letters() {
    target/debug/evctl --prefix "$prefix" --json dlq list --domain "$1" 2>>"$log" \
        | "$python" -c 'import json, sys; print(sum(q["count"] for q in json.load(sys.stdin)["dlqs"]))'
}
# check <function> <fixture> <python expression> <what it means> [<domain>]
check() {
    local fn="$1" fixture="$2" expr="$3" meaning="$4" domain="${5:-}" ok=1 dead
    checked+=("$fn")
    invoke "$fn" "$fixture" && holds "$expr" || ok=0
    if [[ $ok == 1 && -n "$domain" ]]; then
        dead="$(dead_letters "$domain" || echo "?")"
        [[ "$dead" == "0" ]] || { ok=0; meaning="$meaning; $domain DLQ holds $dead"; }
    fi
    if [[ $ok == 1 ]]; then
        printf 'PASS  %-21s %-36s %s\n' "$fn" "${fixture##*/}" "$meaning"
    else
        printf 'FAIL  %-21s %-36s %s; got: %.300s\n' "$fn" "${fixture##*/}" "$meaning" "$answer"
        failures=$((failures + 1))
    fi
}

no_failures='r == {"batchItemFailures": []}'
check ingest apigw-v2-post-events.json \
    'r["statusCode"] == 201 and [e["sequence"] for e in body["events"]] == [1, 2]' \
    "201, Loan.Created and Loan.Funded stored"
check ingest apigw-v2-post-draw.json \
    'r["statusCode"] == 201 and body["events"][0]["eventType"] == "Draw.Requested"' \
    "201, Draw.Requested stored"
check ingest apigw-v1-get-state.json \
    'r["statusCode"] == 200 and body["state"]["fundedAmount"] == "100000.00"' \
    "200, the funded loan's state"
check dispatch dynamodb-stream-loan-funded.json "$no_failures" "no failed records"
check payment-handler sqs-loan-funded.json "$no_failures" "no failures, nothing dead-lettered" payment
check draw-handler sqs-draw-requested.json "$no_failures" "no failures, nothing dead-lettered" draw
check compliance-handler sqs-compliance-loan-funded.json "$no_failures" "no failures, nothing dead-lettered" compliance
check fund-handler sqs-fund-loan-funded.json "$no_failures" "no failures, nothing dead-lettered" fund
check notification-handler sqs-notification-loan-funded.json "$no_failures" "no failures, nothing dead-lettered" notification
check projection-handler sqs-projection-loan-funded.json "$no_failures" "no failures, nothing dead-lettered" projection
# The summary the projection wrote, read back through ingest's loan list (borrower index).
check ingest apigw-v2-get-loans.json \
    'r["statusCode"] == 200 and [(l["loanId"], l["status"], l["outstandingPrincipal"], l["version"]) for l in body["loans"]] == [("L-FIXTURE-1", "funded", "100000.00", 2)]' \
    "200, the loan's summary folded at the funding"
# A rebuild started as a job (202); its first step, as the step queue would deliver it, run by
# projection-rebuild; the job read back COMPLETED over the one loan.
check ingest apigw-v2-post-rebuild-async.json \
    'r["statusCode"] == 202 and body["status"] == "RUNNING" and r["headers"]["location"] == "/projections/loan-summary/rebuilds/" + body["jobId"]' \
    "202, a rebuild job started"
made="$PWD/$state/cargo-lambda-$prefix-fixtures"
mkdir -p "$made"
ANSWER="$answer" "$python" - "$made" <<'PY' >>"$log" 2>&1 || true
import json, os, sys
made = sys.argv[1]
job = json.loads(json.loads(os.environ["ANSWER"])["body"])["jobId"]
step = json.load(open("tests/fixtures/sqs-projection-loan-funded.json"))
record = step["Records"][0]
record["body"] = json.dumps({"tenant": "demo-fixture", "jobId": job, "page": 0})
record["attributes"]["MessageGroupId"] = job
record["attributes"]["MessageDeduplicationId"] = f"{job}#0"
record["messageAttributes"] = {}
record["eventSourceARN"] = "arn:aws:sqs:us-east-1:000000000000:lendingos-projection-rebuild.fifo"
json.dump(step, open(f"{made}/sqs-rebuild-step.json", "w"))
status = json.load(open("tests/fixtures/apigw-v2-get-loans.json"))
path = f"/projections/loan-summary/rebuilds/{job}"
status["rawPath"] = status["requestContext"]["http"]["path"] = path
status["rawQueryString"] = ""
status.pop("queryStringParameters", None)
status["requestContext"]["authorizer"]["jwt"]["scopes"] = ["ops:replay"]
json.dump(status, open(f"{made}/apigw-v2-get-rebuild-job.json", "w"))
PY
check projection-rebuild "$made/sqs-rebuild-step.json" "$no_failures" "no failures: the job's page rebuilt"
check ingest "$made/apigw-v2-get-rebuild-job.json" \
    'r["statusCode"] == 200 and body["status"] == "COMPLETED" and body["loans"] == 1 and body["written"] == 1' \
    "200, the job COMPLETED over the one loan"
# A delivery for a subscription that no longer exists is dropped (acknowledged, not sent).
check delivery-handler sqs-delivery-deleted-subscription.json "$no_failures" "no failures: a deleted subscription's delivery is dropped"
# The schedule payment-handler stored makes the installments due before 2026-04-25 (the
# 15-day grace period) late on 2026-05-10: two notices, their fees, one status change.
check late-payments scheduled-late-payments.json \
    'r["loans"] == 1 and r["lateNotices"] == 2 and r["emitted"] == 5 and r["errors"] == []' \
    "2 Payment.Late, 2 fees and a status change for the loan"
# What the handlers appended, read back through ingest.
check ingest apigw-v2-get-history.json \
    'r["statusCode"] == 200 and [e["eventType"] for e in body["events"]][:3] == ["Loan.Created", "Loan.Funded", "PaymentSchedule.Generated"]' \
    "200, the schedule follows the funding"

# A function added to functions/ without a check here fails the run.
for fn in "${functions[@]}"; do
    if [[ " ${checked[*]} " != *" $fn "* ]]; then
        printf 'FAIL  %-21s %-36s %s\n' "$fn" "-" "no fixture invoked for it in localstack/cargo-lambda.sh"
        failures=$((failures + 1))
    fi
done

total="$(grep -c '^--- invoke ' "$log")"
if [[ $failures -ne 0 ]]; then
    echo "cargo-lambda: $failures failures in $total invocations of ${#functions[@]} functions (log: $log)"
    exit 1
fi
echo "cargo-lambda: all $total invocations of ${#functions[@]} functions passed"
