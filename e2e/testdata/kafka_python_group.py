#!/usr/bin/python3
"""Consumer group check with kafka-python (Debian's python3-kafka, 2.0.2).

Creates a topic with the KafkaAdminClient, produces keyed records with
headers with a KafkaProducer (acks='all') and waits for every future, and
consumes them with two KafkaConsumers of one group (range assignor), each in
its own thread. Half the records are produced before the consumers start,
the other half once both consumers hold partitions, so each of them has
records to read whatever the timing of the first join.

Each consumer commits synchronously what it has read after every poll, and
commits the offsets of partitions taken away from it in its rebalance
listener, so no record should be delivered twice. When every record has been
read and committed, a third consumer of the group (not subscribed, so it does
not join) reads the committed offsets with consumer.committed and the end
offsets with consumer.end_offsets. The script prints one JSON object on
standard output:

    {
      "admin_attempts": N, "admin_errors": [...], "admin_started": true|false,
      "produced": N, "delivery_errors": [...],
      "consumers": [{"name": ..., "records": ..., "assigned": [...],
                     "ever_assigned": [...], "commit_errors": [...],
                     "revoke_commit_errors": [...]}, ...],
      "deliveries": ..., "unique": ..., "duplicates": ...,
      "with_headers": ..., "bad_records": [...],
      "committed": {"0": ..., ...}, "committed_total": ...,
      "end_offsets": {"0": ..., ...}, "client_log": [...],
      "done": true|false, "error": "..."
    }

admin_attempts counts the KafkaAdminClients built until one started (a
failed start is retried for a third of the time given, and its error kept in
admin_errors). client_log holds the first distinct warnings and errors that
kafka-python logged. The script exits 0 when it printed a summary (the caller
checks it) and 2 on bad arguments. Set KAFKA_PYTHON_DEBUG=1 to have
kafka-python log everything (logging.DEBUG) on standard error.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

SOURCE = b"kafka-python"


def headers_for(i):
    """The headers of record i: text, binary with a zero byte, and empty."""
    return [("seq", b"%d" % i), ("source", SOURCE), ("bin", bytes([i & 0xFF, 0x00, 0xFF])), ("empty", b"")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--api-version", default="2.4.0",
                    help="broker version the clients assume, as 2.4.0; 'auto' lets them probe it")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole run")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="keyword argument for every client (security_protocol, sasl_*, ssl_*)")
    args = ap.parse_args()
    if args.api_version == "auto":
        args.api_version = None
    else:
        args.api_version = tuple(int(x) for x in args.api_version.split("."))

    if os.environ.get("KAFKA_PYTHON_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    else:
        logging.getLogger().setLevel(logging.WARNING)
    log = LogCollector()
    logging.getLogger().addHandler(log)

    deadline = time.monotonic() + args.timeout
    summary = {"admin_attempts": 0, "admin_errors": [], "admin_started": False, "produced": 0, "delivery_errors": [],
               "consumers": [], "done": False, "error": ""}
    run = Run(args, deadline, summary)
    try:
        run.run()
    except Exception as e:  # report, the caller decides
        summary["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        run.finish()
    summary["client_log"] = log.lines
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


class LogCollector(logging.Handler):
    """Keeps the first distinct warnings and errors that kafka-python logs."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines = []
        self.lock_ = threading.Lock()

    def emit(self, record):
        line = "%s %s: %s" % (record.levelname, record.name, record.getMessage())
        with self.lock_:
            if line not in self.lines and len(self.lines) < 20:
                self.lines.append(line)


def client_config(args, name):
    # kafka-python 2.0.2 probes the broker's version unless api_version is
    # set: on a new connection it sends a request (ApiVersions v0 first)
    # and, 0.1 s later, a Metadata v0 request as a sentinel, and takes the
    # probe request as unknown if the connection is closed by the time it
    # reads the answer, which it then drops (conn.py,
    # BrokerConnection.check_version and _recv). A broker that does not serve
    # Metadata v0 closes the connection on the sentinel, and the client then
    # often misreads the broker as 0.8 or 0.9 and refuses to work with it.
    # KafkaProducer and KafkaConsumer skip the probe when api_version is
    # set. 2.4.0 is what 2.0.2 infers from fluxo's ApiVersions answer when
    # the probe gets through (not 2.5.0: no DescribeAcls), and any later
    # version would make the clients send the same requests: Produce v7,
    # Fetch v4, ListOffsets v1, Metadata v1, FindCoordinator v0, JoinGroup
    # v2, SyncGroup v1, OffsetCommit v2, OffsetFetch v1, LeaveGroup v1.
    # KafkaAdminClient probes whatever api_version says (when it starts, and
    # again for the controller), so it needs a broker that serves Metadata v0,
    # as Kafka does.
    conf = {"bootstrap_servers": args.bootstrap, "client_id": name, "request_timeout_ms": 15000}
    if args.api_version is not None:
        conf["api_version"] = args.api_version
    for kv in args.config:
        key, _, value = kv.partition("=")
        conf[key] = value
    return conf


class Listener(ConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        self.member.on_revoke(revoked)

    def on_partitions_assigned(self, assigned):
        self.member.on_assign(assigned)


class Member:
    """One consumer of the group, polled by its own thread."""

    def __init__(self, run, name):
        self.run = run
        self.name = name
        conf = client_config(run.args, name)
        conf.update({
            "group_id": run.args.group,
            "partition_assignment_strategy": [RangePartitionAssignor],
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "fetch_max_wait_ms": 100,
            "max_poll_records": 500,
        })
        self.consumer = KafkaConsumer(**conf)
        self.records = 0
        self.assigned = []  # guarded by run.lock
        self.ever_assigned = set()
        self.pending = {}  # partition -> next offset to commit; guarded by run.lock
        self.commit_errors = []
        self.revoke_commit_errors = []
        self.thread = threading.Thread(target=self.loop, name=name)

    def on_assign(self, partitions):
        with self.run.lock:
            self.assigned = sorted(tp.partition for tp in partitions)
            self.ever_assigned.update(self.assigned)

    def on_revoke(self, partitions):
        revoked = {tp.partition for tp in partitions}
        try:
            self.commit(revoked)
        except KafkaError as e:
            self.revoke_commit_errors.append("%s: %s" % (type(e).__name__, e))
        with self.run.lock:
            self.assigned = []
            for p in revoked:
                self.pending.pop(p, None)

    def commit(self, partitions=None):
        """Commits the pending offsets (of the given partitions) synchronously."""
        topic = self.run.args.topic
        with self.run.lock:
            offsets = {TopicPartition(topic, p): OffsetAndMetadata(o, "")
                       for p, o in self.pending.items() if partitions is None or p in partitions}
        if not offsets:
            return
        self.consumer.commit(offsets)
        with self.run.lock:
            for tp, om in offsets.items():
                if self.pending.get(tp.partition) == om.offset:
                    del self.pending[tp.partition]

    def loop(self):
        try:
            self.consumer.subscribe([self.run.args.topic], listener=Listener(self))
            while not self.run.stop.is_set() and time.monotonic() < self.run.deadline:
                batches = self.consumer.poll(timeout_ms=200)
                for records in batches.values():
                    for r in records:
                        self.run.record(self, r)
                try:
                    self.commit()
                except KafkaError as e:
                    # Kept pending: retried after the next poll, or in on_revoke.
                    self.commit_errors.append("%s: %s" % (type(e).__name__, e))
        except Exception as e:
            self.run.fail("%s: %s: %s" % (self.name, type(e).__name__, e))

    def close(self):
        try:
            self.consumer.close(autocommit=False)
        except Exception as e:
            self.run.fail("%s: close: %s: %s" % (self.name, type(e).__name__, e))

    def report(self):
        with self.run.lock:
            assigned = list(self.assigned)
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
        # Leaves time for the rest when the admin client's start is retried.
        self.admin_deadline = time.monotonic() + (deadline - time.monotonic()) / 3
        self.summary = summary
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.seen = set()  # (partition, offset); guarded by lock
        self.deliveries = 0
        self.with_headers = 0
        self.bad = []
        self.members = []
        self.reports = []

    def left(self):
        return max(0.1, self.deadline - time.monotonic())

    def fail(self, msg):
        with self.lock:
            if not self.summary["error"]:
                self.summary["error"] = msg

    def record(self, member, r):
        key = (r.key or b"").decode()
        value = (r.value or b"").decode()
        problem = ""
        if not key.startswith("key-") or value != "value-" + key[4:]:
            problem = "value does not match the key"
        elif list(r.headers or []) != headers_for(int(key[4:])):
            problem = "headers %r" % (r.headers,)
        with self.lock:
            member.records += 1
            self.deliveries += 1
            self.seen.add((r.partition, r.offset))
            member.pending[r.partition] = r.offset + 1
            if problem:
                if len(self.bad) < 10:
                    self.bad.append("p%d@%d %r=%r: %s" % (r.partition, r.offset, key, value, problem))
            else:
                self.with_headers += 1

    def run(self):
        args = self.args
        self.create_topic()

        conf = client_config(args, "producer")
        conf.update({"acks": "all", "linger_ms": 5})
        producer = KafkaProducer(**conf)
        try:
            half = args.records // 2
            self.produce(producer, 0, half)

            self.members = [Member(self, "consumer-%d" % i) for i in range(2)]
            for m in self.members:
                m.thread.start()
            # Both consumers hold partitions, and together all of them.
            while time.monotonic() < self.deadline:
                with self.lock:
                    assigned = [set(m.assigned) for m in self.members]
                if all(assigned) and set().union(*assigned) == set(range(args.partitions)):
                    break
                if self.summary["error"]:
                    return
                time.sleep(0.05)
            else:
                raise TimeoutError("the consumers never held all partitions between them: %r" % assigned)
            self.produce(producer, half, args.records)
        finally:
            producer.close(timeout=self.left())

        # Every record read and its offset committed.
        while time.monotonic() < self.deadline:
            with self.lock:
                finished = len(self.seen) >= args.records and not any(m.pending for m in self.members)
            if finished or self.summary["error"]:
                break
            time.sleep(0.05)
        else:
            raise TimeoutError("read %d of %d records before the deadline" % (len(self.seen), args.records))
        self.summary["done"] = not self.summary["error"]

    def create_topic(self):
        args = self.args
        while True:
            self.summary["admin_attempts"] += 1
            try:
                admin = KafkaAdminClient(**client_config(args, "admin"))
                self.summary["admin_started"] = True
                break
            except KafkaError as e:
                self.summary["admin_errors"].append("%s: %s" % (type(e).__name__, e))
                if time.monotonic() > self.admin_deadline or len(self.summary["admin_errors"]) >= 25:
                    raise
        try:
            admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
                                timeout_ms=10000)
        finally:
            admin.close()

    def produce(self, producer, start, end):
        futures = [producer.send(self.args.topic, key=b"key-%d" % i, value=b"value-%d" % i, headers=headers_for(i))
                   for i in range(start, end)]
        producer.flush(timeout=self.left())
        for f in futures:
            try:
                f.get(timeout=self.left())
                self.summary["produced"] += 1
            except KafkaError as e:
                if len(self.summary["delivery_errors"]) < 10:
                    self.summary["delivery_errors"].append("%s: %s" % (type(e).__name__, e))

    def finish(self):
        self.stop.set()
        for m in self.members:
            if m.thread.ident is not None:
                m.thread.join(self.left())
        # The reports before close, which gives the partitions up.
        reports = [m.report() for m in self.members]
        for m in self.members:
            m.close()
        self.summary["consumers"] = reports
        if self.members:
            self.read_offsets()
        with self.lock:
            self.summary["deliveries"] = self.deliveries
            self.summary["unique"] = len(self.seen)
            self.summary["duplicates"] = self.deliveries - len(self.seen)
            self.summary["with_headers"] = self.with_headers
            self.summary["bad_records"] = self.bad

    def read_offsets(self):
        """The group's committed offsets and the end offsets, as a consumer
        of the group that does not join it reads them."""
        args = self.args
        conf = client_config(args, "checker")
        conf.update({"group_id": args.group, "enable_auto_commit": False})
        try:
            checker = KafkaConsumer(**conf)
        except KafkaError as e:
            self.fail("checker: %s: %s" % (type(e).__name__, e))
            return
        try:
            tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
            committed = {str(tp.partition): checker.committed(tp) for tp in tps}
            self.summary["committed"] = committed
            self.summary["committed_total"] = sum(o for o in committed.values() if o is not None)
            ends = checker.end_offsets(tps)
            self.summary["end_offsets"] = {str(tp.partition): o for tp, o in ends.items()}
        except KafkaError as e:
            self.fail("committed offsets: %s: %s" % (type(e).__name__, e))
        finally:
            checker.close(autocommit=False)


if __name__ == "__main__":
    main()
