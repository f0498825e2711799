#!/usr/bin/env bash
# The Raspberry Pi delivery, checked without a Pi: builds the aarch64 release binary with Debian's
# cross gcc (no Docker), checks it is stripped and asks for no glibc newer than Raspberry Pi OS
# Bookworm's (2.36), runs it under qemu-user (--version, check-config on deploy/outpost.toml, `run`
# answering /healthz and collecting from the fixture server: tests/it/pi.rs), builds the Debian
# packages (scripts/build-deb.sh: arm64 from that binary, amd64 from this machine's debug build)
# and checks them with lintian, tests the package and deploy/install.sh under a real systemd
# and dpkg in a container (scripts/deb-test.sh, scripts/pi-systemd-test.sh), verifies the unit
# with systemd-analyze, runs the SD-card image's first-boot script against a directory tree
# (scripts/image-firstboot-test.sh), builds the image without its kernel and reads it back
# (scripts/build-image.sh --reduced, scripts/image-check.sh), and runs shellcheck on every script.
# Installs its Debian packages when missing.
#
#   scripts/pi-check.sh          (scripts/test.sh runs it; build output goes to $CARGO_TARGET_DIR)
#
# First run on a new machine: about 20 minutes on 2 cores, most of it the aarch64 release build
# (BENCHMARKS.md); then about 1 minute plus whatever changed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
glibc_max=2.36 # Raspberry Pi OS Bookworm
bin="$CARGO_TARGET_DIR/$target/release/outpost"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

passed=0
failed=()
check() { # check NAME COMMAND...: runs one check, records its result, goes on either way
    local name=$1
    shift
    echo "== pi: $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "pi-check: FAILED: $name" >&2
        failed+=("$name")
    fi
}

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/lib/crt1.o" ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v lintian >/dev/null || missing+=(lintian)
# The SD-card image (scripts/build-image.sh --reduced, scripts/image-check.sh).
for tool in mmdebstrap:mmdebstrap qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support \
    arch-test:arch-test mcopy:mtools mkfs.fat:dosfstools xz:xz-utils sfdisk:fdisk debugfs:e2fsprogs; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== pi: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

shellcheck_all() {
    local scripts=(scripts/*.sh deploy/*.sh deploy/image/outpost-firstboot .ci/run)
    shellcheck "${scripts[@]}" && echo "shellcheck: ${#scripts[@]} scripts clean"
}
check "shellcheck" shellcheck_all

build() {
    local start=$SECONDS
    cargo build --release --locked --target "$target" || return 1
    echo "built $bin in $((SECONDS - start)) s"
}
check "cargo build --release --target $target" build
if [ ${#failed[@]} != 0 ] && [[ ${failed[*]} == *cargo* ]]; then
    echo "pi-check: $passed passed, ${#failed[@]} failed (${failed[*]}); the rest needs the binary"
    exit 1
fi

binary_checks() {
    local header dynamic sections max needed
    header=$(aarch64-linux-gnu-readelf -h "$bin")
    grep -q 'Machine:.*AArch64' <<<"$header" || { echo "not an AArch64 binary" && return 1; }
    sections=$(aarch64-linux-gnu-readelf -S -W "$bin")
    if grep -q '\.symtab\|\.debug_' <<<"$sections"; then echo "not stripped" && return 1; fi
    echo "size: $(stat -c %s "$bin") bytes, stripped"
    dynamic=$(aarch64-linux-gnu-readelf -d -W "$bin")
    needed=$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dynamic" | tr '\n' ' ')
    echo "needs: $needed"
    for lib in $needed; do
        case "$lib" in
            libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux-aarch64.so.1) ;;
            *) echo "$lib is not part of every Raspberry Pi OS" && return 1 ;;
        esac
    done
    max=$(aarch64-linux-gnu-objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -n 1)
    echo "newest glibc symbol version: $max (Raspberry Pi OS Bookworm has $glibc_max)"
    [ "$(printf '%s\n' "${max#GLIBC_}" "$glibc_max" | sort -V | tail -n 1)" = "$glibc_max" ]
}
check "binary: AArch64, stripped, glibc <= $glibc_max" binary_checks

# --version, check-config on deploy/outpost.toml, run: /healthz and collection (tests/it/pi.rs).
qemu_tests() {
    OUTPOST_AARCH64_BIN="$bin" OUTPOST_AARCH64_SYSROOT="$sysroot" \
        cargo test --locked --test it pi::aarch64 -- --include-ignored
}
check "the binary under qemu-aarch64 (tests/it/pi.rs)" qemu_tests

# The packages: arm64 (the Pi's) from the release binary above; amd64, for the container tests,
# from this machine's debug build that the qemu tests just built (the package is what is tested).
debs="$CARGO_TARGET_DIR/pi-check-debs"
build_debs() {
    rm -rf "$debs" && mkdir -p "$debs"
    cp "$(scripts/build-deb.sh --binary "$bin" arm64)" "$debs/" &&
        cp "$(scripts/build-deb.sh --binary "$CARGO_TARGET_DIR/debug/outpost" amd64)" "$debs/" &&
        ls -l "$debs"
}
check "scripts/build-deb.sh arm64 and amd64" build_debs

# Errors fail; the warnings that remain are explained in deploy/debian/lintian-overrides.
lint_debs() {
    local status=0 deb
    for deb in "$debs"/*.deb; do
        echo "lintian $(basename "$deb"):"
        lintian --fail-on error --info --display-info "$deb" || status=1
    done
    return "$status"
}
check "lintian: no errors in the packages" lint_debs

# The package and install.sh under a real systemd (Debian 12 in systemd-nspawn), and the image;
# 77 = this machine cannot boot a container or run arm64 programs.
skipped=()
may_skip() {
    local name=$1 status=0
    shift
    "$@" || status=$?
    [ "$status" != 77 ] || skipped+=("$name")
    [ "$status" = 0 ] || [ "$status" = 77 ]
}
amd64_deb() { ls "$debs"/outpost_*_amd64.deb; }
check "deploy/install.sh under a real systemd (systemd-nspawn)" \
    may_skip install.sh-in-nspawn scripts/pi-systemd-test.sh "$(amd64_deb)"
check "the package: install, upgrade, remove, purge (systemd-nspawn)" \
    may_skip deb-in-nspawn scripts/deb-test.sh "$(amd64_deb)"

# The SD-card image's first boot against a directory tree, then the card itself without its
# kernel and Pi firmware, built from the arm64 package and read back by scripts/image-check.sh
# (the Debian base is cached by its recipe). The whole image builds and boots in
# scripts/image-boot-test.sh, too slow for every run: BENCHMARKS.md.
check "the image's first boot (scripts/image-firstboot-test.sh)" scripts/image-firstboot-test.sh
reduced_image() {
    as_root env CARGO_TARGET_DIR="$CARGO_TARGET_DIR" OUTPOST_TOOLS="${OUTPOST_TOOLS:-$HOME/.cache/outpost}" \
        scripts/build-image.sh --reduced --no-xz \
        --deb "$(ls "$debs"/outpost_*_arm64.deb)" --out "$CARGO_TARGET_DIR/image-reduced"
}
check "the SD-card image, reduced (scripts/build-image.sh --reduced, scripts/image-check.sh)" \
    may_skip image-reduced reduced_image

# systemd-analyze verify needs no running systemd, but checks that ExecStart's binary exists: the
# unit is verified inside a root made from the arm64 package itself, next to the system's units.
verify_unit() {
    local root status=0 unit=/usr/lib/systemd/system/outpost.service
    root=$(mktemp -d)
    mkdir -p "$root/etc" "$root/usr/lib/systemd"
    touch "$root/etc/shadow" "$root/etc/gshadow"
    echo "outpost:x:999:999:Outpost appliance:/var/lib/outpost:/usr/sbin/nologin" >"$root/etc/passwd"
    echo "outpost:x:999:" >"$root/etc/group"
    cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
    dpkg-deb -x "$(ls "$debs"/outpost_*_arm64.deb)" "$root" &&
        systemd-analyze verify --root="$root" "$unit" >"$root/verify.log" 2>&1 || status=1
    # Warnings (an unknown key, a bad value) do not change the exit code: any output fails.
    if [ -s "$root/verify.log" ]; then cat "$root/verify.log" && status=1; fi
    [ "$status" = 1 ] || {
        echo "systemd-analyze verify: clean"
        systemd-analyze security --offline=true --root="$root" "$unit" 2>/dev/null | tail -n 1 || true
    }
    rm -rf "$root"
    return "$status"
}
check "systemd-analyze verify deploy/outpost.service" verify_unit

passed=$((passed - ${#skipped[@]}))
echo "pi-check: $passed passed, ${#failed[@]} failed, ${#skipped[@]} skipped${failed[*]:+ (failed: ${failed[*]})}${skipped[*]:+ (skipped: ${skipped[*]})}"
[ ${#failed[@]} = 0 ]
