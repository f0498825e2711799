#!/usr/bin/env bash
# The three-node Cassandra drill (tests/it/cassandra_cluster.rs; BENCHMARKS.md, Fault drills):
# Apache Cassandra 5 on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (Linux routes all of 127.0.0.0/8 to
# lo: no set-up), RF 3, Outpost at local_quorum. One node killed mid-sync: the sync goes on; two
# killed: the sink backs off and reports it, the backlog waits; both back: it catches up, and
# every record is exactly one row at consistency ALL. Three 1 GB JVMs: about 5 GB of RAM, and
# 3-6 minutes on 2 cores. Needs what scripts/test.sh installs (scripts/servers.sh, the venv).
#
#   scripts/cassandra-cluster-drill.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
for a in 127.0.0.2 127.0.0.3; do
    python3 -c "import socket; socket.socket().bind(('$a', 0))" || { echo "loopback address $a is not usable here"; exit 1; }
done
start=$(date +%s)
cargo test --locked --test it cassandra_cluster -- --ignored --nocapture
echo "drill passed in $(( $(date +%s) - start )) s (build included)"
