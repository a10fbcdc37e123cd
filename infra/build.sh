#!/usr/bin/env bash
# Build every Lambda bootstrap for AWS (Graviton, provided.al2023) and print their sizes:
#   cargo lambda build --release --arm64 -p <each binary crate under functions/>
# Output: target/lambda/<function>/bootstrap. `sam build --beta-features` runs the same
# build per function (the template's Metadata), so this is the quick way to check it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
bash infra/install-tools.sh
export PATH="$here/.venv/bin:$PATH"   # cargo-lambda and zig (the cross linker)

if command -v rustup >/dev/null 2>&1 \
   && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi

packages=()
for main in functions/*/src/main.rs; do
    dir="${main%/src/main.rs}"
    packages+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)")
done
start=$(date +%s)
cargo lambda build --release --arm64 "${packages[@]}"
echo "built in $(( $(date +%s) - start )) s"

target="${CARGO_TARGET_DIR:-target}"
printf '%-20s %12s %12s\n' function "bootstrap B" "zipped B"
for ((i = 1; i < ${#packages[@]}; i += 2)); do
    f="${packages[i]}"
    b="$target/lambda/$f/bootstrap"
    printf '%-20s %12s %12s\n' "$f" "$(stat -c %s "$b")" "$(gzip -9 -c "$b" | wc -c)"
done
