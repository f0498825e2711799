#!/usr/bin/env python3
"""Reads every message of a topic with an independent Kafka client (kafka-python) and prints
one JSON object per message: {"partition", "offset", "key", "value", "headers"}.

The end of the topic is the fetch response's high watermark (end_offsets() is not used: the
tansu broker the tests once ran answered ListOffsets "latest" wrongly).

    kafka_read.py BOOTSTRAP TOPIC [--timeout SECONDS]
"""
import argparse
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        api_version_auto_timeout_ms=10000,
        request_timeout_ms=30000,
        fetch_max_wait_ms=200,
    )
    partitions = consumer.partitions_for_topic(args.topic)
    deadline = time.monotonic() + args.timeout
    while not partitions:
        if time.monotonic() > deadline:
            sys.exit(f"topic {args.topic} does not exist")
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(args.topic)
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    done = set()
    while len(done) < len(tps):
        if time.monotonic() > deadline:
            sys.exit(f"timed out; read up to {[consumer.position(tp) for tp in tps]}")
        batches = consumer.poll(timeout_ms=500, max_records=10000)
        for tp, msgs in batches.items():
            for m in msgs:
                print(json.dumps({
                    "partition": m.partition,
                    "offset": m.offset,
                    "timestamp_ms": m.timestamp,
                    "key": m.key.decode() if m.key is not None else None,
                    "value": json.loads(m.value) if m.value is not None else None,
                    "headers": {k: v.decode() for k, v in (m.headers or [])},
                }))
        for tp in tps:
            hw = consumer.highwater(tp)
            if hw is not None and consumer.position(tp) >= hw:
                done.add(tp)
    consumer.close()


if __name__ == "__main__":
    main()
