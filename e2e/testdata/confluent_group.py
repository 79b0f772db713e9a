#!/usr/bin/python3
"""Consumer group check with confluent-kafka (librdkafka).

Creates a topic with the AdminClient, produces records with an idempotent
producer (acks=all), and consumes them with two consumers of one group using
the cooperative-sticky assignor, each in its own thread. Half the records are
produced before the consumers start, the other half once both consumers hold
partitions, so each of them has records to read whatever the timing of the
first join.

Each consumer commits the offsets it has read after every batch, and commits
those of partitions taken away from it in its revoke callback, so no record
should be delivered twice. When every record has been read and committed, the
script asks the group for its committed offsets and prints one JSON object on
standard output:

    {
      "produced": N, "delivery_errors": [...],
      "consumers": [{"name": ..., "records": ..., "assigned": [...],
                     "ever_assigned": [...], "commit_errors": [...],
                     "revoke_commit_errors": [...]}, ...],
      "deliveries": ..., "unique": ..., "duplicates": ..., "bad_records": [...],
      "committed": {"0": ..., ...}, "committed_total": ...,
      "high_watermarks": {"0": ..., ...}, "done": true|false, "error": "..."
    }

It exits 0 when it printed a summary (the caller checks it) and 2 on bad
arguments. Set RDKAFKA_DEBUG to a librdkafka debug list ("broker,protocol,
cgrp") to trace the clients on standard error.
"""

import argparse
import json
import os
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole run")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="librdkafka property for every client (security.protocol, sasl.*, ssl.*)")
    args = ap.parse_args()

    deadline = time.monotonic() + args.timeout
    summary = {"produced": 0, "delivery_errors": [], "consumers": [], "done": False, "error": ""}
    run = Run(args, deadline, summary)
    try:
        run.run()
    except Exception as e:  # report, the caller decides
        summary["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        run.stop_consumers()
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def base_config(args):
    conf = {"bootstrap.servers": args.bootstrap}
    for kv in args.config:
        key, _, value = kv.partition("=")
        conf[key] = value
    debug = os.environ.get("RDKAFKA_DEBUG")
    if debug:
        conf["debug"] = debug
    return conf


class Member:
    """One consumer of the group, polled by its own thread."""

    def __init__(self, run, name):
        self.run = run
        self.name = name
        conf = base_config(run.args)
        conf.update({
            "group.id": run.args.group,
            "client.id": name,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        })
        self.consumer = Consumer(conf)
        self.records = 0
        self.ever_assigned = set()
        self.pending = {}  # partition -> next offset to commit; guarded by run.lock
        self.commit_errors = []
        self.revoke_commit_errors = []
        self.thread = threading.Thread(target=self.loop, name=name)

    def on_assign(self, consumer, partitions):
        with self.run.lock:
            self.ever_assigned.update(tp.partition for tp in partitions)

    def on_revoke(self, consumer, partitions):
        revoked = {tp.partition for tp in partitions}
        with self.run.lock:
            offsets = [TopicPartition(self.run.args.topic, p, o)
                       for p, o in self.pending.items() if p in revoked]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                self.revoke_commit_errors.append(str(e))
        with self.run.lock:
            for p in revoked:
                self.pending.pop(p, None)

    def loop(self):
        topic = self.run.args.topic
        self.consumer.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.run.stop.is_set() and time.monotonic() < self.run.deadline:
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        self.commit_errors.append("consume: %s" % m.error())
                    continue
                self.run.record(self, m)
            with self.run.lock:
                offsets = [TopicPartition(topic, p, o) for p, o in self.pending.items()]
            if not offsets:
                continue
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                # Kept pending: retried after the next batch, or in on_revoke.
                self.commit_errors.append(str(e))
                continue
            with self.run.lock:
                for tp in offsets:
                    if self.pending.get(tp.partition) == tp.offset:
                        del self.pending[tp.partition]

    def report(self):
        assigned = sorted(tp.partition for tp in self.consumer.assignment())
        return {
            "name": self.name,
            "records": self.records,
            "assigned": assigned,
            "ever_assigned": sorted(self.ever_assigned),
            "commit_errors": self.commit_errors,
            "revoke_commit_errors": self.revoke_commit_errors,
        }


class Run:
    def __init__(self, args, deadline, summary):
        self.args = args
        self.deadline = deadline
        self.summary = summary
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.seen = set()  # (partition, offset); guarded by lock
        self.deliveries = 0
        self.bad = []
        self.members = []

    def left(self):
        return max(0.1, self.deadline - time.monotonic())

    def record(self, member, m):
        key = (m.key() or b"").decode()
        value = (m.value() or b"").decode()
        ok = key.startswith("key-") and value == "value-" + key[4:]
        with self.lock:
            member.records += 1
            self.deliveries += 1
            self.seen.add((m.partition(), m.offset()))
            member.pending[m.partition()] = m.offset() + 1
            if not ok and len(self.bad) < 10:
                self.bad.append("p%d@%d %r=%r" % (m.partition(), m.offset(), key, value))

    def run(self):
        args = self.args
        admin = AdminClient(base_config(args))
        futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
                                      operation_timeout=10, request_timeout=self.left())
        futures[args.topic].result(timeout=self.left())

        conf = base_config(args)
        conf.update({"acks": "all", "enable.idempotence": True, "linger.ms": 5})
        producer = Producer(conf)
        half = args.records // 2
        self.produce(producer, 0, half)

        self.members = [Member(self, "consumer-%d" % i) for i in range(2)]
        for m in self.members:
            m.thread.start()
        # Both consumers hold partitions, and together all of them.
        while time.monotonic() < self.deadline:
            assigned = [set(tp.partition for tp in m.consumer.assignment()) for m in self.members]
            if all(assigned) and set().union(*assigned) == set(range(args.partitions)):
                break
            time.sleep(0.05)
        else:
            raise TimeoutError("the consumers never held all partitions between them")
        self.produce(producer, half, args.records)

        # Every record read and its offset committed.
        while time.monotonic() < self.deadline:
            with self.lock:
                finished = len(self.seen) >= args.records and not any(m.pending for m in self.members)
            if finished:
                break
            time.sleep(0.05)
        else:
            raise TimeoutError("read %d of %d records before the deadline" % (len(self.seen), args.records))
        self.summary["done"] = True

    def produce(self, producer, start, end):
        def delivered(err, msg):
            if err is not None:
                self.summary["delivery_errors"].append(str(err))
            else:
                self.summary["produced"] += 1

        for i in range(start, end):
            while True:
                try:
                    producer.produce(self.args.topic, key="key-%d" % i, value="value-%d" % i, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        left = producer.flush(self.left())
        if left:
            raise TimeoutError("%d records not acknowledged before the deadline" % left)

    def stop_consumers(self):
        self.stop.set()
        for m in self.members:
            if m.thread.ident is not None:
                m.thread.join(self.left())
        args = self.args
        if self.members:
            tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
            try:
                committed = self.members[0].consumer.committed(tps, timeout=self.left())
                self.summary["committed"] = {str(tp.partition): tp.offset for tp in committed}
                self.summary["committed_total"] = sum(max(tp.offset, 0) for tp in committed)
                hw = {}
                for tp in tps:
                    _, high = self.members[0].consumer.get_watermark_offsets(tp, timeout=self.left())
                    hw[str(tp.partition)] = high
                self.summary["high_watermarks"] = hw
            except KafkaException as e:
                self.summary["error"] = self.summary["error"] or "committed: %s" % e
        for m in self.members:
            self.summary["consumers"].append(m.report())
        for m in self.members:
            m.consumer.close()
        with self.lock:
            self.summary["deliveries"] = self.deliveries
            self.summary["unique"] = len(self.seen)
            self.summary["duplicates"] = self.deliveries - len(self.seen)
            self.summary["bad_records"] = self.bad


if __name__ == "__main__":
    main()
