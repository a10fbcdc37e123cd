#!/usr/bin/env bash
# Every benchmark, one command (figures and how to read them: BENCHMARKS.md). Installs
# nothing beyond what run-tests.sh needs; needs no LocalStack (all figures are in-process or
# against a local Lambda Runtime API emulator). Output: a readable report on stdout and the
# machine-readable lines (BENCH / BENCHCALLS / COLDSTART) in target/benchmarks/results.txt.
#
#   bash localstack/run-benchmarks.sh            # everything
#   RUNS=30 BENCH_SAMPLES=31 bash localstack/run-benchmarks.sh
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

step "cold start and footprint (release bootstraps under a Runtime API emulator, $runs starts each)"
cargo build --release --quiet -p ingest -p dispatch -p payment-handler
cargo build --quiet -p event-adapters --example coldstart
target/debug/examples/coldstart --runs "$runs" \
    target/release/ingest target/release/dispatch target/release/payment-handler \
    | tee -a "$results" | grep -v '^COLDSTART'

echo
echo "results: $results"
