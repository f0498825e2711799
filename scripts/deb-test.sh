#!/usr/bin/env bash
# The Debian package under a real systemd and dpkg: boots Debian 12 in systemd-nspawn (the root
# of scripts/pi-systemd-test.sh, cached in $OUTPOST_TOOLS/nspawn-bookworm) and checks the
# package's life: `apt install ./outpost_*.deb` creates the system user (no login), the root-only
# env file with the map's password (printed once), enables and starts the hardened unit, which
# answers /healthz (401 without the password, 200 with it); records are collected from the
# fixture server (run inside the container's network) into a config edited on the "Pi"; an
# upgrade to a newer build (the same package repacked with a bumped version, a different binary
# and a changed conffile) keeps every record, the edited config (--force-confold; the new one is
# left as .dpkg-dist) and the password; remove keeps the store and the config; purge deletes them.
#
#   scripts/deb-test.sh outpost_<version>_amd64.deb      (scripts/build-deb.sh makes it)
#
# Exit code 77 (skipped, with the reason) when this machine cannot boot a container.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "${1:?usage: deb-test.sh outpost_VERSION_amd64.deb}")
tools="${OUTPOST_TOOLS:-$HOME/.cache/outpost}"
image="$tools/nspawn-bookworm"
[ -e "$image/etc/ssl/certs/ca-certificates.crt" ] || {
    echo "deb-test: SKIPPED: no Debian root in $image (scripts/pi-systemd-test.sh makes it)"
    exit 77
}

work=$(mktemp -d)
nspawn_pid="" leader="" fixtures_pid=""
cleanup() {
    [ -z "$fixtures_pid" ] || kill "$fixtures_pid" 2>/dev/null || true
    [ -z "$nspawn_pid" ] || { kill "$nspawn_pid" 2>/dev/null && wait "$nspawn_pid" 2>/dev/null; } || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "deb-test: FAILED: $*" >&2
    [ -z "$leader" ] || in_pi journalctl -u outpost --no-pager -n 30 >&2 || true
    exit 1
}
step() { echo "-- $*"; }

# The newer build: the same package with a bumped version, a binary that differs but runs the
# same, and a changed conffile (so dpkg has to choose between it and the edited one).
mkdir "$work/deb"
cp "$deb" "$work/deb/v1.deb"
v1=$(dpkg-deb -f "$deb" Version)
v2="$v1+upgrade"
scripts/deb-repack.sh --conffile "$deb" "$work/deb/v2.deb" "$v2"
dpkg-deb -x "$work/deb/v2.deb" "$work/v2"

systemd-nspawn --quiet --boot --ephemeral --register=no --keep-unit --private-network \
    --console=passive --machine="outpost-deb-$$" -D "$image" --bind-ro="$work/deb:/mnt/deb" \
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
    echo "deb-test: SKIPPED: systemd-nspawn cannot boot a container here (state: ${state:-none}):"
    cat "$work/nspawn.log"
    exit 77
fi
echo "-- booted Debian $(in_pi cat /etc/debian_version) with $(in_pi systemctl --version | head -n 1)"

apt_get() { in_pi env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold "$@"; }
b64() { printf '%s' "$1" | base64 -w0; }
# The HTTP status of GET PATH on the container's port 8080, as USER:PASSWORD when given.
http_code() {
    local header=""
    [ -z "${2:-}" ] || header="Authorization: Basic $(b64 "$2")"$'\r\n'
    # shellcheck disable=SC2016 # expanded by the bash in the container
    in_pi bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1
        printf "GET %s HTTP/1.0\r\nHost: localhost\r\n%s\r\n" "$1" "$2" >&3
        read -r -t 10 _ code _ <&3 && echo "$code"' http_code "$1" "$header" 2>/dev/null
}
healthy() {
    for _ in $(seq 600); do
        [ "$(http_code /healthz)" != 200 ] || return 0
        sleep 0.1
    done
    fail "/healthz does not answer"
}
password_line() { in_pi sed -n 's/^OUTPOST_WEB_PASSWORD=//p' /etc/outpost/outpost.env; }
auth_on() {
    [ "$(http_code /healthz)" = 200 ] || fail "/healthz needs the password"
    for path in / /api/status; do
        [ "$(http_code "$path")" = 401 ] || fail "$path answers without the password"
        [ "$(http_code "$path" "outpost:wrong")" = 401 ] || fail "$path answers a wrong password"
        [ "$(http_code "$path" "outpost:$password")" = 200 ] || fail "$path refuses the password"
    done
}
# Records per kind, from the running service, as the README says: `sudo outpost status` finds
# the installed config and reads the password from its env file.
counts() {
    in_pi outpost status --json |
        python3 -c 'import json, sys; print(" ".join("%s=%s" % (k["kind"], k["count"]) for k in json.load(sys.stdin)["store"]["kinds"]))'
}
sum() { in_pi sha256sum "$1" | cut -d' ' -f1; }

step "apt install ./outpost_*.deb: user, env file, password printed once, the service up"
apt_get install ./mnt/deb/v1.deb >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "install failed"; }
grep -v '^(\{0,1\}\(Reading\|Building\|Selecting\|Preparing\|Unpacking\|debconf\)' "$work/install.out"
password=$(password_line)
[[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "no generated password in /etc/outpost/outpost.env: '$password'"
[ "$(in_pi stat -c %U:%a /etc/outpost/outpost.env)" = root:600 ] || fail "outpost.env is not root-only"
[ "$(grep -c -- "$password" "$work/install.out")" = 1 ] || fail "the password is not printed exactly once"
user=$(in_pi getent passwd outpost) || fail "no outpost user"
[[ $user == *:/var/lib/outpost:/usr/sbin/nologin ]] || fail "the outpost user can log in: $user"
[ "$(cut -d: -f3 <<<"$user")" -lt 1000 ] || fail "outpost is not a system user: $user"
healthy
auth_on
in_pi runuser -u nobody -- outpost status --json | grep -q '"source": "running appliance (no web password)"' ||
    fail "outpost status gave a user who may not read outpost.env more than the health"
[ "$(in_pi systemctl is-enabled outpost.service)" = enabled ] || fail "not enabled at boot"
pid=$(in_pi systemctl show -P MainPID outpost.service)
[ "$(in_pi ps -o user= -p "$pid")" = outpost ] || fail "outpost does not run as the outpost user"
[ "$(in_pi stat -c %U:%a /var/lib/outpost)" = outpost:750 ] || fail "the store directory is not the service's"
# /lib is /usr/lib on Debian 12 (merged /usr); systemd names it by the former.
[[ "$(in_pi systemctl show -P FragmentPath outpost.service)" == @(/usr|)/lib/systemd/system/outpost.service ]] ||
    fail "the unit is not the package's"
for f in /usr/share/man/man1/outpost.1.gz /usr/share/man/man1/outpost-run.1.gz \
    /usr/share/bash-completion/completions/outpost /usr/share/zsh/vendor-completions/_outpost; do
    in_pi test -s "$f" || fail "$f is not installed"
done
# shellcheck disable=SC2016 # dpkg-query's field names
in_pi dpkg-query -W -f '${Conffiles}\n' outpost | grep -q ' /etc/outpost/outpost.toml ' || fail "outpost.toml is not a conffile"

step "the config edited on the Pi: records from the fixture server (in the container's network)"
nsenter -t "$leader" -n -- python3 -m http.server --bind 127.0.0.1 --directory tests/fixtures 8000 >"$work/fixtures.log" 2>&1 &
fixtures_pid=$!
# (The TLE is not asked again within 2 hours of the first attempt, which had no network.)
in_pi sed -i -e 's/^commit_interval_s = .*/commit_interval_s = 1/' \
    -e '/^\[iss\]/a position_url = "http://127.0.0.1:8000/open-notify_iss-now.json"' \
    -e 's/^poll_interval_s = .*/poll_interval_s = 1/' \
    -e '/^\[weather\]/a enabled = false' /etc/outpost/outpost.toml
in_pi outpost check-config --config /etc/outpost/outpost.toml >/dev/null 2>&1 || fail "the edited config is not valid"
edited=$(sum /etc/outpost/outpost.toml)
in_pi systemctl restart outpost.service
healthy
for _ in $(seq 600); do
    c1=$(counts) || true
    [[ $c1 == *"iss.position=1"* ]] && break
    sleep 0.1
done
[[ $c1 == *"iss.position=1"* ]] || fail "nothing collected: $c1"
# From here on nothing new can be collected: equal counts mean the same store, not a refilled one.
kill "$fixtures_pid"
wait "$fixtures_pid" 2>/dev/null || true
fixtures_pid=""
c1=$(counts)
echo "records: $c1"

step "upgrade to $v2: every record, the edited config and the password kept"
apt_get install ./mnt/deb/v2.deb >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "upgrade failed"; }
# shellcheck disable=SC2016 # dpkg-query's field names
[ "$(in_pi dpkg-query -W -f '${Version}' outpost)" = "$v2" ] || fail "not upgraded"
[ "$(sum /usr/bin/outpost)" = "$(sha256sum <"$work/v2/usr/bin/outpost" | cut -d' ' -f1)" ] || fail "the binary was not replaced"
[ "$(sum /etc/outpost/outpost.toml)" = "$edited" ] || fail "the upgrade replaced the edited config"
in_pi test -e /etc/outpost/outpost.toml.dpkg-dist || fail "the package's new config was not left beside it"
[ "$(password_line)" = "$password" ] || fail "the upgrade changed the password"
! grep -q -- "$password" "$work/install.out" || fail "the upgrade printed the password again"
[ "$(in_pi systemctl show -P ExecMainPID outpost.service)" != "$pid" ] || fail "the service was not restarted"
healthy
auth_on
[ "$(counts)" = "$c1" ] || fail "records changed across the upgrade: $c1 -> $(counts)"

step "remove: the service stops, the store and the config stay"
apt_get remove outpost >"$work/remove.out" 2>&1 || { cat "$work/remove.out" && fail "remove failed"; }
! in_pi test -e /usr/bin/outpost || fail "the binary is still there"
[ "$(in_pi systemctl is-active outpost.service)" != active ] || fail "still running after remove"
in_pi test -s /var/lib/outpost/outpost.redb || fail "remove deleted the store"
[ "$(sum /etc/outpost/outpost.toml)" = "$edited" ] || fail "remove changed the config"
[ "$(password_line)" = "$password" ] || fail "remove lost the password"

step "install again after remove: the same records, the same password"
apt_get install ./mnt/deb/v2.deb >"$work/install.out" 2>&1 || { cat "$work/install.out" && fail "reinstall failed"; }
healthy
auth_on
[ "$(counts)" = "$c1" ] || fail "records changed across remove and install: $c1 -> $(counts)"

step "purge: the store, the config and the password are gone"
apt_get purge outpost >"$work/remove.out" 2>&1 || { cat "$work/remove.out" && fail "purge failed"; }
! in_pi test -e /var/lib/outpost || fail "purge kept /var/lib/outpost"
! in_pi test -e /etc/outpost || fail "purge kept /etc/outpost: $(in_pi ls -A /etc/outpost)"
! in_pi test -e /usr/lib/systemd/system/outpost.service || fail "purge kept the unit"
[ -z "$(in_pi find /etc/systemd/system -name 'outpost*')" ] || fail "purge left links to the unit"
echo "deb-test: ok"
