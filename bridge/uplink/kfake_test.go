package uplink

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// startKfake runs franz-go's fake Kafka cluster in process: three brokers
// advertising the newest versions (Produce v13, topics by id), and
// records the highest Produce version it was sent.
func startKfake(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, *atomic.Int32) {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var produceVersion atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		v := int32(req.GetVersion())
		for {
			cur := produceVersion.Load()
			if v <= cur || produceVersion.CompareAndSwap(cur, v) {
				break
			}
		}
		return nil, nil, false
	})
	return c, &produceVersion
}

// TestKfakeNewestVersions: against a cluster that speaks Produce v13,
// everything spooled arrives, once.
func TestKfakeNewestVersions(t *testing.T) {
	c, produceVersion := startKfake(t, kfake.SeedTopics(4, "telemetry", "alarms"))
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	sp := openSpool(t, dir)
	tel, alarms := spoolMessages(t, sp, 10, 30, 0)
	u := newUplink(t, sp, dir, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	if got := produceVersion.Load(); got < 13 {
		t.Errorf("produce version: got %d, want 13 (kfake advertises it)", got)
	}
	consume(t, addr, "telemetry", tel)
	consume(t, addr, "alarms", alarms)
}

// TestKfakeTopicRecreated: the topic is deleted and created again under a
// new id while the uplink has the old one cached; it learns the new id
// and forwards what comes next, once.
func TestKfakeTopicRecreated(t *testing.T) {
	c, _ := startKfake(t, kfake.SeedTopics(4, "telemetry", "alarms"))
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	sp := openSpool(t, dir)
	spoolMessages(t, sp, 5, 10, 0)
	u := newUplink(t, sp, dir, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitDrained(t, sp)

	if err := c.DeleteTopic("telemetry"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic("telemetry", 4, nil); err != nil {
		t.Fatal(err)
	}
	tel, _ := spoolMessages(t, sp, 5, 10, 10)
	waitDrained(t, sp)
	consume(t, addr, "telemetry", tel)
}

// waitParked waits until the lane's parked state is want, and returns
// its stats.
func waitParked(t *testing.T, u *Uplink, id spool.Lane, want bool) LaneStats {
	t.Helper()
	var s LaneStats
	testutil.Eventually(t, fmt.Sprintf("lane %s parked=%v", id, want), func() bool {
		s = u.Stats()[id]
		return s.Parked == want
	})
	return s
}

// TestParkUnknownTopic: the telemetry topic does not exist and cannot be
// auto-created: the telemetry lane parks (the alarm lane keeps
// forwarding); once the topic is created the lane resumes and every
// record arrives once.
func TestParkUnknownTopic(t *testing.T) {
	c, _ := startKfake(t, kfake.SeedTopics(4, "alarms"))
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	sp := openSpool(t, dir)
	tel, alarms := spoolMessages(t, sp, 5, 20, 0)
	cfg := testConfig(dir, addr)
	cfg.UnknownTopicTimeout = 100 * time.Millisecond
	u := newUplinkConfig(t, sp, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	s := waitParked(t, u, spool.Telemetry, true)
	if s.ParkReason != kerr.UnknownTopicOrPartition.Message {
		t.Errorf("park reason: got %q, want %q", s.ParkReason, kerr.UnknownTopicOrPartition.Message)
	}
	if s.ParkedSince.IsZero() || s.ParkError == "" {
		t.Errorf("parked state: got since %v, error %q, want both set", s.ParkedSince, s.ParkError)
	}
	if a := u.Stats()[spool.Alarm]; a.Parked {
		t.Errorf("alarm lane: got parked (%s), want forwarding", a.ParkError)
	}
	if got := sp.End(spool.Telemetry) - sp.Start(spool.Telemetry); got != int64(tel) {
		t.Errorf("telemetry spooled while parked: got %d, want %d", got, tel)
	}

	if err := c.CreateTopic("telemetry", 4, nil); err != nil {
		t.Fatal(err)
	}
	waitParked(t, u, spool.Telemetry, false)
	waitDrained(t, sp)
	consume(t, addr, "telemetry", tel)
	consume(t, addr, "alarms", alarms)
}

// TestParkOnProduceError: the cluster refuses the produce requests of
// the alarm lane with TOPIC_AUTHORIZATION_FAILED (the ACL is missing)
// after the plan is saved; the lane parks, and once the refusals stop
// (the ACL granted) the saved window goes through: every record once.
func TestParkOnProduceError(t *testing.T) {
	c, _ := startKfake(t, kfake.SeedTopics(4, "telemetry", "alarms"))
	alarmsID := c.TopicInfo("alarms").TopicID
	var deny atomic.Bool
	deny.Store(true)
	var denied atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if !deny.Load() || len(req.Topics) == 0 || !producesTo(req, "alarms", alarmsID) {
			return nil, nil, false
		}
		denied.Add(1)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	sp := openSpool(t, dir)
	tel, alarms := spoolMessages(t, sp, 5, 20, 0)
	var logs syncBuffer
	cfg := testConfig(dir, addr)
	cfg.Logger = zerolog.New(&logs)
	u := newUplinkConfig(t, sp, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	s := waitParked(t, u, spool.Alarm, true)
	if s.ParkReason != kerr.TopicAuthorizationFailed.Message {
		t.Errorf("park reason: got %q, want %q", s.ParkReason, kerr.TopicAuthorizationFailed.Message)
	}
	// A few probes fail while parked: still one error line.
	for denied.Load() < 4 {
		time.Sleep(testParkBackoff)
	}
	deny.Store(false)
	waitParked(t, u, spool.Alarm, false)
	waitDrained(t, sp)
	consume(t, addr, "telemetry", tel)
	consume(t, addr, "alarms", alarms)
	for msg, want := range map[string]int{"uplink lane parked on a permanent error; records stay spooled until the cause is fixed": 1, "uplink lane resumed": 1} {
		if got := strings.Count(logs.String(), `"message":"`+msg+`"`); got != want {
			t.Errorf("log lines %q: got %d, want %d", msg, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// producesTo reports whether req writes to topic: by name, or by id in
// v13+.
func producesTo(req *kmsg.ProduceRequest, topic string, id [16]byte) bool {
	for _, rt := range req.Topics {
		if rt.Topic == topic || rt.TopicID == id {
			return true
		}
	}
	return false
}
