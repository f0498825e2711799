#!/usr/bin/env python3
"""The peer of benches/sync.rs: kafka-python producing the same messages to the same broker.

    kafka_produce.py BOOTSTRAP MESSAGES_JSONL

Each line of MESSAGES_JSONL is {"topic", "key", "value", "headers"} (value: the message JSON).
Topics are created first (one partition, like Outpost's); then every message is sent with
acks=all (as rskafka does) and the producer is flushed. The time from the first send to the end of
the flush, the CPU time the producer used in it (all its threads), the message count and the number
of failed sends are printed as JSON.
"""
import json
import sys
import time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError


def main():
    bootstrap, path = sys.argv[1], sys.argv[2]
    msgs = []
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            headers = [(k, v.encode()) for k, v in m["headers"].items()]
            msgs.append((m["topic"], m["key"].encode(), json.dumps(m["value"]).encode(), headers))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    for topic in sorted({m[0] for m in msgs}):
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        except TopicAlreadyExistsError:
            pass
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        # Batches comparable to Outpost's produce requests (up to batch_size records each).
        batch_size=1024 * 1024,
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
        buffer_memory=256 * 1024 * 1024,
    )
    # Connect and fetch metadata before the clock starts (Outpost's figure includes its connect).
    for topic in sorted({m[0] for m in msgs}):
        producer.partitions_for(topic)
    failed = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    futures = [producer.send(t, key=k, value=v, headers=h) for t, k, v, h in msgs]
    producer.flush()
    secs = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for f in futures:
        if f.failed():
            failed += 1
    producer.close()
    print(json.dumps({"messages": len(msgs), "seconds": secs, "cpu_s": cpu, "failed": failed}))


if __name__ == "__main__":
    main()
