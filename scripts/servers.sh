#!/usr/bin/env bash
# Installs the real servers the integration tests start: Apache Kafka (KRaft) and Apache
# Cassandra, as plain jars from Maven Central (no Docker, no tarball): `mvn dependency:copy-dependencies`
# on tests/servers/<name>/pom.xml into $OUTPOST_TOOLS/servers/<name>-<version>/lib (default
# OUTPOST_TOOLS=~/.cache/outpost; Maven's own repository stays at ~/.m2). Each version is copied
# once: a marker written last says the copy is whole, so an interrupted download is redone.
#
#   scripts/servers.sh            # installs both, prints the lib dirs
#   . scripts/servers.sh          # also exports OUTPOST_KAFKA_LIB and OUTPOST_CASSANDRA_LIB
#
# The tests run them with `java -cp "$LIB/*"` (tests/it/servers.rs); they need Java 17.
set -euo pipefail

servers_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
servers_tools="${OUTPOST_TOOLS:-$HOME/.cache/outpost}/servers"

# install_server NAME PROPERTY: prints the lib dir of tests/servers/NAME/pom.xml's version.
install_server() {
    local name=$1 prop=$2 pom version dir
    pom="$servers_root/tests/servers/$name/pom.xml"
    version=$(sed -n "s|.*<$prop>\(.*\)</$prop>.*|\1|p" "$pom")
    [ -n "$version" ] || { echo "scripts/servers.sh: no <$prop> in $pom" >&2; return 1; }
    dir="$servers_tools/$name-$version"
    if [ ! -f "$dir/.complete" ]; then
        echo "== installing $name $version from Maven Central into $dir" >&2
        rm -rf "$dir"
        mkdir -p "$dir"
        mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir/lib" >&2
        date -u +%FT%TZ >"$dir/.complete"
    fi
    echo "$dir/lib"
}

command -v java >/dev/null || { echo "scripts/servers.sh: java not found (Java 17 needed)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "scripts/servers.sh: mvn not found (Maven needed)" >&2; exit 1; }

OUTPOST_KAFKA_LIB="${OUTPOST_KAFKA_LIB:-$(install_server kafka kafka.version)}"
OUTPOST_CASSANDRA_LIB="${OUTPOST_CASSANDRA_LIB:-$(install_server cassandra cassandra.version)}"
export OUTPOST_KAFKA_LIB OUTPOST_CASSANDRA_LIB

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "OUTPOST_KAFKA_LIB=$OUTPOST_KAFKA_LIB"
    echo "OUTPOST_CASSANDRA_LIB=$OUTPOST_CASSANDRA_LIB"
fi
