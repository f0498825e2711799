#!/usr/bin/env bash
# Installs or upgrades Outpost's Debian package (scripts/build-deb.sh makes it), on a Raspberry Pi
# over ssh or on the machine itself (any Debian-like system with systemd):
#
#   deploy/install.sh pi@outpost.local outpost_0.1.0-1_arm64.deb
#   sudo deploy/install.sh ./outpost_0.1.0-1_arm64.deb     # on the Pi itself
#   deploy/install.sh --rollback pi@outpost.local          # back to the package before the last upgrade
#
# The package does the installing (`apt-get install ./file.deb`): the system user, the unit, the
# config as a conffile (an edited one is always kept: --force-confold), the root-only env file
# with the map's password (made and printed once by its postinst), the store kept. This script
# adds the upgrade's safety net: the package it replaces is kept in /var/cache/outpost/packages
# as previous.deb, and if the new one does not answer /healthz (served without the password)
# within the timeout, the previous one is installed again and the script fails. Running it
# twice with the same package changes nothing the second time. A Pi set up by install.sh before
# the package (/usr/local/bin/outpost, /etc/systemd/system/outpost.service) is moved to it:
# those files go, the config, secrets and store stay.
#
# Options (before the positional arguments):
#   --rollback             install the package before the last upgrade again (twice = undo)
#   --health-timeout SECS  how long to wait for /healthz (default 90: a Pi 3 reopening a large store)
#   --no-systemctl         do not wait for /healthz (no systemd running, e.g. in a chroot); no
#                          automatic rollback then
# Environment, for tests: OUTPOST_SSH (command used instead of ssh), OUTPOST_PACKAGES (instead
# of /var/cache/outpost/packages).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

rollback=0
health_timeout=90
use_systemctl=1
forward=() # options repeated on the Pi when working over ssh
while [ $# -gt 0 ]; do
    case "$1" in
        --rollback) rollback=1 ;;
        --no-systemctl) use_systemctl=0 ;;
        --health-timeout)
            [ $# -ge 2 ] || die "$1 needs a value"
            health_timeout=$2
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

# Positional: [HOST] PACKAGE to install, [HOST] with --rollback. A HOST means: do it over ssh.
host=""
deb=""
if [ "$rollback" = 1 ]; then
    [ $# -le 1 ] || die "--rollback takes at most a host"
    host=${1:-}
else
    case $# in
        1) deb=$1 ;;
        2) host=$1 deb=$2 ;;
        *) die "usage: install.sh [options] [user@host] PACKAGE.deb | install.sh --rollback [user@host]" ;;
    esac
    [ -f "$deb" ] || die "$deb: no such file (build it first: scripts/build-deb.sh arm64)"
fi

# Over ssh: copy this script and the package to a temporary directory on the Pi and run it there
# as root. One ssh connection is shared, so a password is asked once.
if [ -n "$host" ]; then
    read -r -a ssh <<<"${OUTPOST_SSH:-ssh}"
    stage=$(mktemp -d)
    control="$stage/ssh"
    trap '"${ssh[@]}" -o ControlPath="$control" -O exit "$host" 2>/dev/null || true; rm -rf "$stage"' EXIT
    ssh+=(-o ControlMaster=auto -o ControlPath="$control" -o ControlPersist=120)
    mkdir "$stage/files"
    cp "$here/install.sh" "$stage/files/"
    [ -z "$deb" ] || cp "$deb" "$stage/files/outpost.deb"
    say "copying to $host"
    dir=$("${ssh[@]}" "$host" 'mktemp -d /tmp/outpost-install.XXXXXX')
    tar -C "$stage/files" -cf - . | "${ssh[@]}" "$host" "tar -C '$dir' -xf -"
    args=$(printf ' %q' "${forward[@]}" ${deb:+"$dir/outpost.deb"})
    tty=()
    [ ! -t 0 ] || tty=(-t)
    status=0
    "${ssh[@]}" "${tty[@]}" "$host" "if [ \"\$(id -u)\" = 0 ]; then s=; else s=sudo; fi; \$s bash '$dir/install.sh'$args; rc=\$?; rm -rf '$dir'; exit \$rc" || status=$?
    exit "$status"
fi

# From here on: on the target machine.
packages=${OUTPOST_PACKAGES:-/var/cache/outpost/packages}
conf=/etc/outpost/outpost.toml
envfile=/etc/outpost/outpost.env
[ "$(id -u)" = 0 ] || die "run it as root: sudo $0 ..."

installed() { dpkg-query -W -f '${db:Status-Abbrev} ${Version}\n' outpost 2>/dev/null | sed -n 's/^ii  *//p'; }

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

# One GET /healthz with bash's /dev/tcp (no curl needed on the Pi); true on HTTP 200.
healthz_once() {
    local line=""
    exec 3<>"/dev/tcp/$1/$2" || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3
    IFS= read -r -t 5 line <&3 || true
    exec 3<&- 3>&-
    [[ $line == HTTP/1.?\ 200* ]]
}

# Waits until the service is active and /healthz answers 200, at most health_timeout seconds.
healthy() {
    [ "$use_systemctl" = 1 ] || return 0
    local h p deadline=$((SECONDS + health_timeout))
    read -r h p < <(health_addr)
    say "waiting for http://$h:$p/healthz (at most ${health_timeout}s)"
    until systemctl is-active --quiet outpost.service && healthz_once "$h" "$p" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

# Installs PACKAGE.deb: a downgrade or the same version built again too; an edited config is kept.
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall --allow-downgrades \
        -o Dpkg::Options::=--force-confold "$(realpath "$1")" >&2
}

if [ "$rollback" = 1 ]; then
    [ -f "$packages/previous.deb" ] || die "no previous package in $packages: nothing to roll back to"
    say "rolling back: $(installed) -> $(dpkg-deb -f "$packages/previous.deb" Version)"
    apt_install "$packages/previous.deb" || die "installing the previous package failed"
    [ ! -f "$packages/current.deb" ] || mv -f "$packages/current.deb" "$packages/swap.deb"
    mv -f "$packages/previous.deb" "$packages/current.deb"
    [ ! -f "$packages/swap.deb" ] || mv -f "$packages/swap.deb" "$packages/previous.deb"
    healthy || die "the rolled-back package is not healthy either: journalctl -u outpost"
    say "rolled back to $(installed); the other one is now $packages/previous.deb"
    exit 0
fi

[ "$(dpkg-deb -f "$deb" Package 2>/dev/null)" = outpost ] || die "$deb is not Outpost's Debian package"
new_version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
[ "$arch" = "$(dpkg --print-architecture)" ] || die "$deb is for $arch, this machine is $(dpkg --print-architecture)"
install -d -m 755 "$packages"

if [ -n "$(installed)" ] && cmp -s "$deb" "$packages/current.deb"; then
    say "outpost $new_version is already installed"
    [ "$use_systemctl" = 0 ] || systemctl start outpost.service
    healthy || die "outpost is not healthy: journalctl -u outpost"
    exit 0
fi

# Before the package: install.sh copied the binary and the unit, which would shadow the package's.
old_unit=/etc/systemd/system/outpost.service
if grep -qs "deploy/install.sh installs it as $old_unit" "$old_unit"; then
    say "moving the install from before the package to it (config, secrets and store stay)"
    [ "$use_systemctl" = 0 ] || systemctl disable --now --quiet outpost.service || true
    rm -f "$old_unit" /usr/local/bin/outpost
    rm -rf /usr/local/lib/outpost
    [ "$use_systemctl" = 0 ] || systemctl daemon-reload
fi

if [ -n "$(installed)" ]; then say "upgrading $(installed) -> $new_version"; else say "installing $new_version"; fi
cp "$deb" "$packages/incoming.deb"
apt_install "$packages/incoming.deb" || die "installing $deb failed"
if healthy; then
    [ ! -f "$packages/current.deb" ] || mv -f "$packages/current.deb" "$packages/previous.deb"
    mv -f "$packages/incoming.deb" "$packages/current.deb"
    say "done: outpost $new_version$([ "$use_systemctl" = 0 ] || echo ' is running')"
    exit 0
fi
rm -f "$packages/incoming.deb"
if [ -f "$packages/current.deb" ]; then
    say "$new_version did not come up healthy: installing the previous package again"
    apt_install "$packages/current.deb" || die "installing the previous package failed too"
    healthy || die "the previous package is not healthy either: journalctl -u outpost"
    die "upgrade failed and was rolled back to $(installed); see journalctl -u outpost"
fi
die "outpost is not healthy: journalctl -u outpost"
