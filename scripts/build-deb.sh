#!/usr/bin/env bash
# Builds the Debian package: target/<triple>/debian/outpost_<version>_<arch>.deb under
# $CARGO_TARGET_DIR, with cargo-deb ([package.metadata.deb] in Cargo.toml). Builds the release
# binary (arm64 through the cross setup of .cargo/config.toml, README: Raspberry Pi), makes the man
# pages and shell completions with the binary itself (`outpost generate`, under qemu-aarch64 for
# arm64) and packages them without building again. Prints the package's path last.
#
#   scripts/build-deb.sh [amd64|arm64]                 (default: arm64, the Pi's)
#   scripts/build-deb.sh --binary FILE amd64           package FILE instead of building (tests: a debug build)
#   scripts/build-deb.sh --deb-version 0.1.0-2 amd64   another version (tests: an upgrade)
#
# cargo-deb (a pinned version) is installed into $OUTPOST_TOOLS/tools (default ~/.cache/outpost)
# when missing, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_deb_version=3.8.0
tools="${OUTPOST_TOOLS:-$HOME/.cache/outpost}/tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
die() { echo "build-deb: $*" >&2 && exit 1; }

binary="" deb_version=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$(realpath "${2:?--binary needs a file}") && shift ;;
        --deb-version) deb_version=(--deb-version "${2:?--deb-version needs a version}") && shift ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
    shift
done
arch=${1:-arm64}
run=()
case "$arch" in
    amd64) target=x86_64-unknown-linux-gnu strip=strip ;;
    arm64) target=aarch64-unknown-linux-gnu strip=aarch64-linux-gnu-strip run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
    *) die "unknown architecture $arch (amd64 or arm64)" ;;
esac

if [ "$("$tools/bin/cargo-deb" --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "build-deb: installing cargo-deb $cargo_deb_version into $tools" >&2
    cargo install cargo-deb --locked --version "=$cargo_deb_version" --root "$tools" >&2
fi

# cargo-deb takes the binary from <target dir>/<triple>/release/: a given binary is put into
# such a directory of its own, so the real build's is never touched. Stripped here (the release
# profile strips already), so cargo-deb need not: it does not know the cross strip.
if [ -n "$binary" ]; then
    export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/deb-$arch"
    mkdir -p "$CARGO_TARGET_DIR/$target/release"
    "$strip" -o "$CARGO_TARGET_DIR/$target/release/outpost" "$binary"
else
    cargo build --release --locked --target "$target" >&2
fi
release="$CARGO_TARGET_DIR/$target/release"

# The man pages and completions, gzipped as Debian wants them (no name or time stamp inside).
rm -rf "$release/deb"
"${run[@]}" "$release/outpost" generate man "$release/deb/man"
"${run[@]}" "$release/outpost" generate completions "$release/deb/completions"
gzip -9n "$release/deb/man/"*.1

touch "$release/deb/started"
"$tools/bin/cargo-deb" --no-build --locked --target "$target" "${deb_version[@]}" --no-strip -p outpost \
    --output "$CARGO_TARGET_DIR/$target/debian/" --quiet >&2
find "$CARGO_TARGET_DIR/$target/debian" -name "outpost_*_$arch.deb" -newer "$release/deb/started"
