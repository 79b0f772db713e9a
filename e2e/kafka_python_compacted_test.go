//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kpyCompacted is what testdata/kafka_python_compacted.py prints.
type kpyCompacted struct {
	Records []struct {
		Offset int64   `json:"offset"`
		Key    *string `json:"key"`
		Value  *string `json:"value"`
	} `json:"records"`
	EndOffset int64  `json:"end_offset"`
	Error     string `json:"error"`
}

// TestKafkaPythonCompacted: a compacted topic on a fluxo core process,
// written with franz-go (20 devices, 30 states each, one device deleted
// with a tombstone, delete.retention.ms=0), cleaned by the broker's
// cleaner, then read by kafka-python from the start and from the middle:
// one record per device, its newest state, no record of the deleted
// device, offsets growing across the gaps compaction left; kcat reads the
// same records.
func TestKafkaPythonCompacted(t *testing.T) {
	t.Parallel()
	kpyNeedModule(t)
	core := startCoreArgs(t, buildFluxo(t), "--log-cleaner-backoff", "50ms")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(core.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic = "device-state"
	_, err = kadm.NewClient(cl).CreateTopics(ctx, 1, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("2048"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"delete.retention.ms":       kadm.StringPtr("0"),
	}, topic)
	if err != nil {
		t.Fatal(err)
	}
	newest := map[string]string{}
	produce := func(k string, v []byte) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(k), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 600; i++ {
		k := fmt.Sprintf("car-%d", i%20)
		v := fmt.Sprintf(`{"seq":%d,"speed":%d}`, i, i%130)
		produce(k, []byte(v))
		newest[k] = v
	}
	produce("car-19", nil)
	delete(newest, "car-19")
	// Devices seen once fill the active segment, which is never cleaned,
	// so that every record with duplicates lies in sealed segments.
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("new-%d", i)
		v := fmt.Sprintf(`{"first":%d}`, i)
		produce(k, []byte(v))
		newest[k] = v
	}
	sample := `fluxo_core_log_cleaner_dirty_ratio{partition="0",topic="` + topic + `"}`
	bridgeWaitMetric(t, core.http, sample, 0, 30*time.Second)

	read := func(from int64) kpyCompacted {
		out := run(t, 40*time.Second, nil, python, "testdata/kafka_python_compacted.py",
			"--bootstrap", core.kafka, "--topic", topic, "--from", strconv.FormatInt(from, 10), "--timeout", "30")
		var s kpyCompacted
		if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
			t.Fatalf("kafka_python_compacted.py: cannot parse: %v\n%s", err, out)
		}
		if s.Error != "" {
			t.Fatalf("kafka_python_compacted.py: %s", s.Error)
		}
		return s
	}
	all := read(0)
	got := map[string]string{}
	last := int64(-1)
	for _, r := range all.Records {
		if r.Offset <= last {
			t.Fatalf("offset %d after %d", r.Offset, last)
		}
		last = r.Offset
		if r.Key == nil {
			t.Fatalf("record at %d without a key", r.Offset)
		}
		if r.Value == nil {
			t.Fatalf("tombstone of %s at %d still there, past delete.retention.ms=0", *r.Key, r.Offset)
		}
		if _, dup := got[*r.Key]; dup {
			t.Fatalf("key %s read twice after cleaning", *r.Key)
		}
		got[*r.Key] = *r.Value
	}
	if len(got) != len(newest) {
		t.Fatalf("got %d keys, want %d", len(got), len(newest))
	}
	for k, v := range newest {
		if got[k] != v {
			t.Fatalf("key %s: got %q, want its newest %q", k, got[k], v)
		}
	}
	if int(all.EndOffset) != 661 || int64(len(all.Records)) >= all.EndOffset {
		t.Fatalf("got %d records below end offset %d, want fewer than 661 below 661", len(all.Records), all.EndOffset)
	}
	// kcat (librdkafka) reads the same: the README's command.
	kc := run(t, 30*time.Second, nil, kcatBin, "-C", "-b", core.kafka, "-t", topic, "-K:", "-e", "-q", "-f", "%o %k:%s\n")
	lines := strings.Split(strings.TrimSpace(string(kc)), "\n")
	if len(lines) != len(all.Records) {
		t.Fatalf("kcat: got %d records, want %d as kafka-python read", len(lines), len(all.Records))
	}
	for i, l := range lines {
		r := all.Records[i]
		if want := fmt.Sprintf("%d %s:%s", r.Offset, *r.Key, *r.Value); l != want {
			t.Fatalf("kcat record %d: got %q, want %q", i, l, want)
		}
	}

	// From the middle: exactly the records at or after the position.
	mid := all.Records[len(all.Records)/3].Offset - 1
	part := read(mid)
	var want []int64
	for _, r := range all.Records {
		if r.Offset >= mid {
			want = append(want, r.Offset)
		}
	}
	var gotOffs []int64
	for _, r := range part.Records {
		gotOffs = append(gotOffs, r.Offset)
	}
	if fmt.Sprint(gotOffs) != fmt.Sprint(want) {
		t.Fatalf("from offset %d: got offsets %v, want %v", mid, gotOffs, want)
	}
}
