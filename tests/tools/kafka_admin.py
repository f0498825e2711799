#!/usr/bin/env python3
"""Makes topics and ACLs on a Kafka broker with an independent admin client (confluent-kafka),
for the permission tests.

    kafka_admin.py BOOTSTRAP topic NAME [NAME...]          create topics (1 partition, RF 1)
    kafka_admin.py BOOTSTRAP allow PRINCIPAL OP TOPIC...   an ALLOW ACL per topic (literal)
"""
import sys

from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)


def main():
    bootstrap, cmd, *rest = sys.argv[1:]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if cmd == "topic":
        futures = admin.create_topics([NewTopic(t, 1, 1) for t in rest], operation_timeout=30)
    elif cmd == "allow":
        principal, op, *topics = rest
        futures = admin.create_acls([
            AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, principal, "*",
                       AclOperation[op.upper()], AclPermissionType.ALLOW)
            for t in topics
        ])
    else:
        sys.exit(f"unknown command {cmd}")
    for f in futures.values():
        f.result(timeout=30)


if __name__ == "__main__":
    main()
