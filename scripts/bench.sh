#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md (release builds), after installing what they need:
# Apache Kafka (scripts/servers.sh), the kafka-python venv and mosquitto (as scripts/test.sh
# does), and a Skyfield venv with its offline data (skyfield-data) for the passes comparison. Not part of CI: the figures depend on
# the machine and on how busy it is (each bench prints the load average at its start and end).
#
#   scripts/bench.sh                 # all: store_wear, store, passes, sync, footprint (~12 min on 2 cores, after the build)
#   scripts/bench.sh passes sync     # some
#
# Stores go to $OUTPOST_BENCH_DIR (default: the system temp dir), which must be on the filesystem
# being measured (not tmpfs). Build output goes to $CARGO_TARGET_DIR (default ~/.cache/outpost/target).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TOOLS="${OUTPOST_TOOLS:-$HOME/.cache/outpost}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(store_wear store passes sync footprint)
wants() { local b; for b in "${benches[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }

if wants sync || wants footprint; then
    missing=()
    [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
    command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    if [ ${#missing[@]} -gt 0 ]; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    . scripts/servers.sh # Apache Kafka's jars from Maven Central, once per version
    if [ -z "${OUTPOST_PYTHON:-}" ] && ! "$TOOLS/venv/bin/python" -c 'import kafka, lz4, zstandard, snappy, confluent_kafka' 2>/dev/null; then
        echo "== installing the Kafka reader (kafka-python)"
        python3 -m venv "$TOOLS/venv"
        "$TOOLS/venv/bin/pip" install -q -r tests/tools/requirements.txt
    fi
fi

if wants passes && [ -z "${OUTPOST_BENCH_PYTHON:-}" ]; then
    if ! "$TOOLS/bench-venv/bin/python" -c 'import skyfield, skyfield_data' 2>/dev/null; then
        echo "== installing Skyfield and its offline data (skyfield-data)"
        python3 -m venv "$TOOLS/bench-venv"
        "$TOOLS/bench-venv/bin/pip" install -q -r benches/requirements.txt
    fi
fi

echo "== building (release)"
cargo bench --locked --no-run "${benches[@]/#/--bench=}"
for b in "${benches[@]}"; do
    echo
    echo "== cargo bench --bench $b"
    cargo bench --locked --bench "$b"
done
