#!/usr/bin/env bash
# Builds the Raspberry Pi SD-card image, outpost-pi-arm64.img.xz, from Debian 12's own arm64
# packages the way Debian's Raspberry Pi images are made: mmdebstrap --arch=arm64 (the arm64
# maintainer scripts run under qemu-user-static through binfmt_misc), linux-image-arm64 and
# raspi-firmware (which writes config.txt, cmdline.txt, the kernel, initrd and device trees to the
# boot partition), systemd-networkd with wpa_supplicant, systemd-timesyncd (a Pi has no real-time
# clock), openssh-server, avahi-daemon (outpost.local), and the Outpost package. Then a FAT32 boot
# partition (label RASPIFIRM) and an ext4 root (RASPIROOT) are written into one MBR card image,
# and an os_list JSON for Raspberry Pi Imager is written beside it.
#
#   sudo scripts/build-image.sh [--deb outpost_VERSION_arm64.deb] [--out DIR] [--no-xz]
#   sudo scripts/build-image.sh --base-only      (only the cached Debian base, below)
#   sudo scripts/build-image.sh --reduced        (no kernel or Pi firmware: not bootable; CI's build)
#
# Without --deb it runs scripts/build-deb.sh arm64 first. Output in DIR (default
# $CARGO_TARGET_DIR/image): outpost-pi-arm64.img.xz (or .img with --no-xz), os_list_outpost.json,
# build.log. Downloaded packages and the Debian base are kept in $OUTPOST_TOOLS/image (default
# ~/.cache/outpost). The finished card is checked by scripts/image-check.sh before it is written.
# About half an hour on 2 cores the first time, most of it mkinitramfs under qemu-user; then two
# minutes (BENCHMARKS.md). --reduced leaves out the kernel, the Pi's firmware and the initramfs:
# everything else is built and checked the same way, in a few minutes (scripts/pi-check.sh).
#
# What makes it an appliance (deploy/image/): outpost-firstboot applies firstboot.toml and
# outpost.toml from the boot partition once; the journal is kept in RAM; the file systems are
# mounted noatime; there is no swap, no login password and no SSH host key until first boot.
# The single-quoted $1 and $(...) are meant for the shell that runs them later (hooks, bash -c, ssh).
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
cache="${OUTPOST_TOOLS:-$HOME/.cache/outpost}/image"
out="$CARGO_TARGET_DIR/image" deb="" compress=1 base_only=0 reduced=0
die() { echo "build-image: $*" >&2 && exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb=$(realpath "${2:?--deb needs a file}") && shift ;;
        --out) out=${2:?--out needs a directory} && shift ;;
        --no-xz) compress=0 ;;
        --base-only) base_only=1 ;;
        --reduced) reduced=1 ;;
        *) die "unknown argument $1" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap's chroot mode and file ownership in the image)"
for tool in mmdebstrap mkfs.fat mcopy mkfs.ext4 sfdisk xz; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt install mmdebstrap dosfstools mtools e2fsprogs fdisk xz-utils qemu-user-static binfmt-support arch-test"
done
# The arm64 maintainer scripts run through binfmt_misc and qemu-aarch64-static.
if ! arch-test arm64 >/dev/null 2>&1; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    # 77: scripts/pi-check.sh counts the reduced build as skipped on such a machine.
    arch-test arm64 >/dev/null || { echo "build-image: this machine cannot run arm64 programs (qemu-user-static, binfmt_misc)" >&2 && exit 77; }
fi
mkdir -p "$out" "$cache/apt"
out=$(realpath "$out")
work=$(mktemp -d "$out/work.XXXXXX")
root="$work/root"
start=$SECONDS
exec 3>&1 >"$out/build.log" 2>&1
say() { echo "build-image: $*" >&3 && echo "== $*"; }
# A failed build shows the end of its log, where it failed.
failed_log() { [ "$1" = 0 ] || [ "$1" = 77 ] || tail -n 25 "$out/build.log" >&3; }
trap 'status=$?; failed_log "$status"; rm -rf "$work"; exit "$status"' EXIT

packages=(
    systemd-sysv systemd-timesyncd systemd-resolved udev dbus wpasupplicant iproute2
    openssh-server avahi-daemon libnss-mdns ca-certificates cloud-guest-utils e2fsprogs fdisk
    zstd kmod less nano curl tzdata # tzdata: firstboot.toml's time zone
)
# update-initramfs would run once for the kernel and once per later trigger, each taking half an
# hour under qemu-user: it is diverted during the install and run once at the end.
divert_initramfs='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs &&
    printf "#!/bin/sh\nexit 0\n" >"$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"'
restore_initramfs='rm "$1/usr/sbin/update-initramfs" &&
    chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs'
# What the base is made of (the cache's own sync hooks are not part of it).
hooks=(--essential-hook="$divert_initramfs" --customize-hook="$restore_initramfs")
if [ "$reduced" = 0 ]; then
    packages+=(linux-image-arm64 raspi-firmware firmware-brcm80211) # the kernel, the Pi's boot firmware, Wi-Fi
    hooks+=(--customize-hook='sed -i "s|^#\\?ROOTPART=.*|ROOTPART=LABEL=RASPIROOT|" "$1/etc/default/raspi-firmware"'
        --customize-hook='chroot "$1" update-initramfs -c -k all'
        --customize-hook='for kernel in "$1"/boot/vmlinuz-*; do
            chroot "$1" /etc/kernel/postinst.d/z50-raspi-firmware "${kernel##*/vmlinuz-}"; done')
else
    hooks+=(--customize-hook='mkdir -p "$1/boot/firmware"')
fi
# The base system (everything but Outpost) is cached by its recipe: a new Outpost build only
# repeats what follows it, a few minutes.
recipe="${packages[*]} ${hooks[*]} $(mmdebstrap --version)"
base="$cache/base-$(printf '%s' "$recipe" | sha256sum | cut -c1-16)"
# One build of a base at a time: another one waits for it and then uses it.
exec 4>"$base.lock"
flock 4
if [ ! -d "$base" ]; then
    say "mmdebstrap: Debian 12 arm64 base into $base (log: $out/build.log)"
    rm -rf "$base.partial"
    mmdebstrap --arch=arm64 --variant=apt --format=directory --components="main non-free-firmware" \
        --include="$(IFS=, && echo "${packages[*]}")" \
        --skip=download/empty --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook="sync-in '$cache/apt' /var/cache/apt/archives/" \
        --customize-hook="sync-out /var/cache/apt/archives '$cache/apt'" \
        "${hooks[@]}" \
        bookworm "$base.partial" "http://deb.debian.org/debian" \
        "http://deb.debian.org/debian-security bookworm-security main non-free-firmware"
    mv "$base.partial" "$base"
    say "base done in $((SECONDS - start)) s"
fi
flock -u 4
[ "$base_only" = 0 ] || exit 0
[ -n "$deb" ] || deb=$(scripts/build-deb.sh arm64)
[ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || die "$deb is not an arm64 package"
mkdir "$root"
cp -a --preserve=all "$base/." "$root/"

# Outpost: its package, then the image's own files.
in_root() { chroot "$root" "$@"; }
mount --bind /proc "$root/proc" && mount --bind /dev "$root/dev" && mount --bind /sys "$root/sys"
# Never rm -rf through a bind mount of the host's /dev, /proc or /sys.
unmount_all() {
    local dir status=0
    for dir in proc dev sys; do
        ! mountpoint -q "$root/$dir" || umount "$root/$dir" || status=1
    done
    return "$status"
}
trap 'status=$?; failed_log "$status"
    if unmount_all; then rm -rf "$work"; else echo "build-image: left $work (still mounted)" >&3; fi; exit "$status"' EXIT
cp "$deb" "$root/tmp/outpost.deb"
rm -f "$root/etc/resolv.conf" && cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/outpost.deb
rm "$root/tmp/outpost.deb"
unmount_all
install -m 755 deploy/image/outpost-firstboot "$root/usr/sbin/outpost-firstboot"
cp -r deploy/image/rootfs/. "$root/"

# The appliance's settings, outside the chroot (mmdebstrap's cleanup would undo some of them).
echo outpost >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\toutpost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# The device time-out: a slow first udev run (seen under emulation) must not skip first boot.
printf '%s\n' "LABEL=RASPIROOT / ext4 noatime,errors=remount-ro 0 1" \
    "LABEL=RASPIFIRM /boot/firmware vfat noatime,umask=0077,nofail,x-systemd.device-timeout=10min 0 2" >"$root/etc/fstab"
# Empty, not "uninitialized": systemd makes and commits the card's own ID on its first boot
# without entering its first-boot mode, which would apply the unit presets over the choices below.
: >"$root/etc/machine-id"
# Every card gets its own host keys and web password on first boot, never the build's.
rm -f "$root"/etc/ssh/ssh_host_*
sed -i '/^OUTPOST_WEB_PASSWORD=/d; /^# The map.s password (made on install/d; /^OUTPOST_WEB_USERNAME=/d' "$root/etc/outpost/outpost.env"
for unit in systemd-networkd systemd-resolved systemd-timesyncd avahi-daemon ssh outpost outpost-firstboot \
    wpa_supplicant@wlan0; do
    chroot "$root" systemctl enable --quiet "$unit"
done
chroot "$root" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer man-db.timer

# The card: a 4 MiB gap, the 256 MiB FAT32 boot partition, the root partition (its content plus
# 25% and 256 MiB; first boot grows it to the card).
boot_mib=256
root_mib=$(($(du -sm --exclude=./boot/firmware "$root" | cut -f1) * 5 / 4 + 256))
say "card: ${boot_mib} MiB boot + ${root_mib} MiB root"
mkfs.fat -F 32 -n RASPIFIRM -C "$work/boot.fat" $((boot_mib * 1024)) >/dev/null
cp deploy/image/firstboot.toml deploy/outpost.toml "$root/boot/firmware/"
mcopy -s -i "$work/boot.fat" "$root"/boot/firmware/* ::
find "$root/boot/firmware" -mindepth 1 -delete
mkfs.ext4 -q -L RASPIROOT -O ^metadata_csum_seed -E lazy_itable_init=0,lazy_journal_init=0 -d "$root" \
    "$work/root.ext4" "${root_mib}M"
img="$out/outpost-pi-arm64.img"
[ "$reduced" = 0 ] || img="$out/outpost-pi-arm64-reduced.img"
rm -f "$img" "$img.xz"
truncate -s $(((4 + boot_mib + root_mib) * 1024 * 1024)) "$img"
sfdisk --quiet "$img" <<EOF
label: dos
start=4MiB, size=${boot_mib}MiB, type=c, bootable
start=$((4 + boot_mib))MiB, type=83
EOF
dd if="$work/boot.fat" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img" bs=1M seek=$((4 + boot_mib)) conv=notrunc,sparse status=none

# What a card must be: scripts/image-check.sh reads it back as a Pi and a laptop would see it.
say "checking the card (scripts/image-check.sh)"
check_args=()
[ "$reduced" = 0 ] || check_args=(--reduced)
scripts/image-check.sh "${check_args[@]}" "$img" >&3 2>&1 || die "the card failed its checks (above)"

extract_size=$(stat -c %s "$img")
extract_sha256=$(sha256sum "$img" | cut -d' ' -f1)
file=$img
if [ "$compress" = 1 ]; then
    say "xz"
    xz -T0 -6 "$img"
    file=$img.xz
fi
version=$(dpkg-deb -f "$deb" Version)
# Raspberry Pi Imager's custom repository format (its doc/json-schema/os-list-schema.json).
cat >"$out/os_list_outpost.json" <<EOF
{
  "os_list": [
    {
      "name": "Outpost $version (Debian 12, 64-bit)$([ "$reduced" = 0 ] || echo ", reduced: no kernel, does not boot")",
      "description": "ISS passes, avalanche warnings and the map page. Edit firstboot.toml on the card, then open http://outpost.local:8080/",
      "url": "https://example.invalid/outpost/$(basename "$file")",
      "icon": "https://example.invalid/outpost/outpost.png",
      "website": "https://example.invalid/outpost/",
      "release_date": "$(date -u +%Y-%m-%d)",
      "extract_size": $extract_size,
      "extract_sha256": "$extract_sha256",
      "image_download_size": $(stat -c %s "$file"),
      "image_download_sha256": "$(sha256sum "$file" | cut -d' ' -f1)",
      "devices": ["pi4-64bit", "pi3-64bit"],
      "init_format": "none"
    }
  ]
}
EOF
say "done in $((SECONDS - start)) s: $file ($(stat -c %s "$file") bytes, $extract_size unpacked)"
echo "$file" >&3
