#!/usr/bin/env python3
"""Runs one CQL statement with an independent client (the DataStax Python driver) and prints
each row it returns as one JSON object (column name: value; values JSON cannot hold are shown
as strings).

    cql_read.py HOST:PORT CQL [--user USER --password PASSWORD] [--ca CA.pem] [--trace]

With --trace the statement runs unpaged with tracing on, and each event of its trace is printed
instead, one per line (the activity text, e.g. "Read 8640 live rows and 0 tombstone cells ...").
"""
import argparse
import json
import ssl

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement, dict_factory


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("node")
    ap.add_argument("cql")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--ca", help="PEM CA to verify the node's TLS certificate with")
    ap.add_argument("--trace", action="store_true", help="print the statement's trace events")
    args = ap.parse_args()
    host, port = args.node.rsplit(":", 1)
    auth = PlainTextAuthProvider(args.user, args.password) if args.user else None
    ssl_context = None
    if args.ca:
        ssl_context = ssl.create_default_context(cafile=args.ca)
        ssl_context.check_hostname = False
    cluster = Cluster(
        [host],
        port=int(port),
        auth_provider=auth,
        ssl_context=ssl_context,
        load_balancing_policy=WhiteListRoundRobinPolicy([host]),
        protocol_version=5,
    )
    session = cluster.connect()
    if args.trace:
        result = session.execute(SimpleStatement(args.cql, fetch_size=None), trace=True, timeout=60)
        for event in result.get_query_trace(max_wait_sec=30).events:
            print(event.description.replace("\n", " "))
    else:
        session.row_factory = dict_factory
        for row in session.execute(args.cql, timeout=60):
            print(json.dumps(row, default=str))
    cluster.shutdown()


if __name__ == "__main__":
    main()
