#!/usr/bin/env bash
# Installs or upgrades Outpost from a built binary, on a Raspberry Pi over ssh or on the machine
# itself (any Debian-like system with systemd):
#
#   deploy/install.sh pi@outpost.local target/aarch64-unknown-linux-gnu/release/outpost
#   sudo deploy/install.sh ./outpost                  # on the Pi itself
#   deploy/install.sh --rollback pi@outpost.local     # back to the binary before the last upgrade
#
# What it does, each step only when needed (running it twice changes nothing the second time):
# creates the system user `outpost`; installs the binary as /usr/local/bin/outpost, keeping the one
# it replaces as /usr/local/lib/outpost/outpost.previous; installs the systemd unit; installs
# /etc/outpost/outpost.toml and a root-only /etc/outpost/outpost.env only if absent (an upgrade
# never touches the config, nor the store in /var/lib/outpost); enables and (re)starts the
# service and waits for /healthz (served without the password). If the new binary does not come
# up healthy, the one before it is put back and restarted, and the script fails.
# The map's password: when no web password is configured (the env file has no
# OUTPOST_WEB_PASSWORD line, not even a commented one, and neither the config nor a drop-in sets
# it), a random one is added to the env file (with OUTPOST_WEB_USERNAME=outpost if the config
# names no user) and printed once at the end. So a first install turns basic auth on, an install
# from before this gets it on its next upgrade, and any later upgrade keeps it as it is.
#
# Options (before the positional arguments):
#   --rollback             swap the installed binary with the previous one (twice = undo)
#   --health-timeout SECS  how long to wait for /healthz (default 90: a Pi 3 reopening a large store)
#   --root DIR             install under DIR instead of / (for tests; the user goes into DIR/etc)
#   --no-systemctl         do not call systemctl (no enable, restart or health check)
# Environment, for tests: OUTPOST_SYSTEMCTL (command used instead of systemctl), OUTPOST_SSH
# (instead of ssh), OUTPOST_RUNNER (prefix to run the binary, e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

rollback=0
health_timeout=90
root=/
use_systemctl=1
forward=() # options repeated on the Pi when working over ssh
while [ $# -gt 0 ]; do
    case "$1" in
        --rollback) rollback=1 ;;
        --no-systemctl) use_systemctl=0 ;;
        --health-timeout | --root)
            [ $# -ge 2 ] || die "$1 needs a value"
            if [ "$1" = --root ]; then root=$2; else health_timeout=$2; fi
            forward+=("$1")
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        --) shift && break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
    forward+=("$1")
    shift
done

# Positional: [HOST] BINARY to install, [HOST] with --rollback. A HOST means: do it over ssh.
host=""
binary=""
if [ "$rollback" = 1 ]; then
    [ $# -le 1 ] || die "--rollback takes at most a host"
    host=${1:-}
else
    case $# in
        1) binary=$1 ;;
        2) host=$1 binary=$2 ;;
        *) die "usage: install.sh [options] [user@host] BINARY | install.sh --rollback [user@host]" ;;
    esac
    [ -f "$binary" ] || die "$binary: no such file (build it first, see README: Raspberry Pi)"
fi

# Over ssh: copy this directory's three files and the binary to a temporary directory on the Pi
# and run this script there as root. One ssh connection is shared, so a password is asked once.
if [ -n "$host" ]; then
    read -r -a ssh <<<"${OUTPOST_SSH:-ssh}"
    stage=$(mktemp -d)
    control="$stage/ssh"
    trap '"${ssh[@]}" -o ControlPath="$control" -O exit "$host" 2>/dev/null || true; rm -rf "$stage"' EXIT
    ssh+=(-o ControlMaster=auto -o ControlPath="$control" -o ControlPersist=120)
    mkdir "$stage/files"
    cp "$here/install.sh" "$here/outpost.service" "$here/outpost.toml" "$stage/files/"
    [ -z "$binary" ] || cp "$binary" "$stage/files/outpost"
    say "copying to $host"
    dir=$("${ssh[@]}" "$host" 'mktemp -d /tmp/outpost-install.XXXXXX')
    tar -C "$stage/files" -cf - . | "${ssh[@]}" "$host" "tar -C '$dir' -xf -"
    args=$(printf ' %q' "${forward[@]}" ${binary:+"$dir/outpost"})
    tty=()
    [ ! -t 0 ] || tty=(-t)
    status=0
    "${ssh[@]}" "${tty[@]}" "$host" "if [ \"\$(id -u)\" = 0 ]; then s=; else s=sudo; fi; \$s bash '$dir/install.sh'$args; rc=\$?; rm -rf '$dir'; exit \$rc" || status=$?
    exit "$status"
fi

# From here on: on the target machine.
r=${root%/}
bin=$r/usr/local/bin/outpost
lib=$r/usr/local/lib/outpost
prev=$lib/outpost.previous
unit=$r/etc/systemd/system/outpost.service
conf=$r/etc/outpost/outpost.toml
envfile=$r/etc/outpost/outpost.env
read -r -a runner <<<"${OUTPOST_RUNNER:-}"
read -r -a systemctl <<<"${OUTPOST_SYSTEMCTL:-systemctl}"

[ "$r" != "" ] || [ "$(id -u)" = 0 ] || die "run it as root: sudo $0 ..."

version() { "${runner[@]}" "$1" --version 2>&1 | head -n 1; }

# The address /healthz answers on: web.listen from the config (an OUTPOST_WEB_LISTEN in the env
# file wins, as in the service), all-interfaces replaced by loopback.
health_addr() {
    local listen
    listen=$(sed -n 's/^OUTPOST_WEB_LISTEN=//p' "$envfile" 2>/dev/null | tail -n 1)
    if [ -z "$listen" ]; then
        listen=$(awk -F'"' '/^[[:space:]]*\[/ { web = ($0 ~ /^[[:space:]]*\[web\]/) }
                            web && /^[[:space:]]*listen[[:space:]]*=/ { print $2 }' "$conf" 2>/dev/null | tail -n 1)
    fi
    listen=${listen:-127.0.0.1:8080}
    local h=${listen%:*} p=${listen##*:}
    h=${h#[}
    h=${h%]}
    case "$h" in 0.0.0.0 | "") h=127.0.0.1 ;; ::) h=::1 ;; esac
    printf '%s %s\n' "$h" "$p"
}

# Whether [web] in the config sets KEY (uncommented).
web_key_set() {
    awk -v key="$1" '/^[[:space:]]*\[/ { web = ($0 ~ /^[[:space:]]*\[web\]/) }
                     web && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { found = 1 }
                     END { exit !found }' "$conf" 2>/dev/null
}

# The password made by this run, once, with how to read and change it later.
tell_password() {
    [ -n "$new_password" ] || return 0
    local user
    user=$(sed -n 's/^OUTPOST_WEB_USERNAME=//p' "$envfile" | tail -n 1)
    [ -n "$user" ] || user=$(awk -F'"' '/^[[:space:]]*\[/ { web = ($0 ~ /^[[:space:]]*\[web\]/) }
                                       web && /^[[:space:]]*username[[:space:]]*=/ { print $2 }' "$conf" | tail -n 1)
    printf '%s\n' "" "The map and API now ask for a password (shown this once):" \
        "    user:     ${user:-outpost}" "    password: $new_password" \
        "Read it again:  sudo grep OUTPOST_WEB_PASSWORD $envfile" \
        "Change it:      edit that line, then: sudo systemctl restart outpost" "" >&2
}

# One GET /healthz with bash's /dev/tcp (no curl needed on the Pi); true on HTTP 200.
healthz_once() {
    local line=""
    exec 3<>"/dev/tcp/$1/$2" || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3
    IFS= read -r -t 5 line <&3 || true
    exec 3<&- 3>&-
    [[ $line == HTTP/1.?\ 200* ]]
}

# Waits until /healthz answers 200, at most health_timeout seconds.
healthy() {
    local h p deadline=$((SECONDS + health_timeout))
    read -r h p < <(health_addr)
    say "waiting for http://$h:$p/healthz (at most ${health_timeout}s)"
    until healthz_once "$h" "$p" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

restart() {
    [ "$use_systemctl" = 1 ] || return 0
    "${systemctl[@]}" daemon-reload
    "${systemctl[@]}" enable --quiet outpost.service
    "${systemctl[@]}" "$1" outpost.service && healthy
}

if [ "$rollback" = 1 ]; then
    [ -f "$prev" ] || die "no previous binary in $lib: nothing to roll back to"
    say "rolling back: $(version "$bin") -> $(version "$prev")"
    cp -p "$bin" "$lib/outpost.swap"
    cp -p "$prev" "$bin.new" && mv -f "$bin.new" "$bin"
    mv -f "$lib/outpost.swap" "$prev"
    restart restart || die "the rolled-back binary is not healthy either: journalctl -u outpost"
    say "rolled back to $(version "$bin"); the other one is now $prev"
    exit 0
fi

# Refuse a binary this machine cannot run (wrong architecture, too new a glibc) before touching anything.
new_version=$(version "$binary") || true
[[ $new_version == outpost* ]] || die "$binary does not run here: $new_version"

changed=0
if ! grep -q '^outpost:' "$r/etc/passwd" 2>/dev/null; then
    say "creating the system user outpost"
    prefix=()
    [ -z "$r" ] || prefix=(--prefix "$r")
    useradd "${prefix[@]}" --system --user-group --home-dir /var/lib/outpost --no-create-home \
        --shell /usr/sbin/nologin --comment "Outpost appliance" outpost
fi
install -d -m 755 "$r/usr/local/bin" "$lib" "$r/etc/systemd/system" "$r/etc/outpost"

if ! cmp -s "$here/outpost.service" "$unit"; then
    say "installing $unit"
    install -m 644 "$here/outpost.service" "$unit"
    changed=1
fi
if [ -e "$conf" ]; then
    say "keeping $conf"
else
    say "installing $conf (edit it, then: sudo systemctl restart outpost)"
    install -m 644 "$here/outpost.toml" "$conf"
    changed=1
fi
if [ ! -e "$envfile" ]; then
    say "creating $envfile (root only, for OUTPOST_* secrets)"
    (umask 077 && printf '%s\n' "# OUTPOST_<SECTION>_<KEY>=value lines for secrets, e.g. OUTPOST_EMAIL_PASSWORD=..." >"$envfile")
fi
# The map's password, made once. Left alone whenever the web password is configured anywhere,
# even commented out in the env file (how auth is turned off for good): an upgrade never changes it.
new_password=""
if ! grep -Eq '^[#[:space:]]*OUTPOST_WEB_PASSWORD(_FILE)?=' "$envfile" && ! web_key_set password &&
    ! web_key_set password_file && ! grep -rqs OUTPOST_WEB_PASSWORD "$unit.d"; then
    new_password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    # A config from before the password existed has no username: the env file names it too.
    if ! web_key_set username && ! grep -Eq '^[#[:space:]]*OUTPOST_WEB_USERNAME=' "$envfile"; then
        printf '%s\n' "OUTPOST_WEB_USERNAME=outpost" >>"$envfile"
    fi
    printf '%s\n' "# The map's password (made by install.sh; change it here, then: sudo systemctl restart outpost)" \
        "OUTPOST_WEB_PASSWORD=$new_password" >>"$envfile"
    chmod 600 "$envfile"
    say "added a web password to $envfile"
fi

# The binary: the running one is kept aside until the new one is healthy, then becomes previous.
upgraded=0
if [ -e "$bin" ] && cmp -s "$binary" "$bin"; then
    say "$new_version is already installed"
else
    if [ -e "$bin" ]; then
        say "upgrading $(version "$bin") -> $new_version"
        cp -p "$bin" "$lib/outpost.rollback"
        upgraded=1
    else
        say "installing $new_version"
    fi
    install -m 755 "$binary" "$bin.new" && mv -f "$bin.new" "$bin"
    changed=1
fi

if [ "$changed" = 1 ]; then action=restart; else action=start; fi
if restart "$action"; then
    [ "$upgraded" = 0 ] || mv -f "$lib/outpost.rollback" "$prev"
    say "done: $new_version$([ "$use_systemctl" = 0 ] || echo ' is running')"
    tell_password
    exit 0
fi
tell_password
if [ "$upgraded" = 1 ]; then
    say "$new_version did not come up healthy: putting the previous binary back"
    mv -f "$lib/outpost.rollback" "$bin"
    restart restart || die "the previous binary is not healthy either: journalctl -u outpost"
    die "upgrade failed and was rolled back to $(version "$bin"); see journalctl -u outpost"
fi
die "outpost is not healthy: journalctl -u outpost"
