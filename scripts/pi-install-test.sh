#!/usr/bin/env bash
# Tests deploy/install.sh without a Pi, systemd or sshd: installs into temporary roots (--root),
# with stand-ins for systemctl (starts the installed binary in the background, as the unit would)
# and ssh (runs the command here), and the real binary answering /healthz and collecting from a
# local fixture server. Checks: a fresh install, an idempotent re-install, an upgrade that keeps
# the store, config, secrets and every record, an automatic rollback of a binary that does not
# come up, and --rollback (twice = undo). The map's password: made on the first install (also of
# a root from before it existed), root-only, printed once, asked for by every page but /healthz,
# and the same after every re-install, upgrade and rollback.
#
#   scripts/pi-install-test.sh BINARY
#
# OUTPOST_QEMU_LD: for a foreign binary, the cross libc it runs with under qemu-aarch64
# (scripts/pi-check.sh passes /usr/aarch64-linux-gnu); unset runs it natively.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:?usage: pi-install-test.sh BINARY}")
work=$(mktemp -d)
cleanup() {
    [ ! -f "$work/service.pid" ] || kill "$(cat "$work/service.pid")" 2>/dev/null || true
    [ ! -f "$work/fixtures.pid" ] || kill "$(cat "$work/fixtures.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "pi-install-test: FAILED: $*" >&2
    [ ! -f "$work/service.log" ] || { echo "-- service log (last 30 lines):" && tail -n 30 "$work/service.log"; } >&2
    exit 1
}
step() { echo "-- $*"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
same() { cmp -s "$1" "$2" || fail "$1 differs from $2"; }

mkdir -p "$work/bin"
# Runs a script directly and an ELF binary natively or under qemu-aarch64.
cat >"$work/bin/run" <<EOF
#!/usr/bin/env bash
if [ "\$(head -c 2 "\$1")" = '#!' ] || [ -z "${OUTPOST_QEMU_LD:-}" ]; then exec "\$@"; fi
exec qemu-aarch64 -L "${OUTPOST_QEMU_LD:-}" "\$@"
EOF
# systemctl as far as install.sh uses it: one service, started from the root in \$ROOT.
cat >"$work/bin/systemctl" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
pidfile="$WORK/service.pid"
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
stop() {
    running || return 0
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 300); do running || return 0; sleep 0.1; done
    echo "systemctl stand-in: outpost did not stop" >&2 && return 1
}
start() {
    running && return 0
    mkdir -p "$ROOT/var/lib/outpost"     # StateDirectory=
    set -a                               # EnvironmentFile=
    # shellcheck disable=SC1091
    . "$ROOT/etc/outpost/outpost.env"
    set +a
    "$WORK/bin/run" "$ROOT/usr/local/bin/outpost" run --config "$ROOT/etc/outpost/outpost.toml" >>"$WORK/service.log" 2>&1 &
    echo $! >"$pidfile"
}
echo "$*" >>"$WORK/systemctl.log"
case "$1" in
    daemon-reload | enable) ;;
    start) start ;;
    restart) stop && start ;;
    stop) stop ;;
    *) echo "systemctl stand-in: $1 not supported" >&2 && exit 1 ;;
esac
EOF
# ssh: drops the options and the host, runs the command here.
cat >"$work/bin/ssh" <<'EOF'
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
exec bash -c "$*"
EOF
chmod +x "$work/bin/"*
export WORK="$work" OUTPOST_RUNNER="$work/bin/run" OUTPOST_SYSTEMCTL="$work/bin/systemctl" OUTPOST_SSH="$work/bin/ssh"

new_root() {
    mkdir -p "$1/etc"
    touch "$1/etc/passwd" "$1/etc/group" "$1/etc/shadow" "$1/etc/gshadow"
}
# Checksums of every file under a root but the store, to show what an install changed.
tree_sums() { (cd "$1" && find . -path ./var/lib -prune -o -type f -print | sort | xargs sha256sum); }

# --- A fresh root, no service manager ---------------------------------------------------------
A=$work/a
new_root "$A"
step "fresh install: a password is made, root-only, printed once"
deploy/install.sh --root "$A" --no-systemctl "$binary" 2>&1 | tee "$work/out"
password=$(sed -n 's/^OUTPOST_WEB_PASSWORD=//p' "$A/etc/outpost/outpost.env")
[[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "no generated password in outpost.env: '$password'"
[ "$(grep -c -- "$password" "$work/out")" = 1 ] || fail "the password is not printed exactly once"
grep -q "sudo grep OUTPOST_WEB_PASSWORD" "$work/out" || fail "not told how to read the password again"
! grep -q OUTPOST_WEB_USERNAME "$A/etc/outpost/outpost.env" || fail "the config names the user: no username in the env file"
grep -qx 'username = "outpost"' "$A/etc/outpost/outpost.toml" || fail "the installed config does not turn auth on"
same "$binary" "$A/usr/local/bin/outpost"
same deploy/outpost.service "$A/etc/systemd/system/outpost.service"
same deploy/outpost.toml "$A/etc/outpost/outpost.toml"
[ "$(stat -c %a "$A/etc/outpost/outpost.env")" = 600 ] || fail "outpost.env is not mode 600"
[ "$(stat -c %a "$A/usr/local/bin/outpost")" = 755 ] || fail "the binary is not mode 755"
grep -q '^outpost:x:[0-9]*:[0-9]*:.*:/var/lib/outpost:/usr/sbin/nologin$' "$A/etc/passwd" || fail "no system user"
[ ! -e "$A/usr/local/lib/outpost/outpost.previous" ] || fail "a first install has no previous binary"
step "re-install: nothing changes"
before=$(tree_sums "$A")
deploy/install.sh --root "$A" --no-systemctl "$binary" 2>&1 | tee "$work/out"
grep -q "is already installed" "$work/out" || fail "re-install did not notice the binary is installed"
[ "$(tree_sums "$A")" = "$before" ] || fail "re-install changed files"
! grep -q -- "$password" "$work/out" || fail "re-install printed the password again"
step "a web password turned off (commented out) stays off"
C=$work/c
new_root "$C"
mkdir -p "$C/etc/outpost"
(umask 077 && echo "#OUTPOST_WEB_PASSWORD=" >"$C/etc/outpost/outpost.env")
deploy/install.sh --root "$C" --no-systemctl "$binary" >/dev/null 2>&1
[ "$(cat "$C/etc/outpost/outpost.env")" = "#OUTPOST_WEB_PASSWORD=" ] || fail "a commented-out password was replaced"
[ "$(grep -c '^outpost:' "$A/etc/passwd")" = 1 ] || fail "the user was added twice"
step "an edited config is kept"
echo "# edited on the Pi" >>"$A/etc/outpost/outpost.toml"
cp "$A/etc/outpost/outpost.toml" "$work/edited.toml"
deploy/install.sh --root "$A" --no-systemctl "$binary" >/dev/null 2>&1
same "$work/edited.toml" "$A/etc/outpost/outpost.toml"

# --- A root with an existing config, secrets and store, a service, over "ssh" -----------------
B=$work/b
new_root "$B"
export ROOT=$B
fixtures_port=$(free_port)
web_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory tests/fixtures "$fixtures_port" >"$work/fixtures.log" 2>&1 &
echo $! >"$work/fixtures.pid"
mkdir -p "$B/etc/outpost" "$B/var/lib/outpost"
cat >"$B/etc/outpost/outpost.toml" <<EOF
# this Pi's own config: an install must not touch it
[station]
id = "pi-install-test"
[store]
path = "$B/var/lib/outpost"
commit_interval_s = 1
[iss]
position_url = "http://127.0.0.1:$fixtures_port/open-notify_iss-now.json"
poll_interval_s = 1
tle_url = "http://127.0.0.1:$fixtures_port/celestrak_gp_CATNR25544_FORMAT_TLE.txt"
[varsom]
base_url = "http://127.0.0.1:$fixtures_port/nve"
regions = [3022]
[weather]
enabled = false
[web]
listen = "127.0.0.1:$web_port"
EOF
# An install from before the map's password: its env file has other secrets and no web password.
echo "OUTPOST_MQTT_PASSWORD=kept-secret" >"$B/etc/outpost/outpost.env"
chmod 600 "$B/etc/outpost/outpost.env"
echo "the history" >"$B/var/lib/outpost/sentinel"
kept_sums=$(cd "$B" && sha256sum etc/outpost/outpost.toml var/lib/outpost/sentinel)
# Once the first install has added the password: the env file's checksum, and the password.
env_sum="" password=""
kept() {
    (cd "$B" && sha256sum -c --quiet - <<<"$kept_sums") || fail "config or store were touched"
    [ -z "$env_sum" ] || [ "$(sha256sum <"$B/etc/outpost/outpost.env")" = "$env_sum" ] || fail "the env file (the password) changed"
    [ -z "$password" ] || ! grep -q -- "$password" "$work/out" || fail "the password was printed again"
}
# Records per kind, from the running appliance, with the service's env file (README: the status
# command with the web password).
counts() {
    # shellcheck disable=SC1091
    (set -a && . "$B/etc/outpost/outpost.env" && set +a &&
        "$work/bin/run" "$B/usr/local/bin/outpost" status --json --config "$B/etc/outpost/outpost.toml") |
        python3 -c 'import json, sys; print(" ".join("%s=%s" % (k["kind"], k["count"]) for k in json.load(sys.stdin)["store"]["kinds"]))'
}
cp "$binary" "$work/v1"
cp "$binary" "$work/v2" && printf 'v2' >>"$work/v2" # a different file that runs the same
cat >"$work/broken" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && echo "outpost 9.9.9" && exit 0
echo "broken on purpose" >&2
exit 1
EOF
chmod +x "$work/v2" "$work/broken"

# The HTTP status of GET PATH on the appliance, with USER:PASSWORD when given.
http_code() {
    python3 - "http://127.0.0.1:$web_port$1" "${2:-}" <<'EOF'
import base64, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Host": "localhost"})
if sys.argv[2]:
    request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[2].encode()).decode())
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
EOF
}
# The pages and /healthz with and without the password in B's env file.
auth_on() {
    local user password path
    user=$(sed -n 's/^OUTPOST_WEB_USERNAME=//p' "$B/etc/outpost/outpost.env")
    password=$(sed -n 's/^OUTPOST_WEB_PASSWORD=//p' "$B/etc/outpost/outpost.env")
    [ "$(http_code /healthz)" = 200 ] || fail "/healthz needs the password"
    for path in / /status /api/status /metrics; do
        [ "$(http_code "$path")" = 401 ] || fail "$path answers without the password"
        [ "$(http_code "$path" "$user:wrong")" = 401 ] || fail "$path answers a wrong password"
        [ "$(http_code "$path" "$user:$password")" = 200 ] || fail "$path refuses the password"
    done
}

step "install over ssh onto a root from before the password: added, printed once, auth on"
deploy/install.sh --root "$B" --health-timeout 60 pi@test.local "$work/v1" 2>&1 | tee "$work/out"
same "$work/v1" "$B/usr/local/bin/outpost"
(cd "$B" && sha256sum -c --quiet - <<<"$kept_sums") || fail "config or store were touched"
grep -qx "OUTPOST_MQTT_PASSWORD=kept-secret" "$B/etc/outpost/outpost.env" || fail "the existing secret was lost"
grep -qx "OUTPOST_WEB_USERNAME=outpost" "$B/etc/outpost/outpost.env" || fail "no username for a config without one"
password=$(sed -n 's/^OUTPOST_WEB_PASSWORD=//p' "$B/etc/outpost/outpost.env")
[[ $password =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "no password added on the upgrade: '$password'"
[ "$(grep -c -- "$password" "$work/out")" = 1 ] || fail "the added password is not printed exactly once"
[ "$(stat -c %a "$B/etc/outpost/outpost.env")" = 600 ] || fail "outpost.env is not mode 600"
auth_on
env_sum=$(sha256sum <"$B/etc/outpost/outpost.env")
for _ in $(seq 600); do
    c1=$(counts)
    [[ $c1 == *"iss.position=1"* && $c1 == *"iss.tle=1"* ]] && break
    sleep 0.1
done
[[ $c1 == *"iss.position=1"* && $c1 == *"iss.tle=1"* ]] || fail "nothing collected: $c1"
echo "records: $c1"
# From here on nothing new can be collected: equal counts mean the same store, not a refilled one.
kill "$(cat "$work/fixtures.pid")" && rm "$work/fixtures.pid"

step "re-install over ssh: no restart, no previous binary"
pid=$(cat "$work/service.pid")
deploy/install.sh --root "$B" pi@test.local "$work/v1" 2>&1 | tee "$work/out"
grep -q "is already installed" "$work/out" || fail "re-install did not notice the binary is installed"
[ "$(cat "$work/service.pid")" = "$pid" ] || fail "an unchanged install restarted the service"
[ ! -e "$B/usr/local/lib/outpost/outpost.previous" ] || fail "re-install made a previous binary"
kept

step "upgrade: every record kept, the old binary becomes previous, the password kept"
deploy/install.sh --root "$B" pi@test.local "$work/v2" 2>&1 | tee "$work/out"
same "$work/v2" "$B/usr/local/bin/outpost"
auth_on
same "$work/v1" "$B/usr/local/lib/outpost/outpost.previous"
[ "$(counts)" = "$c1" ] || fail "records changed across the upgrade: $c1 -> $(counts)"
kept

step "an upgrade that does not come up is rolled back by itself"
if deploy/install.sh --root "$B" --health-timeout 10 pi@test.local "$work/broken" 2>&1 | tee "$work/out"; then
    fail "install.sh succeeded with a broken binary"
fi
grep -q "rolled back" "$work/out" || fail "no rollback reported"
same "$work/v2" "$B/usr/local/bin/outpost"
same "$work/v1" "$B/usr/local/lib/outpost/outpost.previous"
[ "$(counts)" = "$c1" ] || fail "records changed across the rollback"
kept

step "--rollback, twice"
deploy/install.sh --rollback --root "$B" pi@test.local 2>&1 | tee "$work/out"
same "$work/v1" "$B/usr/local/bin/outpost"
same "$work/v2" "$B/usr/local/lib/outpost/outpost.previous"
[ "$(counts)" = "$c1" ] || fail "records changed across --rollback"
deploy/install.sh --rollback --root "$B" pi@test.local 2>&1 | tee "$work/out"
same "$work/v2" "$B/usr/local/bin/outpost"
same "$work/v1" "$B/usr/local/lib/outpost/outpost.previous"
kept
auth_on
[ -z "$(find /tmp -maxdepth 1 -name 'outpost-install.*' -newer "$work/v1")" ] || fail "a staging directory was left in /tmp"
"$work/bin/systemctl" stop
echo "pi-install-test: ok"
