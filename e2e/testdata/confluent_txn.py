#!/usr/bin/python3
"""Transactions with confluent-kafka (librdkafka).

Creates a topic with the AdminClient, then one transactional producer
(transactional.id, so idempotent and acks=all) runs three transactions on
it: the first, "a", commits; the second, "b", aborts; the third, "c",
commits. Each writes --records keyed records spread over every partition.
The aborted transaction lies between two committed ones, so a consumer that
skips it must read past it to find "c".

Once the producer is done, two consumers read every partition from the
beginning to its end (enable.partition.eof): one with
isolation.level=read_committed, one with read_uncommitted. The script
prints one JSON object on standard output:

    {
      "transactions": {"a": "committed", "b": "aborted", "c": "committed"},
      "delivered": {"a": N, "b": N, "c": N}, "delivery_errors": [...],
      "consumers": {
        "read_committed": {"records": {"a": ..., "b": ..., "c": ...},
                           "unique": ..., "duplicates": ..., "bad": [...],
                           "eof": [partitions]},
        "read_uncommitted": {...}
      },
      "high_watermarks": {"0": ..., ...}, "done": true|false, "error": "..."
    }

It exits 0 when it printed a summary (the caller checks it) and 2 on bad
arguments. Set RDKAFKA_DEBUG to a librdkafka debug list ("eos,protocol")
to trace the clients on standard error.
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TXNS = (("a", "commit"), ("b", "abort"), ("c", "commit"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--transactional-id", required=True)
    ap.add_argument("--records", type=int, default=1000, help="records per transaction")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=25.0, help="seconds for the whole run")
    args = ap.parse_args()

    deadline = time.monotonic() + args.timeout
    summary = {"transactions": {}, "delivered": {}, "delivery_errors": [], "consumers": {},
               "high_watermarks": {}, "done": False, "error": ""}
    try:
        run(args, deadline, summary)
        summary["done"] = True
    except Exception as e:  # report, the caller decides
        summary["error"] = "%s: %s" % (type(e).__name__, e)
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def base_config(args):
    conf = {"bootstrap.servers": args.bootstrap}
    debug = os.environ.get("RDKAFKA_DEBUG")
    if debug:
        conf["debug"] = debug
    return conf


def left(deadline):
    s = deadline - time.monotonic()
    if s <= 0:
        raise TimeoutError("out of time")
    return s


def run(args, deadline, summary):
    admin = AdminClient(base_config(args))
    fs = admin.create_topics([NewTopic(args.topic, args.partitions, 1)], request_timeout=left(deadline))
    fs[args.topic].result(timeout=left(deadline))

    conf = base_config(args)
    conf.update({"transactional.id": args.transactional_id, "linger.ms": 5})
    p = Producer(conf)
    p.init_transactions(left(deadline))

    for name, end in TXNS:
        summary["delivered"][name] = 0

        def on_delivery(err, msg, name=name):
            if err is not None:
                summary["delivery_errors"].append("%s: %s" % (name, err))
            else:
                summary["delivered"][name] += 1

        p.begin_transaction()
        for i in range(args.records):
            key = "%s-%d" % (name, i)
            p.produce(args.topic, key=key, value=value_of(key), partition=i % args.partitions,
                      on_delivery=on_delivery)
            p.poll(0)
        if end == "commit":
            p.commit_transaction(left(deadline))
            summary["transactions"][name] = "committed"
        else:
            # Flush first, so the aborted records are in the log: a
            # read_uncommitted consumer must see them, and a read_committed
            # one must skip them.
            p.flush(left(deadline))
            p.abort_transaction(left(deadline))
            summary["transactions"][name] = "aborted"
    p.flush(left(deadline))

    for level in ("read_committed", "read_uncommitted"):
        summary["consumers"][level] = consume(args, deadline, level, summary)


def value_of(key):
    return "value-of-" + key


def consume(args, deadline, level, summary):
    conf = base_config(args)
    conf.update({"group.id": "confluent-txn-" + level, "isolation.level": level,
                 "enable.auto.commit": False, "enable.partition.eof": True,
                 "auto.offset.reset": "earliest"})
    c = Consumer(conf)
    try:
        tps = [TopicPartition(args.topic, i, 0) for i in range(args.partitions)]
        c.assign(tps)
        seen = {}
        res = {"records": {name: 0 for name, _ in TXNS}, "unique": 0, "duplicates": 0,
               "bad": [], "eof": []}
        eof = set()
        # Everything was written before this consumer started, so the
        # first end of each partition is its end.
        while len(eof) < args.partitions:
            msg = c.poll(min(1.0, left(deadline)))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                    continue
                raise RuntimeError("%s consumer: %s" % (level, msg.error()))
            key = msg.key().decode()
            if msg.value().decode() != value_of(key) or key[0] not in res["records"]:
                res["bad"].append(key)
                continue
            res["records"][key[0]] += 1
            seen[key] = seen.get(key, 0) + 1
        res["unique"] = len(seen)
        res["duplicates"] = sum(n - 1 for n in seen.values())
        res["eof"] = sorted(eof)
        for tp in tps:
            lo, hi = c.get_watermark_offsets(tp, timeout=left(deadline))
            summary["high_watermarks"][str(tp.partition)] = hi
        return res
    finally:
        c.close()


if __name__ == "__main__":
    main()
