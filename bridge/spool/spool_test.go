package spool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 1 << 20
	cfg.MaxMessageBytes = 16 << 10
	return cfg
}

func msg(lane Lane, topic, dev string, i int, size int) Message {
	v := make([]byte, size)
	copy(v, fmt.Sprintf("%s-%d", dev, i))
	return Message{Lane: lane, Topic: topic, Key: []byte(dev), Value: v,
		Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/" + dev + "/telemetry")}},
		Time:    time.UnixMilli(1_700_000_000_000 + int64(i))}
}

func mustOpen(t *testing.T, dir string, cfg Config) *Spool {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendReadRelease(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testConfig())
	for i := 0; i < 10; i++ {
		if err := s.Append(msg(Telemetry, "telemetry", "c-1", i, 10), msg(Alarm, "alarms", "c-1", i, 5)); err != nil {
			t.Fatal(err)
		}
	}
	recs, next, err := s.Read(Telemetry, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 10 || next != 10 {
		t.Fatalf("got %d records, next %d; want 10, 10", len(recs), next)
	}
	r := recs[3]
	if r.Topic != "telemetry" || string(r.Key) != "c-1" || r.Offset != 3 || len(r.Headers) != 1 || r.Headers[0].Key != "mqtt.topic" {
		t.Fatalf("got %+v, want topic telemetry, key c-1, offset 3 and the mqtt.topic header only", r)
	}
	if !r.Time.Equal(time.UnixMilli(1_700_000_000_003)) {
		t.Fatalf("got time %v, want the receive time", r.Time)
	}
	if err := s.Release(Telemetry, 4); err != nil {
		t.Fatal(err)
	}
	recs, _, _ = s.Read(Telemetry, 0, 1<<20)
	if len(recs) != 6 || recs[0].Offset != 4 {
		t.Fatalf("after release got %d records from %d, want 6 from 4", len(recs), recs[0].Offset)
	}
	st := s.Stats()
	if st[Telemetry].Accepted != 10 || st[Telemetry].Delivered != 4 || st[Telemetry].Spool != 6 || st[Alarm].Spool != 10 {
		t.Fatalf("got stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Undelivered records and the release point survive a restart.
	s = mustOpen(t, dir, testConfig())
	defer s.Close()
	if s.Start(Telemetry) != 4 || s.End(Telemetry) != 10 || s.End(Alarm) != 10 {
		t.Fatalf("after reopen got telemetry [%d, %d), alarms end %d", s.Start(Telemetry), s.End(Telemetry), s.End(Alarm))
	}
}

// TestBudgetEvictsOldestTelemetryNeverAlarms fills the budget: telemetry
// goes oldest first, every alarm stays, and once only alarms are left a
// new message is refused with ErrFull.
func TestBudgetEvictsOldestTelemetryNeverAlarms(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	var alarms int
	for i := 0; i < 600; i++ {
		if err := s.Append(msg(Telemetry, "telemetry", "s-1", i, 4000)); err != nil {
			t.Fatalf("telemetry %d: %v", i, err)
		}
		if i%10 == 0 {
			if err := s.Append(msg(Alarm, "alarms", "s-1", i, 100)); err != nil {
				t.Fatalf("alarm %d: %v", i, err)
			}
			alarms++
		}
	}
	st := s.Stats()
	if st[Telemetry].Evicted == 0 {
		t.Fatal("nothing evicted past the budget")
	}
	if got := st[Telemetry].Bytes + st[Alarm].Bytes; got > testConfig().MaxBytes {
		t.Fatalf("spool holds %d bytes, budget %d", got, testConfig().MaxBytes)
	}
	if st[Alarm].Spool != int64(alarms) || st[Alarm].Evicted != 0 {
		t.Fatalf("got %d alarms spooled (%d evicted), want all %d", st[Alarm].Spool, st[Alarm].Evicted, alarms)
	}
	if st[Telemetry].Accepted != st[Telemetry].Evicted+st[Telemetry].Spool {
		t.Fatalf("accounting: accepted %d != evicted %d + spooled %d", st[Telemetry].Accepted, st[Telemetry].Evicted, st[Telemetry].Spool)
	}
	// The telemetry left is the newest.
	recs, _, _ := s.Read(Telemetry, 0, 1<<20)
	if recs[0].Offset != st[Telemetry].Evicted {
		t.Fatalf("oldest telemetry left is %d, want %d (oldest evicted first)", recs[0].Offset, st[Telemetry].Evicted)
	}
	// Alarms only: fill the budget, then everything is refused.
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		err = s.Append(msg(Alarm, "alarms", "p-1", i, 8000))
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull once alarms fill the budget", err)
	}
	if st := s.Stats(); st[Alarm].Evicted != 0 || st[Telemetry].Spool != 0 {
		t.Fatalf("alarms must never be evicted and telemetry must go first: %+v", st)
	}
	if err := s.Append(msg(Telemetry, "telemetry", "s-1", 1, 8000)); !errors.Is(err, ErrFull) {
		t.Fatalf("telemetry into an alarm-full spool: got %v, want ErrFull", err)
	}
}

func TestMaxAgeExpiresTelemetry(t *testing.T) {
	cfg := testConfig()
	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg.MaxAge = time.Hour
	s := mustOpen(t, t.TempDir(), cfg)
	defer s.Close()
	for i := 0; i < 100; i++ {
		s.Append(msg(Telemetry, "telemetry", "s-1", i, 2000), msg(Alarm, "alarms", "s-1", i, 10))
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	s.expire(now)
	st := s.Stats()
	if st[Telemetry].Expired != 100 || st[Telemetry].Spool != 0 || st[Alarm].Spool != 100 {
		t.Fatalf("got %+v, want all telemetry expired and every alarm kept", st)
	}
}

func TestTooLarge(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	if err := s.Append(msg(Telemetry, "t", "d", 0, 17<<10)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

// TestConcurrentAppendsShareFsyncs: under SyncAlways an Append returns
// only once fsynced, one fsync per Append when appends come one at a time;
// appends from many goroutines at once share fsyncs (the commit log's
// group commit), so there are fewer fsyncs than appends, each counted by
// the lane's commit log.
func TestConcurrentAppendsShareFsyncs(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	syncs := func() int64 { return s.lanes[Telemetry].Stats().Syncs }

	// One at a time: an fsync each.
	before := syncs()
	for i := 0; i < 20; i++ {
		if err := s.Append(msg(Telemetry, "telemetry", "solo", i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncs() - before; got != 20 {
		t.Fatalf("20 appends one after the other: got %d fsyncs, want 20", got)
	}

	const devices, each = 16, 50
	before = syncs()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < each; i++ {
				if err := s.Append(msg(Telemetry, "telemetry", fmt.Sprint(d), i, 100)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if got, want := s.End(Telemetry), int64(20+devices*each); got != want {
		t.Fatalf("got %d records, want %d", got, want)
	}
	if d, want := s.lanes[Telemetry].DurableOffset(), int64(20+devices*each); d != want {
		t.Fatalf("got durable offset %d, want %d under SyncAlways", d, want)
	}
	got := syncs() - before
	if got < 1 || got >= devices*each {
		t.Fatalf("%d concurrent appends: got %d fsyncs, want at least 1 and fewer than the appends", devices*each, got)
	}
	t.Logf("%d concurrent appends shared %d fsyncs", devices*each, got)
}

// Next answers what Read answers as its next offset, from every offset
// (released ones included) and for window sizes that cut batches, with
// batches of one record and of several.
func TestNextMatchesRead(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	for i := range 40 {
		if err := s.Append(msg(Telemetry, "telemetry", "c-1", i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]Message, 10)
	for i := range batch {
		batch[i] = msg(Telemetry, "telemetry", "c-2", i, 300)
	}
	if err := s.Append(batch...); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(Telemetry, 5); err != nil {
		t.Fatal(err)
	}
	for _, maxBytes := range []int{1, 200, 1000, 4000, 1 << 20} {
		for off := int64(0); off <= s.End(Telemetry); off++ {
			_, want, werr := s.Read(Telemetry, off, maxBytes)
			got, gerr := s.Next(Telemetry, off, maxBytes)
			if got != want || (gerr == nil) != (werr == nil) {
				t.Fatalf("offset %d, %d bytes: got %d (%v), want %d (%v)", off, maxBytes, got, gerr, want, werr)
			}
		}
	}
}

// A Reader reads what Read reads, read after read from random offsets and
// for random sizes, with headers of varying count and topics that change:
// reusing its buffers leaves nothing of an earlier read in a later one.
func TestReaderMatchesRead(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		m := msg(Telemetry, fmt.Sprintf("topic-%d", rng.IntN(3)), fmt.Sprintf("c-%d", rng.IntN(9)), i, 1+rng.IntN(400))
		for range rng.IntN(4) {
			m.Headers = append(m.Headers, kmsg.Header{Key: fmt.Sprintf("h-%d", rng.IntN(5)), Value: []byte(fmt.Sprint(i))})
		}
		if err := s.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	r := s.NewReader(Telemetry)
	for round := range 500 {
		off, maxBytes := rng.Int64N(s.End(Telemetry)+1), 1+rng.IntN(8<<10)
		if round%50 == 49 {
			r.Drop()
		}
		got, gotNext, gerr := r.Read(off, maxBytes)
		want, wantNext, werr := s.Read(Telemetry, off, maxBytes)
		if gerr != nil || werr != nil {
			t.Fatalf("round %d: reader: %v, read: %v", round, gerr, werr)
		}
		if gotNext != wantNext || len(got) != len(want) {
			t.Fatalf("round %d, offset %d, %d bytes: got %d records to %d, want %d to %d", round, off, maxBytes, len(got), gotNext, len(want), wantNext)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("round %d, record %d: got %+v, want %+v", round, i, got[i], want[i])
			}
		}
	}
}

// benchSpool is a spool holding 4,000 256-byte telemetry messages of 100
// devices, each passed to with (when not nil) before it is stored.
func benchSpool(b *testing.B, with func(*Message)) *Spool {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 16 << 20
	cfg.MaxBytes = 64 << 20
	s, err := Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	batch := make([]Message, 100)
	for n := 0; n < 40; n++ {
		for i := range batch {
			batch[i] = msg(Telemetry, "telemetry", fmt.Sprintf("c-%04d", i), n*100+i, 256)
			if with != nil {
				with(&batch[i])
			}
		}
		if err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkNext asks where a 512 KiB window of 256-byte telemetry ends,
// as the uplink does before it lingers: with Next, and with Read (the
// baseline, which copies and decodes the window to answer the same).
func BenchmarkNext(b *testing.B) {
	s := benchSpool(b, nil)
	const window = 512 << 10
	_, want, err := s.Read(Telemetry, 0, window)
	if err != nil || want == 0 || want >= s.End(Telemetry) {
		b.Fatalf("got next %d (%v), want a window short of the end %d", want, err, s.End(Telemetry))
	}
	b.Run("next", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if next, err := s.Next(Telemetry, 0, window); err != nil || next != want {
				b.Fatalf("got %d (%v), want %d", next, err, want)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, next, err := s.Read(Telemetry, 0, window); err != nil || next != want {
				b.Fatalf("got %d (%v), want %d", next, err, want)
			}
		}
	})
}

// TestReleaseMovesStartTrimLater: a release moves the lane's start for
// Start, Read and Stats at once, while the log keeps its records on disk
// until the spool trims it (maintenance, the budget, Close).
func TestReleaseMovesStartTrimLater(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testConfig())
	for i := 0; i < 10; i++ {
		if err := s.Append(msg(Alarm, "alarms", "p-1", i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Release(Alarm, 6); err != nil {
		t.Fatal(err)
	}
	if got := s.lanes[Alarm].LogStartOffset(); got != 0 {
		t.Fatalf("the release trimmed the log at once: log start %d, want 0", got)
	}
	if s.Start(Alarm) != 6 {
		t.Fatalf("start %d after releasing up to 6", s.Start(Alarm))
	}
	recs, next, err := s.Read(Alarm, 0, 1<<20)
	if err != nil || len(recs) != 4 || recs[0].Offset != 6 || next != 10 {
		t.Fatalf("read from 0 after the release: %d records from %v, next %d, %v; want 4 from 6, next 10", len(recs), recs, next, err)
	}
	if n, err := s.Next(Alarm, 2, 1<<20); err != nil || n != 10 {
		t.Fatalf("next from 2: %d, %v; want 10", n, err)
	}
	st := s.Stats()[Alarm]
	if st.Delivered != 6 || st.Spool != 4 || st.Accepted != 10 {
		t.Fatalf("stats after the release: %+v", st)
	}
	// A release below the start, or again to it, changes nothing.
	for _, off := range []int64{3, 6} {
		if err := s.Release(Alarm, off); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats()[Alarm]; st.Delivered != 6 || st.Spool != 4 {
		t.Fatalf("stats after releasing again below the start: %+v", st)
	}
	s.trim()
	if got := s.lanes[Alarm].LogStartOffset(); got != 6 {
		t.Fatalf("log start %d after the trim, want 6", got)
	}
	if err := s.Release(Alarm, 8); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close trims: the release point survives a clean restart.
	s = mustOpen(t, dir, testConfig())
	defer s.Close()
	if s.Start(Alarm) != 8 || s.End(Alarm) != 10 {
		t.Fatalf("after reopen the alarm lane is [%d, %d), want [8, 10)", s.Start(Alarm), s.End(Alarm))
	}
}

// TestBudgetTrimsDeliveredBeforeRefusing: delivered alarms not trimmed
// yet do not count against the budget when it is short: admit trims them
// instead of refusing the next alarm with ErrFull (alarms are never
// evicted).
func TestBudgetTrimsDeliveredBeforeRefusing(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	budget := testConfig().MaxBytes
	sent := 0
	for i := 0; sent < 3*int(budget); i++ {
		if err := s.Append(msg(Alarm, "alarms", "p-1", i, 8000)); err != nil {
			t.Fatalf("alarm %d (%d bytes sent in all, budget %d): %v", i, sent, budget, err)
		}
		sent += 8000
		// Delivered at once, as by an uplink with a fast core.
		if err := s.Release(Alarm, s.End(Alarm)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()[Alarm]
	if st.Spool != 0 || st.Delivered != st.Accepted || st.Bytes > budget {
		t.Fatalf("got %+v, want everything delivered and at most %d bytes on disk", st, budget)
	}
}

// BenchmarkAlarmCycle is one alarm through the alarm lane as the edge and
// the uplink drive it: Submit, wait for its done (its PUBACK may go),
// Read it back, Release it. "trim-each" trims the log at every release,
// as Release did before it left that to the maintenance goroutine (the
// baseline, same run); "release" is Release as it is. p50-ns and p99-ns
// are of single cycles.
func BenchmarkAlarmCycle(b *testing.B) {
	for _, sync := range []SyncPolicy{SyncNever, SyncAlways} {
		for _, mode := range []string{"trim-each", "release"} {
			b.Run(sync.String()+"/"+mode, func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Sync = sync
				s, err := Open(b.TempDir(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				done := make(chan error, 1)
				var took []time.Duration
				i := 0
				for b.Loop() {
					t := time.Now()
					if err := s.Submit(msg(Alarm, "alarms", "p-1", i, 200), func(err error) { done <- err }); err != nil {
						b.Fatal(err)
					}
					if err := <-done; err != nil {
						b.Fatal(err)
					}
					recs, next, err := s.Read(Alarm, s.Start(Alarm), 1<<20)
					if err != nil || len(recs) != 1 {
						b.Fatalf("read %d records (%v), want the one alarm", len(recs), err)
					}
					if err := s.Release(Alarm, next); err != nil {
						b.Fatal(err)
					}
					if mode == "trim-each" {
						s.trim()
					}
					took = append(took, time.Since(t))
					i++
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2]), "p50-ns")
				b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns")
			})
		}
	}
}

// BenchmarkRead reads back a 512 KiB window of 256-byte telemetry with the
// headers the edge gives every message (MQTT topic, QoS, client, edge id,
// receive time), as the uplink does once per window: with Read, which
// allocates every window anew, and with a Reader, which reuses its
// buffers. The baseline is the copy of the stored batches alone, which
// both make.
func BenchmarkRead(b *testing.B) {
	s := benchSpool(b, func(m *Message) {
		m.Headers = append(m.Headers,
			kmsg.Header{Key: "mqtt.qos", Value: []byte("1")},
			kmsg.Header{Key: "mqtt.client", Value: m.Key},
			kmsg.Header{Key: "edge.id", Value: []byte("edge-1")},
			kmsg.Header{Key: "edge.received_ms", Value: []byte("1700000000000")})
	})
	const window = 512 << 10
	recs, _, err := s.Read(Telemetry, 0, window)
	if err != nil || len(recs) == 0 {
		b.Fatalf("read %d records: %v", len(recs), err)
	}
	b.Run("copy-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := s.lanes[Telemetry].Read(0, window)
			if err != nil {
				b.Fatal(err)
			}
			_ = append([]byte(nil), v.Data...)
			v.Release()
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, _, err := s.Read(Telemetry, 0, window); err != nil || len(got) != len(recs) {
				b.Fatalf("got %d records (%v), want %d", len(got), err, len(recs))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
	b.Run("reader", func(b *testing.B) {
		r := s.NewReader(Telemetry)
		b.ReportAllocs()
		for b.Loop() {
			if got, _, err := r.Read(0, window); err != nil || len(got) != len(recs) {
				b.Fatalf("got %d records (%v), want %d", len(got), err, len(recs))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
}
