#!/usr/bin/env bash
# deploy/ under a real systemd: boots Debian 12 (what Raspberry Pi OS Bookworm is built on) in
# systemd-nspawn with only a loopback network, installs with deploy/install.sh and real
# systemctl, and checks that the hardened unit runs: install.sh's /healthz check passes, the
# process runs as the outpost user with its store in /var/lib/outpost, an upgrade keeps the
# previous binary, a broken upgrade is rolled back by itself, and --rollback works. The map's
# password: made by the first install (root-only, printed once), asked for by every page but
# /healthz, and unchanged (never printed again) by the upgrades. The binary is
# this machine's build (x86_64): the unit and the script are what is tested here, the aarch64
# binary is tested under qemu by pi-check.sh.
#
#   scripts/pi-systemd-test.sh BINARY
#
# The Debian root is made once with debootstrap (about 2 minutes) and cached in
# $OUTPOST_TOOLS/nspawn-bookworm; each run boots a throw-away copy of it (--ephemeral).
# Exit code 77 (skipped, with the reason) when this machine cannot boot a container at all:
# that says nothing about deploy/. Any failure after the boot is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:?usage: pi-systemd-test.sh BINARY}")
tools="${OUTPOST_TOOLS:-$HOME/.cache/outpost}"
image="$tools/nspawn-bookworm"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# ca-certificates as on Raspberry Pi OS: Outpost's HTTP client refuses to start without CA roots.
if [ ! -e "$image/etc/ssl/certs/ca-certificates.crt" ]; then
    echo "-- debootstrap Debian 12 into $image"
    rm -rf "$image" "$image.tmp"
    as_root debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,ca-certificates \
        bookworm "$image.tmp" http://deb.debian.org/debian >"$tools/debootstrap.log" 2>&1 ||
        { tail -n 20 "$tools/debootstrap.log" && exit 1; }
    mv "$image.tmp" "$image"
fi

work=$(mktemp -d)
nspawn_pid=""
leader=""
cleanup() {
    [ -z "$nspawn_pid" ] || { kill "$nspawn_pid" 2>/dev/null && wait "$nspawn_pid" 2>/dev/null; } || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "pi-systemd-test: FAILED: $*" >&2
    [ -z "$leader" ] || in_pi journalctl -u outpost --no-pager -n 30 >&2 || true
    exit 1
}
mkdir "$work/deploy"
cp deploy/install.sh deploy/outpost.service deploy/outpost.toml "$work/deploy/"
cp "$binary" "$work/deploy/v1"
cp "$binary" "$work/deploy/v2" && printf 'v2' >>"$work/deploy/v2" # a different file that runs the same
cat >"$work/deploy/broken" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && echo "outpost 9.9.9" && exit 0
echo "broken on purpose" >&2
exit 1
EOF
chmod +x "$work/deploy/"*

# No machined or D-Bus on the host side is needed: --register=no --keep-unit.
systemd-nspawn --quiet --boot --ephemeral --register=no --keep-unit --private-network \
    --console=passive --machine="outpost-test-$$" -D "$image" --bind-ro="$work/deploy:/mnt/deploy" \
    >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
in_pi() { nsenter -t "$leader" -a -- "$@"; }
for _ in $(seq 600); do
    leader=$(pgrep -P "$nspawn_pid" | head -n 1) || true
    if [ -n "$leader" ]; then
        state=$(in_pi systemctl is-system-running 2>/dev/null) || true
        [[ $state != running && $state != degraded ]] || break
    fi
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ ${state:-} != running && ${state:-} != degraded ]]; then
    echo "pi-systemd-test: SKIPPED: systemd-nspawn cannot boot a container here (state: ${state:-none}):"
    cat "$work/nspawn.log"
    exit 77
fi
echo "-- booted Debian $(in_pi cat /etc/debian_version) with $(in_pi systemctl --version | head -n 1)"

step() { echo "-- $*"; }
on_pi_sum() { in_pi sha256sum "$1" | cut -d' ' -f1; }
# The HTTP status of GET PATH on the Pi's port 8080, as USER:PASSWORD when given.
b64() { printf '%s' "$1" | base64 -w0; }
http_code() {
    local header=""
    [ -z "${2:-}" ] || header="Authorization: Basic $(b64 "$2")"$'\r\n'
    # shellcheck disable=SC2016 # expanded by the bash in the container
    in_pi bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1
        printf "GET %s HTTP/1.0\r\nHost: localhost\r\n%s\r\n" "$1" "$2" >&3
        read -r -t 10 _ code _ <&3 && echo "$code"' http_code "$1" "$header"
}
password_line() { in_pi sed -n 's/^OUTPOST_WEB_PASSWORD=//p' /etc/outpost/outpost.env; }
auth_on() {
    [ "$(http_code /healthz)" = 200 ] || fail "/healthz needs the password"
    for path in / /status /api/status /metrics; do
        [ "$(http_code "$path")" = 401 ] || fail "$path answers without the password"
        [ "$(http_code "$path" "outpost:wrong")" = 401 ] || fail "$path answers a wrong password"
        [ "$(http_code "$path" "outpost:$password")" = 200 ] || fail "$path refuses the password"
    done
}

step "install: the unit starts, /healthz answers, a password is made and printed once"
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v1 >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "install failed"; }
cat "$work/install.out"
password=$(password_line)
[[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "no generated password in /etc/outpost/outpost.env: '$password'"
[ "$(in_pi stat -c %U:%a /etc/outpost/outpost.env)" = root:600 ] || fail "outpost.env is not root-only"
[ "$(grep -c -- "$password" "$work/install.out")" = 1 ] || fail "the password is not printed exactly once"
auth_on
pid=$(in_pi systemctl show -P MainPID outpost.service)
[ "$(in_pi ps -o user= -p "$pid")" = outpost ] || fail "outpost does not run as the outpost user"
[ "$(in_pi stat -c %U:%a /var/lib/outpost)" = outpost:750 ] || fail "the store directory is not the service's"
in_pi test -e /var/lib/outpost/outpost.redb || fail "no store in /var/lib/outpost"
[ "$(in_pi systemctl is-enabled outpost.service)" = enabled ] || fail "not enabled at boot"
in_pi journalctl -u outpost --no-pager | grep -q "serving the map and API" || fail "nothing in the journal"
# The sandbox must not be what fails: no refused file, system call or socket in the log.
if in_pi journalctl -u outpost --no-pager -o cat | grep -E -i "permission denied|not permitted|read-only file system|address family"; then
    fail "the sandbox refused something"
fi
in_pi systemd-analyze security outpost.service --no-pager | tail -n 1

step "a secret as a systemd credential (README: Email and upstreams), kept across upgrades"
in_pi sh -c 'umask 077 && echo not-a-real-password >/etc/outpost/email.password'
in_pi mkdir -p /etc/systemd/system/outpost.service.d
printf '%s\n' "[Service]" "LoadCredential=email-password:/etc/outpost/email.password" \
    "Environment=OUTPOST_EMAIL_PASSWORD_FILE=%d/email-password" |
    in_pi tee /etc/systemd/system/outpost.service.d/secret.conf >/dev/null
in_pi systemctl daemon-reload
in_pi systemctl restart outpost.service
# A secret file it cannot read is a configuration error (exit 2, no restart): healthy means read.
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v1 >/dev/null 2>&1 || fail "not healthy with the credential"
in_pi systemctl show -P Environment outpost.service | grep -q "OUTPOST_EMAIL_PASSWORD_FILE=/run/credentials/outpost.service/email-password" ||
    fail "%d did not expand to the credentials directory"
if in_pi runuser -u outpost -- cat /etc/outpost/email.password >/dev/null 2>&1; then
    fail "the outpost user can read the secret's file directly"
fi

step "upgrade (the password kept, not printed), then a broken upgrade rolled back by itself"
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v2 >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "upgrade failed"; }
! grep -q -- "$password" "$work/install.out" || fail "the upgrade printed the password again"
[ "$(password_line)" = "$password" ] || fail "the upgrade changed the password"
[ "$(on_pi_sum /usr/local/bin/outpost)" = "$(sha256sum <"$work/deploy/v2" | cut -d' ' -f1)" ] ||
    fail "the upgrade was rolled back (auth on, the health check must still pass)"
auth_on
[ "$(on_pi_sum /usr/local/lib/outpost/outpost.previous)" = "$(sha256sum <"$binary" | cut -d' ' -f1)" ] ||
    fail "the old binary was not kept"
if in_pi bash /mnt/deploy/install.sh --health-timeout 15 /mnt/deploy/broken; then fail "a broken binary was accepted"; fi
[ "$(on_pi_sum /usr/local/bin/outpost)" = "$(sha256sum <"$work/deploy/v2" | cut -d' ' -f1)" ] ||
    fail "the broken binary was not replaced by the one before it"
[ "$(in_pi systemctl is-active outpost.service)" = active ] || fail "not running after the rollback"
[ "$(password_line)" = "$password" ] || fail "the rollback changed the password"

step "--rollback"
in_pi bash /mnt/deploy/install.sh --rollback || fail "--rollback failed"
[ "$(on_pi_sum /usr/local/bin/outpost)" = "$(sha256sum <"$binary" | cut -d' ' -f1)" ] || fail "--rollback did not swap"
in_pi systemctl stop outpost.service
[ "$(in_pi systemctl show -P Result outpost.service)" = success ] || fail "did not stop cleanly on SIGTERM"
echo "pi-systemd-test: ok"
