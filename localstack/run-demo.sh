#!/usr/bin/env bash
# The main job (README "Run"): from a clean clone, install what is missing, start LocalStack,
# provision the table and queues, serve the API on 127.0.0.1:3000 with the event source
# mappings, play the LendingOS story through HTTP and print what happened.
#   --keep   leave LocalStack and the API running afterwards (Ctrl-C stops the API)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
. localstack/env.sh
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

cleanup() { [[ $keep == 1 ]] || bash localstack/stop.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "▶ building (first time: a few minutes)"
cargo build --quiet -p local-runner
echo "▶ starting LocalStack"
bash localstack/start.sh
# The runner's own logs go to a file; the story goes to the terminal.
log=localstack/.state/demo-runner.log
RUST_LOG="${RUST_LOG:-info}" target/debug/local-runner demo </dev/null 2>"$log"
echo "  (runner log: $log)"
if [[ $keep == 1 ]]; then
    echo "▶ --keep: API on http://127.0.0.1:3000 (X-Tenant-Id header), Ctrl-C to stop; LocalStack stays up (localstack/stop.sh)"
    echo "▶ console: $(cat localstack/.state/demo-console.txt 2>/dev/null || echo http://127.0.0.1:3000/console)"
    exec target/debug/local-runner serve
fi
