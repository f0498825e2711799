#!/usr/bin/env bash
# Reads an SD-card image back as a laptop and a Pi would see it, without mounting anything (mtools
# for the FAT boot partition, debugfs for the ext4 root): the partition table, the boot
# partition's files, the root file system's appliance settings, and then the card's own first
# boot, run against a copy of its root with its own arm64 `outpost` and libraries (qemu-user):
# firstboot.toml's SSH key is authorized, a web password is made and written to the card, and
# `outpost check-config` accepts the card's outpost.toml. scripts/build-image.sh runs it on every
# card it makes, before compressing it.
#
#   scripts/image-check.sh [--reduced] outpost-pi-arm64.img
#
# --reduced: a card built without the kernel and the Pi's firmware (build-image.sh --reduced).
# The single-quoted $1 are meant for the bash -c that runs them.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
reduced=0
[ "${1:-}" != --reduced ] || { reduced=1 && shift; }
img=$(realpath "${1:?usage: scripts/image-check.sh [--reduced] IMAGE}")
for tool in sfdisk mtype debugfs dumpe2fs qemu-aarch64 python3; do
    command -v "$tool" >/dev/null || { echo "image-check: $tool missing (apt install fdisk mtools e2fsprogs qemu-user)" && exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
test_name="image-check"
# shellcheck source=scripts/expect.sh
. scripts/expect.sh

echo "-- the partition table"
# start (bytes), type and bootable flag of each partition, one line each.
read_partitions() {
    sfdisk -J "$img" | python3 -c 'import json, sys
table = json.load(sys.stdin)["partitiontable"]
assert table["label"] == "dos", table["label"]
for p in table["partitions"]:
    print(p["start"] * 512, p["size"] * 512, p["type"], "boot" if p.get("bootable") else "-")'
}
partitions=$(read_partitions) || { fail "no MBR partition table" && exit 1; }
expect "two partitions" test "$(wc -l <<<"$partitions")" = 2
read -r boot_start boot_size boot_type boot_flag < <(sed -n 1p <<<"$partitions")
read -r root_start root_size root_type _ < <(sed -n 2p <<<"$partitions")
expect "the boot partition is FAT32 (LBA), bootable, 4 MiB in" test "$boot_type $boot_flag $boot_start" = "c boot 4194304"
expect "the root partition is Linux, right after it" test "$root_type $root_start" = "83 $((boot_start + boot_size))"
expect "the root partition ends the card (first boot grows it)" test $((root_start + root_size)) = "$(stat -c %s "$img")"

echo "-- the boot partition, as a laptop sees it"
fat="$img@@$boot_start"
expect "labelled RASPIFIRM" bash -c 'mlabel -s -i "$1" :: | grep -q "RASPIFIRM"' _ "$fat"
on_card() { mtype -i "$fat" "::$1" 2>/dev/null | tr -d '\r'; }
expect "firstboot.toml, as in deploy/image/" cmp -s <(on_card firstboot.toml) deploy/image/firstboot.toml
expect "outpost.toml, as in deploy/" cmp -s <(on_card outpost.toml) deploy/outpost.toml
expect "no password file before first boot" bash -c '! mdir -b -i "$1" ::outpost-password.txt >/dev/null 2>&1' _ "$fat"
if [ "$reduced" = 0 ]; then
    files=$(mdir -b -i "$fat" ::)
    for file in config.txt cmdline.txt start4.elf fixup4.dat bootcode.bin bcm2711-rpi-4-b.dtb bcm2837-rpi-3-b.dtb; do
        expect "$file (raspi-firmware)" grep -q "/$file\$" <<<"$files"
    done
    expect "the image's kernel and initrd" bash -c 'grep -q "/vmlinuz-" <<<"$1" && grep -q "/initrd.img-" <<<"$1"' _ "$files"
    expect "cmdline.txt boots the root by its label" bash -c 'grep -q "root=LABEL=RASPIROOT" <<<"$1"' _ "$(on_card cmdline.txt)"
fi

echo "-- the root file system"
ext4="$img?offset=$root_start"
expect "ext4 labelled RASPIROOT" bash -c 'dumpe2fs -h "$1" 2>/dev/null | grep -q "^Filesystem volume name: *RASPIROOT$"' _ "$ext4"
root=$work/root
mkdir "$root"
debugfs -R "rdump / $root" "$ext4" >"$work/rdump.log" 2>&1 || { cat "$work/rdump.log" && fail "debugfs could not read the root" && exit 1; }
fstab=$(grep -v '^[[:space:]]*#' "$root/etc/fstab")
expect "fstab: / and /boot/firmware by label, noatime" bash -c \
    'grep -Eq "^LABEL=RASPIROOT / ext4 [^ ]*noatime" <<<"$1" && grep -Eq "^LABEL=RASPIFIRM /boot/firmware vfat [^ ]*noatime" <<<"$1"' _ "$fstab"
expect "no swap" bash -c '! grep -qw swap <<<"$1" && ! compgen -G "$2/swap*" >/dev/null && ! compgen -G "$2/var/swap*" >/dev/null' _ "$fstab" "$root"
expect "the journal in RAM" grep -rqx 'Storage=volatile' "$root/etc/systemd/journald.conf.d"
expect "machine-id empty (made on first boot)" test -f "$root/etc/machine-id" -a ! -s "$root/etc/machine-id"
expect "no SSH host keys (made on first boot)" bash -c '! compgen -G "$1/etc/ssh/ssh_host_*" >/dev/null' _ "$root"
expect "root has no password" grep -q '^root:[*!]' "$root/etc/shadow"
expect "ssh takes keys only" grep -rqx 'PasswordAuthentication no' "$root/etc/ssh/sshd_config.d"
expect "no web password yet (made on first boot)" bash -c '! grep -q "^OUTPOST_WEB_PASSWORD=" "$1"' _ "$root/etc/outpost/outpost.env"
expect "outpost.env root-only" test "$(stat -c '%a %u' "$root/etc/outpost/outpost.env")" = "600 0"
expect "the outpost package installed" bash -c 'grep -A1 -x "Package: outpost" "$1" | grep -qx "Status: install ok installed"' _ "$root/var/lib/dpkg/status"
wants=$root/etc/systemd/system/multi-user.target.wants
for unit in outpost outpost-firstboot ssh avahi-daemon systemd-networkd wpa_supplicant@wlan0; do
    expect "$unit.service enabled" test -L "$wants/$unit.service"
done
expect "systemd-timesyncd enabled (a Pi has no real-time clock)" test -L "$root/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service"
for timer in apt-daily apt-daily-upgrade man-db e2scrub_all; do
    expect "$timer.timer masked (it would write to the card)" test "$(readlink "$root/etc/systemd/system/$timer.timer")" = /dev/null
done

echo "-- the card's first boot, on a copy of its root, with its own arm64 outpost"
ssh-keygen -q -t ed25519 -N "" -C image-check -f "$work/id"
printf '%s\n' 'hostname = "outpost-check"' "ssh_key = \"$(cat "$work/id.pub")\"" 'timezone = "Europe/Oslo"' \
    >"$root/boot/firmware/firstboot.toml"
on_card outpost.toml >"$root/boot/firmware/outpost.toml"
printf '#!/bin/sh\nexec qemu-aarch64 -L "%s" "%s/usr/bin/outpost" "$@"\n' "$root" "$root" >"$work/outpost"
chmod 755 "$work/outpost"
expect "its outpost runs (qemu-user, the card's own libraries)" "$work/outpost" --version
OUTPOST_FIRSTBOOT_ROOT=$root OUTPOST_FIRSTBOOT_OUTPOST=$work/outpost "$root/usr/sbin/outpost-firstboot" >"$work/firstboot.out" 2>&1
expect "first boot done" test -e "$root/var/lib/outpost-firstboot/done"
expect "the SSH key authorized for root" grep -qxF "$(cat "$work/id.pub")" "$root/root/.ssh/authorized_keys"
expect "authorized_keys as sshd's StrictModes needs" test "$(stat -c '%a %u' "$root/root" "$root/root/.ssh" "$root/root/.ssh/authorized_keys" | tr '\n' ' ')" = "700 0 700 0 600 0 "
expect "a web password made" grep -q '^OUTPOST_WEB_PASSWORD=.' "$root/etc/outpost/outpost.env"
expect "and written to the card for its owner" grep -q '^password: ' "$root/boot/firmware/outpost-password.txt"
expect "host keys made" test -s "$root/etc/ssh/ssh_host_ed25519_key"
expect "the host name" grep -qx outpost-check "$root/etc/hostname"
expect "the time zone, from the card's own tzdata" test -f "$root$(readlink "$root/etc/localtime")"
if [ "$failures" != 0 ]; then cat "$work/firstboot.out" "$root/boot/firmware/outpost-firstboot.log" 2>/dev/null; fi
[ "$failures" = 0 ] && echo "image-check: all passed ($(basename "$img"))"
