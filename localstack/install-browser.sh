#!/usr/bin/env bash
# Installs the headless browser the console test drives (tests/tests/console.rs): Debian's
# `chromium` and `chromium-driver`, from the system's own package sources only (never a
# browser downloaded from anywhere else). Idempotent: nothing happens when both are there.
set -euo pipefail

log() { printf '[browser] %s\n' "$*"; }

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    log "$(chromium --version 2>/dev/null | head -n1) and $(chromedriver --version | head -n1 | cut -d' ' -f1-2) ok"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "ERROR: apt-get not found; install chromium and chromedriver (chromium-driver) with the system's package manager" >&2
    exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
log "installing chromium and chromium-driver from Debian"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
log "$(chromium --version 2>/dev/null | head -n1) installed"
