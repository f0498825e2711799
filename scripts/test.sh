#!/usr/bin/env bash
# Installs what Outpost's tests need and runs every check: formatting, lints, unit and
# integration tests (the integration tests start real `outpost` processes against a local
# fixture server on loopback ports the OS picks).
#
#   scripts/test.sh
#
# Build output goes to $CARGO_TARGET_DIR (default: ~/.cache/outpost/target, outside the clone,
# so repeated runs are incremental).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2
    exit 1
fi

echo "== rustfmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
