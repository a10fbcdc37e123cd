#!/usr/bin/env bash
# Two builds of the local runner under the same load on the same LocalStack, interleaved
# (before, after, before, after, ...), so the ratios come from ONE run: end-to-end events/s,
# latency, DynamoDB calls per handled message and capacity units per event, each round's
# figures and the ratio of the medians. The "before" binary is any commit's
# `target/debug/local-runner` (build it from a worktree of that commit); "after" defaults to
# this checkout's. Needs LocalStack (`bash localstack/start.sh`); each run provisions its own
# prefix and leaves the emulator as it found it.
#
#   bash localstack/compare-load.sh /tmp/before-runner
#   ROUNDS=1 LOAD_ARGS="--events 80 --aggregates 8 --batch 1 --concurrency 4" \
#       bash localstack/compare-load.sh /tmp/before-runner target/debug/local-runner
#   FRESH_EMULATOR=1 bash localstack/compare-load.sh /tmp/before-runner
#
# LocalStack slows down as runs accumulate (each run's table and stream, even deleted), so
# the later of two runs meets a slower emulator. FRESH_EMULATOR=1 restarts it before every
# run (it stops LocalStack: nothing else may be using it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
. localstack/env.sh
before="${1:?usage: compare-load.sh BEFORE_BINARY [AFTER_BINARY]}"
after="${2:-target/debug/local-runner}"
rounds="${ROUNDS:-2}"
# The `End to end on LocalStack` load of BENCHMARKS.md.
read -r -a load_args <<<"${LOAD_ARGS:---events 160 --aggregates 8 --batch 1 --concurrency 4}"
out=target/benchmarks/compare-load
mkdir -p "$out"
rm -f "$out"/*.json

for round in $(seq 1 "$rounds"); do
    for side in before after; do
        bin="$before"
        [[ "$side" == after ]] && bin="$after"
        if [[ "${FRESH_EMULATOR:-0}" == 1 ]]; then
            bash localstack/stop.sh >/dev/null 2>&1 || true
            bash localstack/start.sh >/dev/null
        fi
        printf '== round %s, %s (%s), load average %s\n' "$round" "$side" "$bin" "$(cut -d' ' -f1-3 /proc/loadavg)"
        "$bin" load --json "${load_args[@]}" --prefix "cmp-$side-$round" >"$out/$side-$round.out" 2>"$out/$side-$round.err" || {
            echo "load run failed; see $out/$side-$round.err"
            tail -n 5 "$out/$side-$round.err"
            exit 1
        }
        grep '^LOAD ' "$out/$side-$round.out" | cut -c6- >"$out/$side-$round.load.json"
        grep '^CALLS ' "$out/$side-$round.out" | cut -c7- >"$out/$side-$round.calls.json"
    done
done

python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])

def figures(side, r):
    load = json.load(open(f"{out}/{side}-{r}.load.json"))
    calls = json.load(open(f"{out}/{side}-{r}.calls.json"))
    handled = max(calls["handled"], 1)
    # Calls of work: every DynamoDB call of the handler runners (domain handlers and, where
    # counted apart, the read model) except the switch reads of idle pollers.
    work = 0
    for label in ("handlers", "projection"):
        for op, n in calls["counts"].get(label, {}).items():
            if op.startswith("DynamoDB.") and op != "DynamoDB.GetItem":
                work += n
    cap = calls.get("capacity", {})
    # Every part's units as reported, and its SQS requests (the receives of the local event
    # source mapping included, as Lambda's mapping bills them): the cost per event, at the
    # list prices of BENCHMARKS.md's cost table (WRU $0.625, RRU $0.125, FIFO SQS $0.50 per
    # million).
    def all_units(field):
        return sum(c[field] for part in cap.get("byOperation", {}).values() for c in part.values())
    sqs = sum(n for part in calls["counts"].values() for op, n in part.items() if op.startswith("SQS."))
    all_calls = sum(n for part in calls["counts"].values() for n in part.values())
    def units(key, field):
        return cap.get(key, {}).get(field)
    by_part = {}
    if "handledByDomainHandlers" in calls:
        for label, key in (("handlers", "handledByDomainHandlers"), ("projection", "handledByReadModel")):
            n = sum(v for op, v in calls["counts"].get(label, {}).items()
                    if op.startswith("DynamoDB.") and op != "DynamoDB.GetItem")
            by_part[label] = n / max(calls[key], 1)
    return {
        "events/s": load["eventsPerSec"],
        "latency p50 ms": load["latencyMs"]["p50"],
        "latency p95 ms": load["latencyMs"]["p95"],
        "DynamoDB calls per handled message (switch reads left out)": work / handled,
        "domain handlers: calls per handled message": by_part.get("handlers"),
        "read model: calls per handled message": by_part.get("projection"),
        "ingest write calls per request": calls["ingestWritesPerRequest"],
        "ingest WRU per event": units("ingestPerEvent", "writePerUnit"),
        "ingest RRU per event": units("ingestPerEvent", "readPerUnit"),
        "domain handlers: WRU per handled message": units("handlersPerHandled", "writePerUnit"),
        "domain handlers: RRU per handled message": units("handlersPerHandled", "readPerUnit"),
        "read model: WRU per handled message": units("readModelPerHandled", "writePerUnit"),
        "read model: RRU per handled message": units("readModelPerHandled", "readPerUnit"),
        "all parts: DynamoDB WRU per published event": all_units("write") / load["events"],
        "all parts: DynamoDB RRU per published event": all_units("read") / load["events"],
        "all parts: SQS requests per published event": sqs / load["events"],
        "all parts: DynamoDB + SQS $ per million published events (list prices)":
            (all_units("write") * 0.625 + all_units("read") * 0.125 + sqs * 0.50) / load["events"],
        "all parts: AWS calls per published event": all_calls / load["events"],
        "handled messages": calls["handled"],
        "load average": load["loadavg"],
    }

rows = {side: [figures(side, r) for r in range(1, rounds + 1)] for side in ("before", "after")}
def med(side, k):
    vals = [f[k] for f in rows[side] if isinstance(f[k], (int, float))]
    return statistics.median(vals) if vals else None
print("\nfigure | before (each round) | after (each round) | after/before (medians)")
for k in rows["before"][0]:
    b = [f[k] for f in rows["before"]]
    a = [f[k] for f in rows["after"]]
    mb, ma = med("before", k), med("after", k)
    ratio = f"{ma / mb:.2f}x" if mb and ma is not None else ""
    fmt = lambda vs: ", ".join("-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in vs)
    print(f"{k} | {fmt(b)} | {fmt(a)} | {ratio}")
EOF
