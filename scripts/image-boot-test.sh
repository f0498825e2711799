#!/usr/bin/env bash
# Boots the SD-card image under qemu-system-aarch64 -M virt (software emulation, Debian's
# qemu-system-arm) as a Pi owner would use it: a firstboot.toml with an SSH key and no web
# password is written onto the card's boot partition (mtools, as a laptop would), the card is
# made 1 GiB larger than the image, and the image's own kernel and initrd boot it with user
# networking and forwarded ports. Checks: /healthz answers; the map asks for the generated
# password that first boot wrote to outpost-password.txt on the card, and takes it; `outpost
# status` runs over ssh with the key; the root partition grew to the card; the journal is in RAM,
# / is mounted noatime, there is no swap; ssh takes no password. Prints the time from power-on
# to /healthz (BENCHMARKS.md). Not part of scripts/test.sh: a boot under emulation takes minutes.
#
#   scripts/image-boot-test.sh [outpost-pi-arm64.img.xz]   (default: scripts/build-image.sh's output)
# The single-quoted $1 and $(...) are meant for the shell that runs them later (hooks, bash -c, ssh).
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
image=$(realpath "${1:-$CARGO_TARGET_DIR/image/outpost-pi-arm64.img.xz}")
for tool in qemu-system-aarch64 mcopy ssh-keygen curl; do
    command -v "$tool" >/dev/null || { echo "image-boot-test: $tool missing (apt install qemu-system-arm mtools openssh-client curl)" && exit 1; }
done
work=$(mktemp -d)
qemu_pid=""
cleanup() {
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
test_name="image-boot-test"
# shellcheck source=scripts/expect.sh
. scripts/expect.sh

card=$work/card.img
case "$image" in
    *.xz) xz -dc "$image" >"$card" ;;
    *) cp "$image" "$card" ;;
esac
image_size=$(stat -c %s "$card")
truncate -s +1G "$card"
boot="$card@@$(sfdisk -J "$card" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"] * 512)')"

ssh-keygen -q -t ed25519 -N "" -C image-boot-test -f "$work/id"
printf '%s\n' 'hostname = "outpost-test"' "ssh_key = \"$(cat "$work/id.pub")\"" 'timezone = "Europe/Oslo"' \
    >"$work/firstboot.toml"
mcopy -o -i "$boot" "$work/firstboot.toml" ::firstboot.toml
mcopy -i "$boot" "::$(mdir -b -i "$boot" | sed -n 's|.*/\(vmlinuz-.*\)|\1|p')" "$work/vmlinuz"
mcopy -i "$boot" "::$(mdir -b -i "$boot" | sed -n 's|.*/\(initrd.img-.*\)|\1|p')" "$work/initrd"
cmdline=$(mtype -i "$boot" ::cmdline.txt | tr -d '\r\n')

# Two free loopback ports for the map and ssh.
read -r web_port ssh_port < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
start=$SECONDS
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -nographic -no-reboot \
    -kernel "$work/vmlinuz" -initrd "$work/initrd" -append "$cmdline console=ttyAMA0" \
    -drive "file=$card,format=raw,if=virtio" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$web_port-:8080,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
    -device virtio-net-pci,netdev=net0,romfile= \
    -serial "file:$work/console.log" -monitor none </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!
echo "-- booting $image under emulation (console: $work/console.log)"
healthy=""
while kill -0 "$qemu_pid" 2>/dev/null && [ $((SECONDS - start)) -lt 1200 ]; do
    if curl -fsS -m 5 "http://127.0.0.1:$web_port/healthz" >/dev/null 2>&1; then
        healthy=$((SECONDS - start))
        break
    fi
    # Waiting for a boot: each try is a real request, the pause only paces them.
    sleep 2
done
if [ -z "$healthy" ]; then
    tail -n 40 "$work/console.log" >&2
    fail "/healthz never answered"
    exit 1
fi
echo "power-on to /healthz: $healthy s under emulation"

ssh_options=(-i "$work/id" -p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o BatchMode=yes -o ConnectTimeout=20)
in_pi() { ssh -q "${ssh_options[@]}" root@127.0.0.1 "$@"; }
# sshd starts after first boot made the host keys; it may come up after Outpost.
logged_in=""
for _ in $(seq 60); do
    if in_pi true; then logged_in=$((SECONDS - start)) && break; fi
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 5
done
if [ -z "$logged_in" ]; then
    # Why: the client's view, and what first boot wrote on the card.
    ssh -v "${ssh_options[@]}" root@127.0.0.1 true 2>&1 | tail -n 25 >&2 || true
    mtype -i "$boot" ::outpost-firstboot.log >&2 || true
    tail -n 40 "$work/console.log" >&2
    fail "no ssh login with the key from firstboot.toml"
    exit 1
fi
echo "power-on to an ssh login: $logged_in s"
# ssh hands the remote shell one string: each command below is quoted for it as a whole.
password=$(in_pi "sed -n 's/^password: //p' /boot/firmware/outpost-password.txt") || true
expect "first boot wrote a password to the card" test "${#password}" = 24
expect "the map asks for it" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$web_port/api/status")" = 401
expect "and takes it" curl -fsS -o /dev/null -u "outpost:$password" "http://127.0.0.1:$web_port/api/status"
status=$(in_pi outpost status) || true
echo "$status"
# Without --config it finds the installed appliance, and as root reads its password itself.
expect "outpost status over ssh: the running appliance, in full" \
    bash -c 'grep -q "^Outpost status (running appliance)" <<<"$1" && grep -q "^station: " <<<"$1" && grep -q "iss.position" <<<"$1"' _ "$status"
expect "the host name from firstboot.toml" test "$(in_pi hostname)" = outpost-test
expect "first boot is done" in_pi test -e /var/lib/outpost-firstboot/done
expect "the card has its own machine-id" in_pi test -s /etc/machine-id
root_bytes=$(in_pi lsblk -bno SIZE /dev/vda2)
expect "the root partition grew to the card ($root_bytes bytes of $(stat -c %s "$card"))" \
    test "$root_bytes" -gt "$image_size"
expect "the journal is in RAM" in_pi 'test -z "$(ls -A /var/log/journal 2>/dev/null)" && test -d /run/log/journal'
expect "/ is mounted noatime" bash -c 'grep -q noatime <<<"$1"' _ "$(in_pi findmnt -no OPTIONS /)"
expect "no swap" test -z "$(in_pi swapon --show)"
expect "ssh takes no password" bash -c '! ssh -q -p "$1" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o PubkeyAuthentication=no -o BatchMode=yes root@127.0.0.1 true' _ "$ssh_port"
in_pi systemctl --failed --no-legend || true
in_pi poweroff || true
wait "$qemu_pid" || true
qemu_pid=""
[ "$failures" = 0 ] && echo "image-boot-test: all passed (power-on to /healthz: $healthy s)"
