#!/usr/bin/python3
"""Reads a compacted topic with kafka-python (Debian's python3-kafka, 2.0.2).

A KafkaConsumer (no group) is assigned partition 0 of the topic, seeks to
--from, and reads until its position reaches the end offset. The script
prints one JSON object on standard output:

    {"records": [{"offset": N, "key": "...", "value": "..." | null}, ...],
     "end_offset": N, "error": "..."}

Keys and values are decoded as UTF-8; a tombstone's value is null. It exits
0 when it printed the object (the caller checks it) and 2 on bad arguments.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--from", dest="start", type=int, default=0)
    ap.add_argument("--api-version", default="2.4.0")
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    out = {"records": [], "end_offset": -1, "error": ""}
    try:
        c = KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False,
                          api_version=tuple(int(x) for x in a.api_version.split(".")))
        tp = TopicPartition(a.topic, 0)
        c.assign([tp])
        c.seek(tp, a.start)
        end = c.end_offsets([tp])[tp]
        out["end_offset"] = end
        deadline = time.time() + a.timeout
        while c.position(tp) < end and time.time() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                for m in msgs:
                    out["records"].append({
                        "offset": m.offset,
                        "key": m.key.decode() if m.key is not None else None,
                        "value": m.value.decode() if m.value is not None else None,
                    })
        if c.position(tp) < end:
            out["error"] = "position %d below the end offset %d after %ss" % (c.position(tp), end, a.timeout)
        c.close()
    except Exception as e:  # reported to the caller, which fails the test
        out["error"] = repr(e)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
