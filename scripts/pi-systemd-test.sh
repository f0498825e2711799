#!/usr/bin/env bash
# deploy/ under a real systemd: boots Debian 12 (what Raspberry Pi OS Bookworm is built on) in
# systemd-nspawn with only a loopback network, installs the Debian package with deploy/install.sh
# (real apt, dpkg and systemctl), and checks that the hardened unit runs: install.sh's /healthz
# check passes, the process runs as the outpost user with its store in /var/lib/outpost, an
# upgrade over ssh keeps the previous package, a broken upgrade is rolled back by itself, and --rollback
# works. A Pi set up by install.sh before the package is moved to it, keeping its config, secrets
# and store. The map's password: made by the first install (root-only, printed once), asked for
# by every page but /healthz, and unchanged (never printed again) by the upgrades. The package
# is this machine's (amd64): the unit, the package's scripts and install.sh are what is tested
# here; the aarch64 binary is tested under qemu by pi-check.sh, the package's own remove and
# purge by scripts/deb-test.sh.
#
#   scripts/pi-systemd-test.sh outpost_VERSION_amd64.deb     (scripts/build-deb.sh makes it)
#
# The Debian root is made once with debootstrap (about 2 minutes) and cached in
# $OUTPOST_TOOLS/nspawn-bookworm; each run boots a throw-away copy of it (--ephemeral).
# Exit code 77 (skipped, with the reason) when this machine cannot boot a container at all:
# that says nothing about deploy/. Any failure after the boot is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "${1:?usage: pi-systemd-test.sh outpost_VERSION_amd64.deb}")
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
cp deploy/install.sh "$work/deploy/"
cp "$deb" "$work/deploy/v1.deb"
version=$(dpkg-deb -f "$deb" Version)
scripts/deb-repack.sh "$deb" "$work/deploy/v2.deb" "$version+v2"
cat >"$work/broken" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && echo "outpost 9.9.9" && exit 0
echo "broken on purpose" >&2
exit 1
EOF
chmod +x "$work/broken"
scripts/deb-repack.sh --binary "$work/broken" "$deb" "$work/deploy/broken.deb" "$version+v3"
# ssh into the container: drops the options and the host, runs the command in the container.
cat >"$work/ssh" <<'EOF'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do
    case "$1" in
        -O) exit 0 ;;
        -o) shift 2 ;;
        -t) shift ;;
        *) break ;;
    esac
done
shift
exec nsenter -t "$LEADER" -a -- bash -c "$*"
EOF
chmod +x "$work/ssh"
# A Pi set up by install.sh before the package: its binary and unit where that script put them,
# its config edited.
dpkg-deb -x "$deb" "$work/old"
sed -e 's|/usr/bin/outpost|/usr/local/bin/outpost|' \
    -e '1s|.*|# Outpost as a system service; deploy/install.sh installs it as /etc/systemd/system/outpost.service.|' \
    "$work/old/usr/lib/systemd/system/outpost.service" >"$work/deploy/old.service"
cp "$work/old/usr/bin/outpost" "$work/deploy/old-outpost"
# From before the map's password: no user in the config, another secret in the env file.
sed 's/^username = "outpost"/# edited on the Pi: from before the password/' \
    "$work/old/etc/outpost/outpost.toml" >"$work/deploy/old.toml"

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

# shellcheck disable=SC2016 # dpkg-query's field names
installed_version() { in_pi dpkg-query -W -f '${Version}' outpost; }

step "a Pi set up by install.sh before the package: its binary, unit, edited config and store"
in_pi useradd --system --user-group --home-dir /var/lib/outpost --no-create-home --shell /usr/sbin/nologin outpost
in_pi install -D -m 755 /mnt/deploy/old-outpost /usr/local/bin/outpost
in_pi install -D -m 644 /mnt/deploy/old.service /etc/systemd/system/outpost.service
in_pi install -D -m 644 /mnt/deploy/old.toml /etc/outpost/outpost.toml
in_pi sh -c 'umask 077 && echo OUTPOST_MQTT_PASSWORD=kept-secret >/etc/outpost/outpost.env'
in_pi systemctl daemon-reload
in_pi systemctl enable --now --quiet outpost.service
for _ in $(seq 300); do
    in_pi test -s /var/lib/outpost/outpost.redb && break
    sleep 0.1
done
in_pi test -s /var/lib/outpost/outpost.redb || fail "the old install made no store"
store_id=$(in_pi stat -c %i /var/lib/outpost/outpost.redb)

step "install the package: the old files go, the config and store stay, a password is made and printed once"
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v1.deb >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "install failed"; }
grep -v '^(\{0,1\}\(Reading\|Building\|Selecting\|Preparing\|Unpacking\|debconf\)' "$work/install.out"
[ "$(installed_version)" = "$version" ] || fail "the package is not installed"
for f in /usr/local/bin/outpost /etc/systemd/system/outpost.service /usr/local/lib/outpost; do
    ! in_pi test -e "$f" || fail "$f of the old install is still there"
done
in_pi cmp -s /mnt/deploy/old.toml /etc/outpost/outpost.toml || fail "the edited config was replaced"
[ "$(in_pi stat -c %i /var/lib/outpost/outpost.redb)" = "$store_id" ] || fail "the store was replaced"
in_pi grep -qx OUTPOST_MQTT_PASSWORD=kept-secret /etc/outpost/outpost.env || fail "the old env file was lost"
in_pi grep -qx OUTPOST_WEB_USERNAME=outpost /etc/outpost/outpost.env || fail "no username for a config without one"
password=$(password_line)
[[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "no generated password in /etc/outpost/outpost.env: '$password'"
[ "$(in_pi stat -c %U:%a /etc/outpost/outpost.env)" = root:600 ] || fail "outpost.env is not root-only"
[ "$(grep -c -- "$password" "$work/install.out")" = 1 ] || fail "the password is not printed exactly once"
auth_on
pid=$(in_pi systemctl show -P MainPID outpost.service)
[ "$(in_pi ps -o user= -p "$pid")" = outpost ] || fail "outpost does not run as the outpost user"
[ "$(in_pi readlink "/proc/$pid/exe")" = /usr/bin/outpost ] || fail "the service does not run the package's binary"
[ "$(in_pi stat -c %U:%a /var/lib/outpost)" = outpost:750 ] || fail "the store directory is not the service's"
[ "$(in_pi systemctl is-enabled outpost.service)" = enabled ] || fail "not enabled at boot"
# (grep -c, not -q: an early exit would make journalctl fail with SIGPIPE under pipefail)
in_pi journalctl -u outpost --no-pager | grep -c "serving the map and API" >/dev/null || fail "nothing in the journal"
# The sandbox must not be what fails: no refused file, system call or socket in the log.
if in_pi journalctl -u outpost --no-pager -o cat | grep -E -i "permission denied|not permitted|read-only file system|address family"; then
    fail "the sandbox refused something"
fi
in_pi systemd-analyze security outpost.service --no-pager | tail -n 1

step "the same package again: nothing changes, the service keeps running"
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v1.deb >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "re-install failed"; }
grep -q "is already installed" "$work/install.out" || fail "re-install did not notice the package is installed"
[ "$(in_pi systemctl show -P MainPID outpost.service)" = "$pid" ] || fail "an unchanged install restarted the service"

step "a secret as a systemd credential (README: Email and upstreams), kept across upgrades"
in_pi sh -c 'umask 077 && echo not-a-real-password >/etc/outpost/email.password'
in_pi mkdir -p /etc/systemd/system/outpost.service.d
printf '%s\n' "[Service]" "LoadCredential=email-password:/etc/outpost/email.password" \
    "Environment=OUTPOST_EMAIL_PASSWORD_FILE=%d/email-password" |
    in_pi tee /etc/systemd/system/outpost.service.d/secret.conf >/dev/null
in_pi systemctl daemon-reload
in_pi systemctl restart outpost.service
# A secret file it cannot read is a configuration error (exit 2, no restart): healthy means read.
in_pi bash /mnt/deploy/install.sh /mnt/deploy/v1.deb >/dev/null 2>&1 || fail "not healthy with the credential"
in_pi systemctl show -P Environment outpost.service | grep -q "OUTPOST_EMAIL_PASSWORD_FILE=/run/credentials/outpost.service/email-password" ||
    fail "%d did not expand to the credentials directory"
if in_pi runuser -u outpost -- cat /etc/outpost/email.password >/dev/null 2>&1; then
    fail "the outpost user can read the secret's file directly"
fi

step "upgrade over ssh (the password kept, not printed), then a broken upgrade rolled back by itself"
LEADER=$leader OUTPOST_SSH="$work/ssh" deploy/install.sh --health-timeout 60 pi@outpost.local "$work/deploy/v2.deb" \
    >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "upgrade failed"; }
! grep -q -- "$password" "$work/install.out" || fail "the upgrade printed the password again"
[ "$(password_line)" = "$password" ] || fail "the upgrade changed the password"
[ "$(installed_version)" = "$version+v2" ] || fail "the upgrade was rolled back (auth on, the health check must still pass)"
auth_on
in_pi cmp -s /mnt/deploy/v1.deb /var/cache/outpost/packages/previous.deb || fail "the old package was not kept"
if in_pi bash /mnt/deploy/install.sh --health-timeout 15 /mnt/deploy/broken.deb >"$work/install.out" 2>&1; then
    cat "$work/install.out" && fail "a broken package was accepted"
fi
grep -q "rolled back" "$work/install.out" || { cat "$work/install.out" && fail "no rollback reported"; }
[ "$(installed_version)" = "$version+v2" ] || fail "the broken package was not replaced by the one before it"
[ "$(in_pi systemctl is-active outpost.service)" = active ] || fail "not running after the rollback"
[ "$(password_line)" = "$password" ] || fail "the rollback changed the password"
in_pi cmp -s /mnt/deploy/old.toml /etc/outpost/outpost.toml || fail "the upgrades changed the edited config"

step "--rollback"
in_pi bash /mnt/deploy/install.sh --rollback >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "--rollback failed"; }
[ "$(installed_version)" = "$version" ] || fail "--rollback did not go back to the previous package"
in_pi cmp -s /mnt/deploy/v2.deb /var/cache/outpost/packages/previous.deb || fail "--rollback did not keep the other one"
auth_on
in_pi systemctl stop outpost.service
[ "$(in_pi systemctl show -P Result outpost.service)" = success ] || fail "did not stop cleanly on SIGTERM"
[ -z "$(in_pi find /tmp -maxdepth 1 -name 'outpost-install.*')" ] || fail "a staging directory was left in /tmp"
echo "pi-systemd-test: ok"
