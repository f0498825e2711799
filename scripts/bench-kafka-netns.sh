#!/usr/bin/env bash
# The Kafka drain of BENCHMARKS.md ("Kafka over a real link: TCP_NODELAY") over a veth pair
# with MTU 1500 between two network namespaces this script makes, before and after the
# TCP_NODELAY patch of vendor/rskafka: Apache Kafka runs in namespace outpost-kb (10.200.0.1),
# the bench (outpost, the kafka-python reader) in outpost-kc (10.200.0.2). Every packet stays
# inside the two namespaces; both are deleted at the end. Needs root (ip netns), the release
# build, and what scripts/bench.sh installs.
#
#   scripts/bench-kafka-netns.sh                  # batch_size 200 and 1000, patched then upstream I/O
#   scripts/bench-kafka-netns.sh 200 1000 5000    # other batch sizes
#
# "upstream I/O" is rskafka 0.6.0's own socket behaviour (Nagle on, length and body in two
# writes), restored at run time by RSKAFKA_UPSTREAM_IO=1 (vendor/rskafka/OUTPOST-PATCH.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (ip netns)"; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"
batches=("$@")
[ ${#batches[@]} -gt 0 ] || batches=(200 1000)

KB=outpost-kb KC=outpost-kc
cleanup() { ip netns del "$KB" 2>/dev/null || true; ip netns del "$KC" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$KB"
ip netns add "$KC"
# The veth pair is made inside outpost-kb, its peer moved to outpost-kc: nothing in the host's
# own namespace.
ip -n "$KB" link add vkb type veth peer name vkc netns "$KC"
ip -n "$KB" link set vkb mtu 1500
ip -n "$KC" link set vkc mtu 1500
ip -n "$KB" addr add 10.200.0.1/24 dev vkb
ip -n "$KC" addr add 10.200.0.2/24 dev vkc
for ns in "$KB" "$KC"; do ip -n "$ns" link set lo up; done
ip -n "$KB" link set vkb up
ip -n "$KC" link set vkc up
# Reachable? (bash /dev/tcp needs a listener; the neighbour table answers without one.)
ip -n "$KC" route get 10.200.0.1 >/dev/null

cargo build --release --locked --bin outpost
cargo bench --locked --bench sync --no-run
# The newest sync bench binary (not its .d file).
bench=$(find "$CARGO_TARGET_DIR"/release/deps -maxdepth 1 -name 'sync-*' ! -name '*.d' -printf '%T@ %p\n' \
    | sort -rn | head -1 | cut -d' ' -f2)
export OUTPOST_BENCH_KAFKA_HOST=10.200.0.1 OUTPOST_BENCH_KAFKA_NETNS="$KB"
for mode in patched upstream; do
    echo "== $mode I/O, batch_size ${batches[*]}"
    env=()
    [ "$mode" = upstream ] && env=(RSKAFKA_UPSTREAM_IO=1)
    ip netns exec "$KC" env "${env[@]}" "$bench" --bench kafka "${batches[@]}" | grep -E "^(kafka|    verified|peer|machine)"
done
