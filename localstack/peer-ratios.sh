#!/usr/bin/env bash
# The project against the Python peer a team would write (../shared/peers/powertools: AWS
# Lambda Powertools + pydantic + boto3's TypeSerializer, the same work, no AWS calls), as
# ratios from ONE run: peer and project interleaved (peer, project, peer, project, ...), each
# ratio = peer median / project median, with the load average at every step. Needs no
# LocalStack. Idempotent: makes the peer's virtualenv (PyPI only) the first time, reuses it
# after. `localstack/run-benchmarks.sh` runs it too; BENCHMARKS.md has the figures.
#
#   bash localstack/peer-ratios.sh
#   ROUNDS=3 BENCH_SAMPLES=21 bash localstack/peer-ratios.sh
#   PEER_DIR=/path/to/powertools PEER_VENV=/tmp/peer-venv bash localstack/peer-ratios.sh
#
# Rows (the project's side: functions/adapters/benches/peer_rows.rs and the handler rows of
# core/benches/core_paths.rs):
#   ingest, 1-event and 25-event requests, per event   target >= 20x the peer
#     and the part of those rows that is the AWS SDK's and the runtime's writing, to show
#     what a 20x target leaves room for
#   Loan.Funded -> 360-period schedule, per message    target >= 20x the peer
#   each handler: validated follow-ons / (decision + one serialisation of its output)
#                                                      target <= 3x
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/.."
cd "$root"
export CARGO_INCREMENTAL=0
rounds="${ROUNDS:-2}"
samples="${BENCH_SAMPLES:-21}"
out=target/benchmarks
mkdir -p "$out"
log="$out/peer-ratios.txt"
: >"$log"

# The peer sits next to the main checkout (../shared/peers/powertools); from a git worktree
# elsewhere, next to the main checkout's directory.
peer="${PEER_DIR:-}"
if [[ -z "$peer" ]]; then
    for candidate in "$root/../shared/peers/powertools" \
        "$(dirname "$(git rev-parse --path-format=absolute --git-common-dir)")/../shared/peers/powertools"; do
        if [[ -f "$candidate/bench.py" ]]; then
            peer="$(cd "$candidate" && pwd)"
            break
        fi
    done
fi
[[ -n "$peer" && -f "$peer/bench.py" ]] || {
    echo "the Python peer is not found: set PEER_DIR to its folder (with bench.py)" >&2
    exit 1
}

venv="${PEER_VENV:-$root/target/peer-venv}"
if ! "$venv/bin/python" -c 'import aws_lambda_powertools, pydantic, boto3' 2>/dev/null; then
    echo "== making the peer's virtualenv in $venv (PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --index-url https://pypi.org/simple \
        "aws-lambda-powertools[parser]" pydantic boto3
fi

echo "== building the project's benches (bench profile: the release settings)"
bench_binary() { # package, bench target -> the executable's path
    cargo bench --no-run -p "$1" --bench "$2" 2>&1 | tee -a "$out/peer-ratios-build.txt" |
        sed -n "s/^ *Executable benches\/$2.rs (\(.*\))$/\1/p" | tail -1
}
: >"$out/peer-ratios-build.txt"
rows_bin="$(bench_binary event-adapters peer_rows)"
core_bin="$(bench_binary lending-events core_paths)"
[[ -x "$rows_bin" && -x "$core_bin" ]] || {
    echo "the benches did not build: see $out/peer-ratios-build.txt" >&2
    exit 1
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc), cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "peer: $peer ($("$venv/bin/python" --version 2>&1))"
    echo "project: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' + uncommitted changes'), rustc $(rustc --version | cut -d' ' -f2)"
} | tee -a "$log"

for round in $(seq 1 "$rounds"); do
    echo "== round $round: peer (load $(load))" | tee -a "$log"
    (cd "$peer" && "$venv/bin/python" bench.py --no-write --repeats 7 --target-s 0.4 --cold-runs 1) |
        sed -n '/^| warm case/,/^$/p' | sed "s/^/PEER $round /" | tee -a "$log"
    echo "== round $round: project (load $(load))" | tee -a "$log"
    for rows in peer/ encode/; do
        BENCH_SAMPLES="$samples" "$rows_bin" "$rows" 2>/dev/null | grep '^BENCH' |
            sed "s/^/PROJECT $round /" | tee -a "$log" | cut -c1-140
    done
    BENCH_SAMPLES="$samples" "$core_bin" handler/ 2>/dev/null | grep '^BENCH' |
        sed "s/^/PROJECT $round /" | tee -a "$log" | cut -c1-140
done
echo "== end (load $(load))" | tee -a "$log"

python3 - "$log" <<'PY' | tee -a "$log"
import json, re, statistics, sys

peer, project = {}, {}
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"PEER (\d+) \| (.+?) \| ([\d.]+) \| ([\d.]+) \|", line)
    if m:
        peer.setdefault(m[2], {})[int(m[1])] = float(m[3])  # µs per event / record
        continue
    m = re.match(r"PROJECT (\d+) BENCH (\{.*\})$", line)
    if m:
        b = json.loads(m[2])
        project.setdefault(b["name"], {})[int(m[1])] = b["median_ns"] / 1e3 / b["units"]

rows = [
    ("ingest, 1-event request (per event)", "ingest, 1-event request (µs/event)",
     "peer/ingest, 1-event request (per event)"),
    ("ingest, 25-event request (per event)", "ingest, 25-event request (µs/event)",
     "peer/ingest, 25-event request (per event)"),
    ("Loan.Funded -> 360-period schedule (per message)",
     "payment, 10-record batch, 360-month loans (µs/record)",
     "peer/Loan.Funded -> 360-period schedule (per message)"),
]
print()
print("| row | peer median µs (per round) | project median µs (per round) | ratio per round | ratio of medians | target | met |")
print("|---|---|---|---|---|---|---|")
for label, p, q in rows:
    pr, qr = peer.get(p, {}), project.get(q, {})
    common = sorted(set(pr) & set(qr))
    if not common:
        print(f"| {label} | missing | missing | | | >= 20x | |")
        continue
    per_round = [pr[r] / qr[r] for r in common]
    overall = statistics.median(pr.values()) / statistics.median(qr.values())
    fmt = lambda xs: ", ".join(f"{x:.1f}" if x >= 10 else f"{x:.2f}" for x in xs)
    print(f"| {label} | {fmt(pr[r] for r in common)} | {fmt(qr[r] for r in common)} | "
          f"{', '.join(f'{x:.1f}x' for x in per_round)} | {overall:.1f}x | >= 20x | "
          f"{'yes' if overall >= 20 else 'no'} |")

print()
print("What a 20x ingest leaves room for, against what the AWS SDK's and the Lambda runtime's writing")
print("alone takes in the same row (the items' and SQS entries' wire JSON, the 201 in API Gateway's shape):")
print()
print("| row | 20x budget (peer / 20) µs | the AWS encodings alone µs | the project's own part µs | highest ratio with the project's part free |")
print("|---|---|---|---|---|")
for label, p, q in rows[:2]:
    floor = project.get(q.replace(" (per event)", ": the AWS encodings alone (per event)"), {})
    pr, qr = peer.get(p, {}), project.get(q, {})
    if not (pr and qr and floor):
        print(f"| {label} | missing | | | |")
        continue
    pm, qm, fm = (statistics.median(x.values()) for x in (pr, qr, floor))
    print(f"| {label} | {pm / 20:.2f} | {fm:.2f} | {qm - fm:.2f} | {pm / fm:.1f}x |")
model = project.get("encode/a stored envelope as a JSON string, serde_json (the rows' model)", {})
sdk = project.get("encode/a stored envelope as a JSON string, aws-smithy-json (the SDK's writer)", {})
if model and sdk:
    mm, sm = statistics.median(model.values()), statistics.median(sdk.values())
    print()
    print(f"The encodings are modelled with serde_json; the SDK's own writer (aws-smithy-json) escapes a")
    print(f"stored envelope in {sm:.2f} µs where the model takes {mm:.2f} µs ({sm / mm:.1f}x): the model errs low.")

print()
print("| handler (core path, per message) | decision µs | + one serialisation µs (floor) | + validated follow-ons, serialised µs | validated / floor | target | met |")
print("|---|---|---|---|---|---|---|")
names = sorted({n.split(": ")[0] for n in project if n.startswith("handler/")})
for n in names:
    med = lambda suffix: statistics.median(project.get(f"{n}: {suffix}", {0: float("nan")}).values())
    d, f, v = med("decision"), med("decision + one serialisation"), med("decision + validated follow-ons, serialised")
    ratio = v / f
    print(f"| {n.removeprefix('handler/')} | {d:.1f} | {f:.1f} | {v:.1f} | {ratio:.1f}x | <= 3x | {'yes' if ratio <= 3 else 'no'} |")
PY
echo
echo "log: $log"
