#!/usr/bin/env bash
# Starts LocalStack as a detached host process (no Docker) on $AWS_ENDPOINT_URL
# (default http://127.0.0.1:4566), or reuses one that already answers there.
# Stop what this started with localstack/stop.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${LOCALSTACK_STATE_DIR:-$here/.state}"
pidfile="$state/localstack.pid"
reusefile="$state/localstack.reused"
logfile="$state/localstack.log"
timeout_s="${LOCALSTACK_START_TIMEOUT:-120}"

# shellcheck source-path=SCRIPTDIR source=env.sh
. "$here/env.sh"
endpoint="${AWS_ENDPOINT_URL%/}"
health_url="$endpoint/_localstack/health"

log() { printf '[localstack] %s\n' "$*"; }
healthy() { curl -fsS -m 2 -o /dev/null "$health_url" 2>/dev/null; }
# True while the recorded process group still has a member running from our
# state folder (a stale pid may since belong to someone else's process).
ours_alive() {
    [[ -s "$pidfile" ]] && pgrep -a -g "$(cat "$pidfile")" 2>/dev/null | grep -qF -- "$state"
}

mkdir -p "$state"

if healthy; then
    if ours_alive; then
        log "already running at $endpoint (started by us, pgid $(cat "$pidfile"))"
    else
        # Someone else's LocalStack (a container, another checkout): use it,
        # and leave no pid file so stop.sh will not touch it.
        rm -f "$pidfile"
        printf '%s\n' "$endpoint" >"$reusefile"
        log "reusing LocalStack already answering at $endpoint (not started by us)"
    fi
    exit 0
fi
rm -f "$reusefile"

# Ours but not answering (hung, or left over from a crash): clean up first.
"$here/stop.sh" --quiet-if-idle

# We can only start one on this machine: take host:port from the endpoint.
hostport="${endpoint#*://}"
hostport="${hostport%%/*}"
case "$hostport" in
    127.0.0.1:* | localhost:*) ;;
    127.0.0.1 | localhost) hostport="$hostport:80" ;;
    *)
        log "ERROR: nothing answers at $endpoint and it is not a local address; cannot start it"
        exit 1
        ;;
esac
hostport="127.0.0.1:${hostport##*:}"

# Anything else on the port would let LocalStack start but never answer.
probe_rc=0
curl -sS -m 2 -o /dev/null "$health_url" 2>/dev/null || probe_rc=$?
if ((probe_rc != 7)); then # 7 = connection refused: the port is free
    log "ERROR: $hostport is in use by something that is not a healthy LocalStack" \
        "(curl exit $probe_rc); free it or set AWS_ENDPOINT_URL to another port"
    exit 1
fi

"$here/install.sh"

venv="$state/venv"
mkdir -p "$state/tmp" "$state/cache" "$state/volume"
log "starting LocalStack on $hostport (log: $logfile)"
start_ns="$(date +%s%N)"

# Why each setting:
# - GATEWAY_SERVER=hypercorn: the default server ignores the host in
#   GATEWAY_LISTEN and binds 0.0.0.0.
# - SQS_ENDPOINT_STRATEGY=path: queue URLs http://127.0.0.1:4566/queue/...
#   (no DNS names needed).
# - OVERRIDE_IN_DOCKER=0: otherwise it writes under /var/lib, /usr/lib, /etc.
# - FILESYSTEM_ROOT, volume, TMPDIR, XDG_CACHE_HOME, java.io.tmpdir: keep
#   every file inside the state folder; -XX:-UsePerfData: no /tmp/hsperfdata.
# - DNS_ADDRESS=0, SKIP_SSL_CERT_DOWNLOAD=1, DISABLE_EVENTS=1: no DNS server,
#   no downloads, no analytics (nothing outside the registries is reachable).
# setsid makes LocalStack the leader of a new process group (its pid is the
# pgid) so stop.sh can end it with its java and node children. The inner bash
# records that pid, closes every inherited descriptor above 2 and execs, so the
# server never holds the caller's pipes open.
: >"$logfile"
# shellcheck disable=SC2016 # $$ and $fd are for the inner bash
env \
    GATEWAY_LISTEN="$hostport" \
    GATEWAY_SERVER=hypercorn \
    LOCALSTACK_HOST="$hostport" \
    SQS_ENDPOINT_STRATEGY=path \
    OVERRIDE_IN_DOCKER=0 \
    FILESYSTEM_ROOT="$state/fs" \
    LOCALSTACK_VOLUME_DIR="$state/volume" \
    DNS_ADDRESS=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 \
    TMPDIR="$state/tmp" \
    XDG_CACHE_HOME="$state/cache" \
    JAVA_TOOL_OPTIONS="-Djava.io.tmpdir=$state/tmp -XX:-UsePerfData" \
    LS_PIDFILE="$pidfile" \
    setsid bash -c '
        echo "$$" >"$LS_PIDFILE"
        for fd in /proc/$$/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi 2>/dev/null
        done
        unset LS_PIDFILE
        exec "$0" -m localstack.runtime.main
    ' "$venv/bin/python" </dev/null >>"$logfile" 2>&1 &

fail() {
    log "ERROR: $*"
    log "last 40 lines of $logfile:"
    tail -n 40 "$logfile" >&2 || true
    "$here/stop.sh" >/dev/null 2>&1 || true
    exit 1
}

# Wait for the pid file, then for the health endpoint.
deadline=$((SECONDS + timeout_s))
until [[ -s "$pidfile" ]]; do
    ((SECONDS < deadline)) || fail "no pid file after ${timeout_s}s"
    sleep 0.05
done
until healthy; do
    ours_alive || fail "LocalStack exited during start-up"
    ((SECONDS < deadline)) || fail "not healthy after ${timeout_s}s"
    sleep 0.25
done
healthy_ms=$((($(date +%s%N) - start_ns) / 1000000))
log "healthy after ${healthy_ms} ms (pgid $(cat "$pidfile"))"

# Warm-up: the first DynamoDB call starts DynamoDB Local (~5 s) and the first
# SQS call loads the provider; do that now so the first real call is fast.
# LocalStack does not check signatures; the header only carries the region.
auth="Authorization: AWS4-HMAC-SHA256 Credential=$AWS_ACCESS_KEY_ID/20240101/$AWS_REGION/x/aws4_request, SignedHeaders=host, Signature=0"
warm() { # service target body
    curl -fsS -m 60 -o /dev/null -H "$auth" -H "Content-Type: application/x-amz-json-1.0" \
        -H "X-Amz-Target: $2" --data "$3" "$endpoint/" || fail "warm-up of $1 failed"
}
warm dynamodb DynamoDB_20120810.ListTables '{}'
warm sqs AmazonSQS.ListQueues '{}'
warm dynamodbstreams DynamoDBStreams_20120810.ListStreams '{}'
ready_ms=$((($(date +%s%N) - start_ns) / 1000000))
log "ready after ${ready_ms} ms (DynamoDB, Streams and SQS warmed up)"
