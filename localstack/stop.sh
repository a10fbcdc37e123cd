#!/usr/bin/env bash
# Stops the LocalStack that localstack/start.sh started (never one it merely
# reused), with its DynamoDB Local (java) and kinesis-local (node) children.
# TERM, up to 10 s, then KILL. Idempotent: succeeds when nothing runs.
#
# LocalStack starts its children in sessions of their own, so the process
# group in the pid file holds only LocalStack itself. A TERM to it shuts the
# children down too; after a KILL (or a crash) they would be orphaned, so this
# also finds them by their command line, which points into our state folder.
#
# Usage: stop.sh [--quiet-if-idle]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${LOCALSTACK_STATE_DIR:-$here/.state}"
pidfile="$state/localstack.pid"
quiet_if_idle=0
[[ "${1:-}" == "--quiet-if-idle" ]] && quiet_if_idle=1

log() { printf '[localstack] %s\n' "$*"; }

# PIDs of the processes start.sh runs from this state folder: the LocalStack
# server (venv python) and the java/node servers it launches from the fs root.
ours() {
    local dir pid comm argv args
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        # Builtins only (no fork per process): this runs in a polling loop.
        { read -r comm <"$dir/comm"; } 2>/dev/null || continue
        case "$comm" in python* | java | node) ;; *) continue ;; esac
        { mapfile -d '' -t argv <"$dir/cmdline"; } 2>/dev/null || continue
        args="${argv[*]}"
        case "$comm" in
            python*) [[ "$args" == "$state/venv/bin/python -m localstack.runtime.main"* ]] || continue ;;
            *) [[ "$args" == *"$state/fs/"* ]] || continue ;;
        esac
        printf '%s\n' "$pid"
    done
}

rm -f "$state/localstack.reused"
pgid=""
if [[ -s "$pidfile" ]]; then
    pgid="$(cat "$pidfile")"
    [[ "$pgid" =~ ^[0-9]+$ ]] && ((pgid > 1)) || pgid=""
fi

mapfile -t pids < <(ours)
if ((${#pids[@]} == 0)); then
    rm -f "$pidfile"
    ((quiet_if_idle)) || log "nothing to stop"
    exit 0
fi

log "stopping LocalStack (pids ${pids[*]})"
# Graceful first: LocalStack's own shutdown stops its java and node servers.
# Signal the group only if its leader is really ours (pid numbers get reused).
if [[ -n "$pgid" ]] && printf '%s\n' "${pids[@]}" | grep -qx -- "$pgid"; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
fi
kill -TERM "${pids[@]}" 2>/dev/null || true

for _ in $(seq 1 100); do
    mapfile -t pids < <(ours)
    ((${#pids[@]} == 0)) && break
    sleep 0.1
done
if ((${#pids[@]} > 0)); then
    log "still running after 10 s: ${pids[*]}; sending KILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
        mapfile -t pids < <(ours)
        ((${#pids[@]} == 0)) && break
        sleep 0.1
    done
    if ((${#pids[@]} > 0)); then
        log "ERROR: still running after KILL: ${pids[*]}"
        exit 1
    fi
fi
rm -f "$pidfile"
log "stopped"
