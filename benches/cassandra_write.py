#!/usr/bin/env python3
"""The peer of benches/sync.rs's Cassandra drain: the DataStax Python driver writing the same rows
to the same node.

    cassandra_write.py HOST:PORT ROWS_JSONL [--concurrency 64]

The first line of ROWS_JSONL is {"schema": [CQL...], "inserts": {table: CQL}, "types": {table:
[CQL type...]}} (cql-export's keyspace, tables and prepared INSERTs, for another keyspace); each
further line is {"t": table, "v": [value...]}, one row in log order (null: not written, bound as
UNSET_VALUE as Outpost binds it; timestamps as Unix ms; dates as ISO text). The schema is created
and the INSERTs prepared (at LOCAL_QUORUM, as Outpost's default) before the clock starts; then
every row is written with `execute_concurrent_with_args`, one call per table (positions, TLEs,
warnings), at the given concurrency (Outpost's sink keeps 64 INSERTs in flight). Printed as JSON:
the row count, the seconds from the first write to the last acknowledgement, the CPU time of the
process in that time, the failures, the driver version and the concurrency.
"""
import argparse
import datetime
import json
import time

import cassandra
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import UNSET_VALUE


def convert(value, cql_type):
    if value is None:
        return UNSET_VALUE
    if cql_type == "date":
        return datetime.date.fromisoformat(value)
    if cql_type == "double":
        return float(value)
    return value  # text, int, bigint, timestamp (ms), frozen<list<text>>


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("node")
    ap.add_argument("rows")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    host, port = args.node.rsplit(":", 1)
    with open(args.rows) as f:
        header = json.loads(f.readline())
        by_table = {}
        for line in f:
            r = json.loads(line)
            types = header["types"][r["t"]]
            by_table.setdefault(r["t"], []).append(tuple(convert(v, t) for v, t in zip(r["v"], types)))
    cluster = Cluster(
        [host], port=int(port), protocol_version=5, load_balancing_policy=WhiteListRoundRobinPolicy([host])
    )
    session = cluster.connect()
    for cql in header["schema"]:
        session.execute(cql, timeout=60)
    prepared = {}
    for table, cql in header["inserts"].items():
        p = session.prepare(cql)
        p.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        prepared[table] = p
    # The biggest table first; the order within a table is the log's.
    order = sorted(by_table, key=lambda t: -len(by_table[t]))
    start = time.perf_counter()
    cpu0 = time.process_time()
    failed = 0
    rows = 0
    for table in order:
        results = execute_concurrent_with_args(
            session, prepared[table], by_table[table], concurrency=args.concurrency, raise_on_first_error=False
        )
        for ok, _ in results:
            rows += 1
            failed += 0 if ok else 1
    secs = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    cluster.shutdown()
    out = {
        "rows": rows,
        "seconds": secs,
        "cpu_s": cpu,
        "failed": failed,
        "driver": cassandra.__version__,
        "concurrency": args.concurrency,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
