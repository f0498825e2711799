#!/usr/bin/env python3
"""The peer of benches/sync.rs: confluent-kafka (librdkafka) producing the same messages to the
same broker.

    kafka_produce.py BOOTSTRAP MESSAGES_JSONL

Each line of MESSAGES_JSONL is {"topic", "key", "value", "headers"} (value: the message JSON).
Topics are created first (one partition, like Outpost's); then every message is produced with
acks=all (as Outpost's producer asks) and the producer is flushed. The time from the first produce
to the end of the flush, the CPU time the process used in it (all its threads, librdkafka's
included), the message count and the number of failed deliveries are printed as JSON.
"""
import json
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, path = sys.argv[1], sys.argv[2]
    msgs = []
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            headers = [(k, v.encode()) for k, v in m["headers"].items()]
            msgs.append((m["topic"], m["key"].encode(), json.dumps(m["value"]).encode(), headers))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = sorted({m[0] for m in msgs})
    for topic, future in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).items():
        try:
            future.result()
        except KafkaException as e:
            if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS
                raise
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            # Batches comparable to Outpost's produce requests (up to ~1 MB each).
            "batch.size": 1024 * 1024,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
            "enable.idempotence": False,
        }
    )
    # Connect and fetch metadata before the clock starts (Outpost's figure includes its connect).
    for topic in topics:
        producer.list_topics(topic, timeout=10)
    failed = 0

    def delivered(err, _msg):
        nonlocal failed
        if err is not None:
            failed += 1

    start = time.perf_counter()
    cpu0 = time.process_time()
    for t, k, v, h in msgs:
        while True:
            try:
                producer.produce(t, key=k, value=v, headers=h, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    secs = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print(json.dumps({"messages": len(msgs), "seconds": secs, "cpu_s": cpu, "failed": failed}))


if __name__ == "__main__":
    main()
