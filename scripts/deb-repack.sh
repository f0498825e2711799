#!/usr/bin/env bash
# A newer build of Outpost's package for the upgrade tests (scripts/deb-test.sh,
# scripts/pi-systemd-test.sh), without building again: IN.deb repacked as OUT.deb with version
# VERSION and a binary that differs from IN's (its own bytes plus two, so it runs the same), or
# the file given with --binary; --conffile also changes the packaged /etc/outpost/outpost.toml.
#
#   scripts/deb-repack.sh [--binary FILE] [--conffile] IN.deb OUT.deb VERSION
set -euo pipefail
binary="" conffile=0
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a file} && shift ;;
        --conffile) conffile=1 ;;
        *) break ;;
    esac
    shift
done
in=${1:?usage: deb-repack.sh [--binary FILE] [--conffile] IN.deb OUT.deb VERSION}
out=${2:?OUT.deb} version=${3:?VERSION}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dpkg-deb -R "$in" "$tree"
sed -i "s/^Version: .*/Version: $version/" "$tree/DEBIAN/control"
if [ -n "$binary" ]; then cp "$binary" "$tree/usr/bin/outpost"; else printf 'v2' >>"$tree/usr/bin/outpost"; fi
[ "$conffile" = 0 ] || echo "# a line the newer package adds" >>"$tree/etc/outpost/outpost.toml"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
# Fast compression: a test package, made on every run.
dpkg-deb --root-owner-group -Zgzip -z1 -b "$tree" "$out" >/dev/null
