#!/usr/bin/env bash
# The SD-card image's first boot (deploy/image/outpost-firstboot), run against a directory laid out
# like the image (OUTPOST_FIRSTBOOT_ROOT), with the real `outpost check-config`: a correct
# firstboot.toml (saved on Windows: BOM and CRLF) is applied in full and no secret reaches the log
# on the card; without web_password one is generated, written to outpost-password.txt and kept
# on the next boot; a wrong firstboot.toml applies nothing, names the bad lines without their
# values and runs again on the next boot; an outpost.toml that Outpost refuses is not copied.
# scripts/pi-check.sh runs it; the whole image boots in scripts/image-boot-test.sh.
#
#   scripts/image-firstboot-test.sh [OUTPOST_BINARY]     (default: $CARGO_TARGET_DIR/debug/outpost)
# The single-quoted $1 and $(...) are meant for the shell that runs them later (hooks, bash -c, ssh).
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
outpost=$(realpath "${1:-$CARGO_TARGET_DIR/debug/outpost}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
test_name="image-firstboot-test"
# shellcheck source=scripts/expect.sh
. scripts/expect.sh

# A root as the image has it after the build: the package's files, no host keys, no password.
fresh_root() {
    root=$work/$1
    mkdir -p "$root/boot/firmware" "$root/etc/outpost" "$root/usr/share/zoneinfo/Europe"
    cp /usr/share/zoneinfo/Europe/Oslo "$root/usr/share/zoneinfo/Europe/"
    cp deploy/outpost.toml "$root/etc/outpost/outpost.toml"
    cp deploy/outpost.toml deploy/image/firstboot.toml "$root/boot/firmware/"
    (umask 077 && echo "# OUTPOST_<SECTION>_<KEY>=value lines for secrets" >"$root/etc/outpost/outpost.env")
    echo outpost >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\toutpost\n' >"$root/etc/hosts"
}
firstboot() { OUTPOST_FIRSTBOOT_ROOT=$root OUTPOST_FIRSTBOOT_OUTPOST=$outpost deploy/image/outpost-firstboot >/dev/null; }
env_value() { sed -n "s/^$1=//p" "$root/etc/outpost/outpost.env"; }

echo "-- a correct firstboot.toml, saved on Windows"
fresh_root full
key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOutpostTestKeyOutpostTestKeyOutpostTestKey owner@laptop"
printf '\357\273\277# mine\r\nhostname = "Hytta"\r\nwifi_ssid = "Hytta \\"5G\\""\r\nwifi_password = '"'"'pa"ss word!'"'"'\r\nwifi_country = "no"\r\nssh_key = "%s"\r\ntimezone = "Europe/Oslo"\r\nweb_password = "correct horse"\r\n' \
    "$key" >"$root/boot/firmware/firstboot.toml"
sed -i 's/^# *\(collect_interval_s\|interval_s\)/\1/' "$root/boot/firmware/outpost.toml"
echo '# edited on the laptop' >>"$root/boot/firmware/outpost.toml"
firstboot
expect "host name set" grep -qx hytta "$root/etc/hostname"
expect "hosts names it" grep -q $'^127.0.1.1\thytta$' "$root/etc/hosts"
wpa=$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf
expect "Wi-Fi SSID as hex" grep -qx "    ssid=$(printf 'Hytta "5G"' | od -An -tx1 | tr -d ' \n')" "$wpa"
expect "Wi-Fi password as written" grep -qxF '    psk="pa"ss word!"' "$wpa"
expect "Wi-Fi country upper case" grep -qx "country=NO" "$wpa"
expect "Wi-Fi file root-only" test "$(stat -c %a "$wpa")" = 600
expect "SSH key authorized" grep -qxF "$key" "$root/root/.ssh/authorized_keys"
expect "time zone" test "$(readlink "$root/etc/localtime")" = /usr/share/zoneinfo/Europe/Oslo
expect "web password from firstboot.toml" test "$(env_value OUTPOST_WEB_PASSWORD)" = "correct horse"
expect "web user named by the config, not twice" bash -c '! grep -q "^OUTPOST_WEB_USERNAME=" "$1"' _ "$root/etc/outpost/outpost.env"
expect "env file root-only" test "$(stat -c %a "$root/etc/outpost/outpost.env")" = 600
expect "no password file when one was given" test ! -e "$root/boot/firmware/outpost-password.txt"
expect "edited outpost.toml copied" cmp -s "$root/boot/firmware/outpost.toml" "$root/etc/outpost/outpost.toml"
expect "SSH host keys made" test -s "$root/etc/ssh/ssh_host_ed25519_key"
expect "done" test -e "$root/var/lib/outpost-firstboot/done"
log=$root/boot/firmware/outpost-firstboot.log
for secret in 'pa"ss word!' 'correct horse'; do
    expect "the log on the card has no secret" bash -c '! grep -qF "$1" "$2"' _ "$secret" "$log"
done

echo "-- no web_password: one is made, shown on the card, kept on the next boot"
fresh_root generated
firstboot
password=$(env_value OUTPOST_WEB_PASSWORD)
expect "a password of 24 characters" test "${#password}" = 24
expect "outpost-password.txt shows it" grep -qx "password: $password" "$root/boot/firmware/outpost-password.txt"
expect "the packaged outpost.toml kept" cmp -s deploy/outpost.toml "$root/etc/outpost/outpost.toml"
rm "$root/var/lib/outpost-firstboot/done"
firstboot
expect "the next boot keeps it" test "$(env_value OUTPOST_WEB_PASSWORD)" = "$password"
expect "one password line" test "$(grep -c '^OUTPOST_WEB_PASSWORD=' "$root/etc/outpost/outpost.env")" = 1

echo "-- a wrong firstboot.toml applies nothing"
fresh_root wrong
printf '%s\n' 'hostname = "-bad-"' 'wifi_ssid = "net"' 'wifi_password = "short"' 'colour = "blue"' \
    'timezone = "Mars/Olympus"' 'ssh_key = "unterminated' >"$root/boot/firmware/firstboot.toml"
firstboot
log=$root/boot/firmware/outpost-firstboot.log
expect "host name unchanged" grep -qx outpost "$root/etc/hostname"
expect "no Wi-Fi file" test ! -e "$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
for said in "NOT applied" "line 6: ssh_key: the string is not closed"; do
    expect "the log says: $said" grep -qF "$said" "$log"
done
expect "the log does not repeat a value" bash -c '! grep -q short "$1"' _ "$log"
expect "not done: the next boot tries again" test ! -e "$root/var/lib/outpost-firstboot/done"
expect "still reachable: a password made" test -n "$(env_value OUTPOST_WEB_PASSWORD)"
printf '%s\n' 'hostname = "-bad-"' 'wifi_ssid = "net"' 'wifi_password = "short"' 'colour = "blue"' \
    'timezone = "Mars/Olympus"' >"$root/boot/firmware/firstboot.toml"
firstboot
for said in "colour: not a firstboot.toml key" "hostname: letters" "wifi_password: 8 to 63" "timezone: Mars/Olympus is not a known time zone" "wifi_country: needed"; do
    expect "the log says: $said" grep -qF "$said" "$log"
done
echo 'hostname = "fixed"' >"$root/boot/firmware/firstboot.toml"
firstboot
expect "fixed on the next boot" grep -qx fixed "$root/etc/hostname"
expect "then done" test -e "$root/var/lib/outpost-firstboot/done"

echo "-- an outpost.toml that Outpost refuses"
fresh_root refused
printf '[web]\nlisten = "not an address"\n' >"$root/boot/firmware/outpost.toml"
firstboot
expect "the packaged config stays" cmp -s deploy/outpost.toml "$root/etc/outpost/outpost.toml"
expect "the log says so" grep -qF "outpost.toml: NOT applied" "$root/boot/firmware/outpost-firstboot.log"
expect "not done" test ! -e "$root/var/lib/outpost-firstboot/done"

[ "$failures" = 0 ] && echo "image-firstboot-test: all passed"
