#!/usr/bin/env bash
# Installs what Outpost's tests need and runs every check: formatting, lints, unit and
# integration tests. The integration tests start real `outpost` processes, a fixture server
# replaying recorded upstream answers, Apache Kafka 4 (KRaft) and Apache Cassandra 5.0 (jars from
# Maven Central, run with Java 17; scripts/servers.sh), mosquitto, gpsd (fed by gpsfake) and an
# aiosmtpd SMTP server with STARTTLS and AUTH, all on loopback ports the OS picks, and read results
# back with independent clients (kafka-python, the DataStax Python driver, mosquitto_sub).
# The map pages are checked in Debian's headless chromium, driven by playwright-core (npm).
#
#   scripts/test.sh
#
# Build output goes to $CARGO_TARGET_DIR (default: ~/.cache/outpost/target, outside the clone,
# so repeated runs are incremental).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2
    exit 1
fi

# Real servers the tests start on loopback, and independent Kafka and Cassandra clients. Installed
# once per machine under $OUTPOST_TOOLS (default ~/.cache/outpost); later runs reuse them.
TOOLS="${OUTPOST_TOOLS:-$HOME/.cache/outpost}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v gpsd >/dev/null || [ -x /usr/sbin/gpsd ] || missing+=(gpsd)
command -v gpsfake >/dev/null || missing+=(gpsd-clients)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
# The fault drills: libfaketime runs the binary with a wrong clock (tests/it/drills_clock.rs);
# mkfs.ext4 makes the small disk that fills up (tests/it/drills_disk.rs).
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || missing+=(faketime)
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
# Apache Kafka and Cassandra run on Java 17, installed from Maven Central by Maven.
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Apache Kafka and Apache Cassandra (jars copied from Maven Central once per version); exports
# OUTPOST_KAFKA_LIB and OUTPOST_CASSANDRA_LIB for the tests.
. scripts/servers.sh

if [ -z "${OUTPOST_PYTHON:-}" ]; then
    if ! "$TOOLS/venv/bin/python" -c 'import kafka, lz4, zstandard, snappy, cassandra, confluent_kafka, pandas' 2>/dev/null ||
        ! "$TOOLS/venv/bin/cqlsh" --version >/dev/null 2>&1; then
        echo "== installing the Kafka and Cassandra clients (kafka-python, cassandra-driver, cqlsh) and pandas"
        python3 -m venv "$TOOLS/venv"
        "$TOOLS/venv/bin/pip" install -q -r tests/tools/requirements.txt
    fi
    export OUTPOST_PYTHON="$TOOLS/venv/bin/python"
fi

# playwright-core drives Debian's chromium in the browser test (tests/it/browser.rs); it never
# downloads a browser of its own.
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "== installing playwright-core (npm)"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

# promtool lints /metrics (tests/it/metrics.rs). Debian's prometheus package is unpacked, never
# installed (it would start a service); without it the test prints its skip line.
if [ -z "${OUTPOST_PROMTOOL:-}" ]; then
    if [ ! -x "$TOOLS/promtool/promtool" ]; then
        echo "== fetching promtool (Debian's prometheus package, unpacked into $TOOLS/promtool)"
        deb_dir=$(mktemp -d)
        if (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null) &&
            dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/root"; then
            mkdir -p "$TOOLS/promtool"
            cp "$deb_dir/root/usr/bin/promtool" "$TOOLS/promtool/promtool"
        else
            echo "   (could not fetch Debian's prometheus package; the promtool test will skip)"
        fi
        rm -rf "$deb_dir"
    fi
    export OUTPOST_PROMTOOL="$TOOLS/promtool/promtool"
fi

echo "== rustfmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --show-output prints what passing tests printed: a test that cannot run here prints
# "SKIPPED <test name>: <why>" and returns (it passes to libtest), so only that line tells.
cargo test --workspace --locked -- --show-output 2>&1 | tee "$log" || status=$?
scripts/pi-check.sh 2>&1 | tee -a "$log" || status=$? # the Raspberry Pi build and deploy/ (README: Tests)
# One closing line for the whole run, from cargo's per-test lines: a test skipped at run time
# counts as skipped, not passed, and so does an #[ignore]d one unless another run (pi-check's
# --include-ignored) ran it, or it is the child process of another test. Skipped tests are named.
awk '/^test .* \.\.\. ok$/ { n = $0; sub(/^test /, "", n); sub(/ \.\.\. ok$/, "", n); ok[n]++; p++ }
     /^test .* \.\.\. FAILED$/ { f++ }
     /^test .* \.\.\. ignored/ && !/ignored, run as a child process/ { n = $0; sub(/^test /, "", n); sub(/ \.\.\. ignored.*$/, "", n); ignored[n] = 1 }
     /^SKIPPED [^ ]+: / { n = $0; sub(/^SKIPPED /, "", n); sub(/: .*$/, "", n); skipped[n] = 1 }
     END {
         for (n in ignored) if (!(n in ok) && !(n in skipped)) { s++; names = names sep n; sep = ", " }
         for (n in skipped) { s++; if (n in ok) p--; names = names sep n; sep = ", " }
         printf "tests: %d passed, %d failed, %d skipped%s\n", p, f, s, (s ? " (" names ")" : "")
     }' "$log"
exit "$status"
