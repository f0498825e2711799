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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# cargo prints one "test result" line per test binary, the last often a doc-test run with no
# tests; sum them into one closing line so the whole run is judged, not its last binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
