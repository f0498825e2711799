#!/usr/bin/env python3
"""Runs one CQL statement unpaged with tracing on (the DataStax Python driver) and prints each
event of its trace, one per line (the activity text, e.g. "Read 8640 live rows and 0 tombstone
cells for query ...").

    cql_trace.py HOST:PORT CQL [--user USER --password PASSWORD] [--ca CA.pem]
"""
import argparse
import ssl

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("node")
    ap.add_argument("cql")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--ca", help="PEM CA to verify the node's TLS certificate with")
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
    result = session.execute(SimpleStatement(args.cql, fetch_size=None), trace=True, timeout=60)
    trace = result.get_query_trace(max_wait_sec=30)
    for event in trace.events:
        print(event.description.replace("\n", " "))
    cluster.shutdown()


if __name__ == "__main__":
    main()
