#!/usr/bin/env bash
# Every benchmark, one command (figures and how to read them: BENCHMARKS.md). Installs
# nothing beyond what run-tests.sh needs. The in-process and cold-start parts need no
# LocalStack; the end-to-end part starts it (localstack/start.sh) unless one already answers,
# and stops it at the end only if it started it. Output: a readable report on stdout and the
# machine-readable lines (BENCH / BENCHCALLS / COLDSTART / LOAD / CALLS / CEILING) in
# target/benchmarks/results.txt.
#
#   bash localstack/run-benchmarks.sh            # everything
#   RUNS=30 BENCH_SAMPLES=31 bash localstack/run-benchmarks.sh
#   LOAD_EVENTS=800 bash localstack/run-benchmarks.sh   # a longer end-to-end run
#   SKIP_PEER=1 bash localstack/run-benchmarks.sh        # without the Python peer's ratios
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
out=target/benchmarks
mkdir -p "$out"
results="$out/results.txt"
: > "$results"
runs="${RUNS:-20}"

step() { printf '\n== %s\n' "$*"; }

step "machine"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rustc: $(rustc --version)"
} | tee -a "$results"

step "core: ingest path, schedules, loan fold (cargo bench -p lending-events --bench core_paths)"
cargo bench --quiet -p lending-events --bench core_paths 2>&1 | tee -a "$results" | grep -v '^BENCH'

step "handlers: 10-message SQS batches on in-memory ports (cargo bench -p event-adapters --bench handlers)"
# EMF metric lines go to stderr: left out.
cargo bench --quiet -p event-adapters --bench handlers 2>/dev/null | tee -a "$results" | grep -v '^BENCH'

step "against the Python peer: ratios from one interleaved run (localstack/peer-ratios.sh)"
# SKIP_PEER=1 skips it (it makes the peer's virtualenv from PyPI the first time).
if [[ "${SKIP_PEER:-0}" != 1 ]]; then
    bash "$here/peer-ratios.sh" 2>&1 | grep -v '^PEER \|^PROJECT ' | tee -a "$results"
fi

step "cold start and footprint (release bootstraps under a Runtime API emulator, $runs starts each)"
cargo build --release --quiet -p ingest -p dispatch -p payment-handler
cargo build --quiet -p event-adapters --example coldstart
bins=(target/release/ingest target/release/dispatch target/release/payment-handler)
echo "-- this machine's certificate store (Debian: a directory of 400+ files)"
target/debug/examples/coldstart --runs "$runs" "${bins[@]}" | tee -a "$results" | grep -v '^COLDSTART'
# Lambda's AL2023 has one CA bundle file; the template points SSL_CERT_FILE at it.
echo "-- one CA bundle file (SSL_CERT_FILE, as the template sets on Lambda)"
target/debug/examples/coldstart --runs "$runs" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    "${bins[@]}" | sed 's/^COLDSTART {/COLDSTART {"certs":"bundle",/' | tee -a "$results" | grep -v '^COLDSTART'

step "bootstrap size: release (opt-level s) against release-z (opt-level z)"
# SKIP_SIZE_Z=1 skips the second full release build (~5 min on 2 cores).
if [[ "${SKIP_SIZE_Z:-0}" != 1 ]]; then
    cargo build --profile release-z --quiet -p ingest -p dispatch -p payment-handler
    for f in ingest dispatch payment-handler; do
        s=$(stat -c %s "target/release/$f")
        z=$(stat -c %s "target/release-z/$f")
        printf '%-16s s %9d B   z %9d B   z/s %.3f\n' "$f" "$s" "$z" "$(awk -v z="$z" -v s="$s" 'BEGIN { print z / s }')"
        echo "SIZE {\"function\":\"$f\",\"s_bytes\":$s,\"z_bytes\":$z}" >>"$results"
    done
fi

step "end to end on LocalStack (local-runner load: throughput, latency, AWS calls per path, ceiling)"
cargo build --quiet -p local-runner
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$here/env.sh"
started_localstack=0
if ! curl -fsS -m 2 -o /dev/null "${AWS_ENDPOINT_URL%/}/_localstack/health" 2>/dev/null; then
    bash "$here/start.sh"
    started_localstack=1
fi
stop_localstack() { if ((started_localstack)); then bash "$here/stop.sh" || true; fi; }
trap stop_localstack EXIT
# The JSON lines go to the results; the readable report (stderr) is shown without the
# handlers' metric lines (JSON on stderr outside Lambda).
run_load() {
    RUST_LOG=error target/debug/local-runner load --json "$@" \
        2> >(grep -v '^{' >&2) | tee -a "$results" | cut -c1-160
}
# Sizes for ~5 minutes on the 2-core machine: 1-event requests, 160 events over 8 loans by 4
# clients, then the same calls replayed directly against LocalStack (--ceiling); then two
# 25-event requests of 25 loans each (ingest's calls for full requests; Loan.Created and
# Loan.Approved only, so no handler runs).
run_load --events "${LOAD_EVENTS:-160}" --aggregates "${LOAD_AGGREGATES:-8}" --batch 1 \
    --concurrency "${LOAD_CONCURRENCY:-4}" --ceiling
run_load --events 50 --aggregates 25 --batch 25 --concurrency 1

# The soak: the fault storm at full size (1,000 events over 50 loans, every fault hook on);
# the test command runs it with 10 loans. Needs a local runner only for its own process.
step "soak: the fault storm with STORM_LOANS=${STORM_LOANS:-50} (tests/tests/delivery.rs)"
STORM_LOANS="${STORM_LOANS:-50}" cargo nextest run --quiet -p integration-tests --test delivery \
    --no-capture -E 'test(every_event_is_handled_exactly_once)' 2>&1 | grep -E '^storm|PASS|FAIL'

echo
echo "results: $results"
