package uplink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// TestMurmur2MatchesKafka: records land on the partition franz-go's
// Kafka-compatible partitioner picks for the same key.
func TestMurmur2MatchesKafka(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		key := make([]byte, r.IntN(40))
		for j := range key {
			key[j] = byte(r.Uint32())
		}
		n := 1 + r.IntN(64)
		want := p.Partition(&kgo.Record{Key: key}, n)
		if got := partitionFor(key, int32(n)); int(got) != want {
			t.Fatalf("key %x over %d partitions: got %d, want %d", key, n, got, want)
		}
	}
}

func startCore(t *testing.T, dir, addr string) *core.Node {
	t.Helper()
	cfg := core.DefaultConfig()
	cfg.DataDir = dir
	cfg.KafkaAddr = addr
	cfg.HTTPAddr = ""
	cfg.Broker.DefaultPartitions = 4
	n, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.MaxBytes = 64 << 20
	cfg.MaxMessageBytes = 64 << 10
	s, err := spool.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Shrunk timers of testConfig.
const (
	testRetryBackoff = 20 * time.Millisecond
	testParkBackoff  = 20 * time.Millisecond
)

// testConfig is an uplink to addr with its timers shrunk for tests.
func testConfig(stateDir, addr string) Config {
	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.StateDir = stateDir
	cfg.Linger = 5 * time.Millisecond
	cfg.RetryBackoff = testRetryBackoff
	cfg.MaxRetryBackoff = 200 * time.Millisecond
	cfg.ParkBackoff = testParkBackoff
	cfg.MaxParkBackoff = 100 * time.Millisecond
	cfg.RequestTimeout = 5 * time.Second
	cfg.MaxBatchBytes = 16 << 10 // several windows
	return cfg
}

func newUplink(t *testing.T, sp *spool.Spool, stateDir, addr string) *Uplink {
	t.Helper()
	return newUplinkConfig(t, sp, testConfig(stateDir, addr))
}

func newUplinkConfig(t *testing.T, sp *spool.Spool, cfg Config) *Uplink {
	t.Helper()
	u, err := New(cfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// spoolMessages appends n readings per device, with an alarm every tenth.
func spoolMessages(t *testing.T, sp *spool.Spool, devices, n, from int) (tel, alarms int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		for d := 0; d < devices; d++ {
			dev := fmt.Sprintf("c-%04d", d)
			m := spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Key: []byte(dev),
				Value:   []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"speed_kmh":42}`, dev, i)),
				Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/" + dev + "/telemetry")}},
				Time:    time.Now()}
			msgs := []spool.Message{m}
			tel++
			if i%10 == 0 {
				a := m
				a.Lane, a.Topic = spool.Alarm, "alarms"
				a.Value = []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"alarm":"engine-overheat"}`, dev, i))
				msgs = append(msgs, a)
				alarms++
			}
			if err := sp.Append(msgs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tel, alarms
}

// consume reads want records of topic and checks per-key order and no
// duplicates by the "seq" in each value.
func consume(t *testing.T, addr, topic string, want int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: got %d of %d records", topic, got, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var dev string
			var seq int
			fmt.Sscanf(string(r.Value), `{"device":%q,"seq":%d`, &dev, &seq)
			if last, ok := seen[dev]; ok && seq <= last {
				t.Errorf("%s: device %s: seq %d after %d (duplicate or reordered)", topic, dev, seq, last)
			}
			seen[dev] = seq
			if len(r.Headers) == 0 || r.Headers[0].Key != "mqtt.topic" {
				t.Errorf("%s: record without the mqtt.topic header: %v", topic, r.Headers)
			}
			got++
		})
	}
	// Nothing beyond: a short extra poll finds no more records.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if extra := cl.PollFetches(ctx2).NumRecords(); extra > 0 {
		t.Fatalf("%s: %d records beyond the %d sent (duplicates)", topic, extra, want)
	}
}

func waitDrained(t *testing.T, sp *spool.Spool) {
	t.Helper()
	testutil.Eventually(t, "the spool drained", func() bool {
		return sp.Start(spool.Telemetry) >= sp.End(spool.Telemetry) && sp.Start(spool.Alarm) >= sp.End(spool.Alarm)
	})
}

func TestForwardsEverythingOnce(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	tel, alarms := spoolMessages(t, sp, 20, 50, 0)
	u := newUplink(t, sp, dir, node.KafkaAddr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	consume(t, node.KafkaAddr(), "telemetry", tel)
	consume(t, node.KafkaAddr(), "alarms", alarms)
	var sent, raw int64
	for _, s := range u.Stats() {
		sent += s.SentBytes
		raw += s.RawBytes
	}
	if sent*2 > raw {
		t.Fatalf("snappy: sent %d bytes for %d raw, want at least 2x smaller on repetitive JSON", sent, raw)
	}
	st := sp.Stats()
	if st[spool.Telemetry].Delivered != int64(tel) || st[spool.Alarm].Delivered != int64(alarms) {
		t.Fatalf("spool accounting: got %+v", st)
	}
}

// TestCoreDownThenUp: the core is unreachable while messages are
// spooled; once it starts, everything arrives exactly once.
func TestCoreDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	sp := openSpool(t, dir)
	u := newUplink(t, sp, dir, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	tel, alarms := spoolMessages(t, sp, 5, 40, 0)
	time.Sleep(300 * time.Millisecond) // let the uplink fail a few times
	node := startCore(t, t.TempDir(), addr)
	t2, a2 := spoolMessages(t, sp, 5, 40, 40)
	waitDrained(t, sp)
	cancel()
	<-done
	consume(t, node.KafkaAddr(), "telemetry", tel+t2)
	consume(t, node.KafkaAddr(), "alarms", alarms+a2)
}

// TestResendAfterCrash: a window is planned and acknowledged but the edge
// dies before releasing it; the next uplink resends it from the saved plan
// and the core recognises the duplicate. Then the other crash point: the
// window is released but the next plan never saved.
func TestResendAfterCrash(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	tel, _ := spoolMessages(t, sp, 3, 30, 0)
	ctx := context.Background()

	u := newUplink(t, sp, dir, node.KafkaAddr())
	l := u.lanes[spool.Telemetry]
	w, recs := planFirst(t, ctx, l)
	if err := l.send(ctx, w, recs); err != nil {
		t.Fatal(err)
	}
	u.Close() // crash: acknowledged, not released

	u2 := newUplink(t, sp, dir, node.KafkaAddr())
	l2 := u2.lanes[spool.Telemetry]
	// Second crash point: resend, release, and die before the next plan.
	if err := l2.step(ctx); err != nil {
		t.Fatal(err)
	}
	u2.Close()

	u3 := newUplink(t, sp, dir, node.KafkaAddr())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u3.Run(rctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	for _, s := range u3.Stats() {
		if s.NewProducers != 0 && s.Lane == spool.Telemetry {
			t.Fatalf("the restarted uplink needed a new producer id: its saved sequences were wrong")
		}
	}
	consume(t, node.KafkaAddr(), "telemetry", tel)
}

func TestBandwidthCap(t *testing.T) {
	l := newLimiter(1000)
	ctx := context.Background()
	if err := l.wait(ctx, 1000, false); err != nil { // the first second's credit
		t.Fatal(err)
	}
	done, cancelled := context.WithCancel(ctx)
	cancelled()
	if err := l.wait(done, 500, true); err != nil { // alarms take it at once, into debt
		t.Fatalf("an urgent send waited: %v", err)
	}
	// In debt, telemetry waits (1.5 s for 1000 bytes at 1000 B/s).
	ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.wait(ctx2, 1000, false); err == nil {
		t.Fatal("telemetry went through a bucket in debt")
	}
}

// TestLiveFirst: with a backlog past the threshold, fresh records reach
// the core ahead of the rest of the backlog; each stream stays in device
// order, and everything arrives exactly once.
func TestLiveFirst(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	backlog, _ := spoolMessages(t, sp, 4, 300, 0) // 1,200 telemetry records
	cfg := DefaultConfig()
	cfg.Brokers = []string{node.KafkaAddr()}
	cfg.StateDir = dir
	cfg.Linger = 0
	cfg.MaxBatchBytes = 4 << 10 // many small windows
	cfg.LiveFirst = true
	cfg.LiveFirstBacklog = 500
	u, err := New(cfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l := u.lanes[spool.Telemetry]
	ctx := context.Background()
	// First window: enters live-first; the live stream is empty, so it is
	// backlog. Then fresh records arrive.
	if err := l.step(ctx); err != nil {
		t.Fatal(err)
	}
	if l.st.Live == nil {
		t.Fatal("a 1,200-record backlog did not start a live-first drain")
	}
	fresh, _ := spoolMessages(t, sp, 4, 20, 1000)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	if l.st.Live != nil {
		t.Fatal("the live-first drain did not end once the backlog was sent")
	}
	// Read the telemetry topic partition by partition: a fresh record
	// (seq >= 1000) must come before some backlog record.
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()), kgo.ConsumeTopics("telemetry"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	type seen struct{ live, backlog int }
	last := map[string]seen{}
	count, overtaken := 0, false
	for count < backlog+fresh {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("got %d of %d records", count, backlog+fresh)
		}
		fs.EachRecord(func(r *kgo.Record) {
			count++
			var dev string
			var seq int
			fmt.Sscanf(string(r.Value), `{"device":%q,"seq":%d`, &dev, &seq)
			s := last[dev]
			if seq >= 1000 {
				if seq <= s.live {
					t.Errorf("device %s: fresh seq %d after %d", dev, seq, s.live)
				}
				s.live = seq
			} else {
				if s.backlog > 0 && seq <= s.backlog {
					t.Errorf("device %s: backlog seq %d after %d", dev, seq, s.backlog)
				}
				if s.live > 0 {
					overtaken = true
				}
				s.backlog = seq
			}
			last[dev] = s
		})
	}
	if !overtaken {
		t.Fatal("no fresh record reached the core before the end of the backlog")
	}
	xctx, xcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer xcancel()
	if extra := cl.PollFetches(xctx).NumRecords(); extra > 0 {
		t.Fatalf("%d records beyond the %d sent", extra, backlog+fresh)
	}
}

// TestPowerCutBeforeOverlappedSync: an alarm window whose plan is synced
// while it is sent reaches the core, and the edge loses power before the
// sync (the state file is put back as it was), and the topic gains
// partitions meanwhile. The next run plans the window again on the
// partition counts of the durable plan, with the same sequences, and the
// core recognises every batch: each alarm once, no new producer.
func TestPowerCutBeforeOverlappedSync(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	const n = 400
	for i := range n {
		dev := fmt.Sprintf("c-%04d", i%16)
		m := spool.Message{Lane: spool.Alarm, Topic: "alarms", Key: []byte(dev),
			Value:   []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"alarm":"intrusion","zone":"north-gate"}`, dev, i)),
			Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("panels/" + dev + "/alarm")}},
			Time:    time.Now()}
		if err := sp.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	statePath := filepath.Join(dir, "uplink-alarm.state")

	u := newUplink(t, sp, dir, node.KafkaAddr())
	l := u.lanes[spool.Alarm]
	if err := l.step(ctx); err != nil { // new producer, first window synced before it is sent
		t.Fatal(err)
	}
	if err := l.step(ctx); err != nil {
		t.Fatal(err)
	}
	durable, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	w, recs, err := l.plan(ctx)
	if err != nil || w == nil {
		t.Fatalf("plan: %v", err)
	}
	if !l.overlapSync(w) {
		t.Fatalf("window %d-%d after the synced %d-%d: want its sync alongside the send", w.From, w.To, l.synced.From, l.synced.To)
	}
	if err := l.send(ctx, w, recs); err != nil {
		t.Fatal(err)
	}
	u.Close()
	if err := os.WriteFile(statePath, durable, 0o644); err != nil { // the power cut
		t.Fatal(err)
	}

	adm := kadm.NewClient(newClient(t, node.KafkaAddr()))
	if _, err := adm.CreatePartitions(ctx, 8, "alarms"); err != nil {
		t.Fatal(err)
	}

	u2 := newUplink(t, sp, dir, node.KafkaAddr())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u2.Run(rctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	for _, s := range u2.Stats() {
		if s.Lane == spool.Alarm && (s.NewProducers != 0 || s.Retries != 0) {
			t.Fatalf("alarm lane after the power cut: %d new producers, %d retries; want the window recognised as sent", s.NewProducers, s.Retries)
		}
	}
	// Devices changed partitions with the new count, so only the
	// first-run part keeps per-device order; check each alarm is there
	// exactly once.
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()), kgo.ConsumeTopics("alarms"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[int]int{}
	deadline := time.Now().Add(10 * time.Second)
	extra := false
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var dev string
			var seq int
			fmt.Sscanf(string(r.Value), `{"device":%q,"seq":%d`, &dev, &seq)
			seen[seq]++
		})
		cancel()
		if len(seen) == n && !extra {
			// All there: a short while more for anything beyond.
			extra = true
			deadline = time.Now().Add(300 * time.Millisecond)
		}
	}
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("alarm %d: read %d times, want once", i, seen[i])
		}
	}
}

// planFirst starts the lane's producer and plans its first window.
func planFirst(t *testing.T, ctx context.Context, l *lane) (*window, []spool.Record) {
	t.Helper()
	if err := l.initProducer(ctx); err != nil {
		t.Fatal(err)
	}
	w, recs, err := l.plan(ctx)
	if err != nil || w == nil {
		t.Fatalf("plan: %v", err)
	}
	return w, recs
}

func newClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestEvictedInFlightWindow: a telemetry window reaches the core but its
// acknowledgement is lost, and the budget evicts its records before the
// resend. The next window must not reuse its sequences: with the same
// per-partition counts the core would take it for the evicted one and
// drop it as a duplicate.
func TestEvictedInFlightWindow(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	cfg := spool.DefaultConfig()
	cfg.Sync = spool.SyncNever
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 4 * cfg.SegmentBytes
	cfg.MaxMessageBytes = 1 << 10
	sp, err := spool.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	seq := 0
	appendN := func(n int) {
		for range n {
			dev := fmt.Sprintf("c-%04d", seq%4) // every run of 4 holds each device once
			err := sp.Append(spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Key: []byte(dev),
				Value:   []byte(fmt.Sprintf(`{"device":%q,"seq":%06d,"speed_kmh":42}`, dev, seq)),
				Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/" + dev + "/telemetry")}},
				Time:    time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	appendN(400)
	ctx := context.Background()
	u := newUplink(t, sp, dir, node.KafkaAddr())
	l := u.lanes[spool.Telemetry]
	w, recs := planFirst(t, ctx, l)
	if err := l.state.sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.send(ctx, w, recs); err != nil { // stored; the edge never hears back
		t.Fatal(err)
	}
	inCore := len(recs)
	for sp.Start(spool.Telemetry) <= w.To {
		appendN(100)
	}
	spooled := sp.End(spool.Telemetry) - sp.Start(spool.Telemetry)

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	consume(t, node.KafkaAddr(), "telemetry", inCore+int(spooled))
}
