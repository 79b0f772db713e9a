//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mqttDevice publishes numbered messages ("<id> <seq>[ <padding>]") over
// MQTT with paho, as a device does: QoS 1 with several messages in flight,
// at a bounded rate, and after a lost connection it connects again and
// resends what was never acknowledged (MQTT QoS 1 is at-least-once from
// the device). Each connection is a clean session, so paho itself never
// resends: every resend is the device's, and recorded.
type mqttDevice struct {
	id       string // device id: the record key in the core
	topic    string
	broker   string  // tcp://host:port
	rate     float64 // new messages per second
	limit    int     // new messages at most; 0: until stopped
	inflight int     // unacknowledged messages at most
	pad      int     // payload bytes after "<id> <seq> "
	noise    int     // hex digits after "<id> <seq> " that compression cannot shrink (instead of pad)

	mu       sync.Mutex
	next     int               // seq of the next new message
	pending  map[int]bool      // published, not acknowledged yet
	acked    map[int]time.Time // acknowledged (PUBACK), when
	resend   []int             // pending, to publish again on the next connection
	resent   int               // publishes that were resends
	connects int
	atKill   map[int]int // seq → kills at which it was pending
}

func newDevice(id, topic, broker string, rate float64) *mqttDevice {
	return &mqttDevice{id: id, topic: topic, broker: broker, rate: rate, inflight: 16,
		pending: map[int]bool{}, acked: map[int]time.Time{}, atKill: map[int]int{}}
}

// payload is message seq's MQTT payload.
func (d *mqttDevice) payload(seq int) []byte {
	s := d.id + " " + strconv.Itoa(seq)
	if d.pad > 0 {
		s += " " + strings.Repeat("x", d.pad)
	}
	if d.noise > 0 {
		s += " " + noiseHex(d.id, seq, d.noise)
	}
	return []byte(s)
}

// noiseHex is n pseudo-random hex digits, the same for the same device
// and seq: payload bytes that snappy cannot compress below half.
func noiseHex(id string, seq, n int) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(seq)))
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdef"[rng.IntN(16)]
	}
	return string(b)
}

// parsePayload is the inverse of payload.
func parsePayload(v []byte) (id string, seq int, err error) {
	f := strings.SplitN(string(v), " ", 3)
	if len(f) < 2 {
		return "", 0, fmt.Errorf("payload %.40q: want \"<device> <seq>\"", v)
	}
	seq, err = strconv.Atoi(f[1])
	if err != nil {
		return "", 0, fmt.Errorf("payload %.40q: %v", v, err)
	}
	return f[0], seq, nil
}

// run publishes until stop is closed (or limit messages were published),
// then until every published message is acknowledged; it returns early
// only when ctx ends.
func (d *mqttDevice) run(ctx context.Context, stop <-chan struct{}) error {
	for {
		if d.finished(stop) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("device %s: %w (%s)", d.id, ctx.Err(), d.summary())
		}
		c, lost, err := d.connect()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		d.publishOn(ctx, stop, c, lost)
	}
}

// finished reports whether no new message is due and none is pending.
func (d *mqttDevice) finished(stop <-chan struct{}) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.moreLocked(stop) && len(d.pending) == 0
}

// moreLocked reports whether new messages are still due.
func (d *mqttDevice) moreLocked(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	default:
	}
	return d.limit == 0 || d.next < d.limit
}

func (d *mqttDevice) connect() (mqtt.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	opts := mqtt.NewClientOptions().
		AddBroker(d.broker).
		SetClientID(d.id + "-pub").
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(2 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(mqtt.Client, error) { once.Do(func() { close(lost) }) })
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		c.Disconnect(0)
		return nil, nil, errors.New("connect: timeout")
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	d.connects++
	d.mu.Unlock()
	return c, lost, nil
}

// publishOn publishes over one connection until it breaks, ctx ends, or
// the device is finished.
func (d *mqttDevice) publishOn(ctx context.Context, stop <-chan struct{}, c mqtt.Client, lost <-chan struct{}) {
	broken := make(chan struct{})
	var breakOnce sync.Once
	breakConn := func() { breakOnce.Do(func() { close(broken) }) }
	sem := make(chan struct{}, d.inflight)
	var wg sync.WaitGroup
	defer func() {
		// Disconnect completes the tokens still waiting, with an error.
		c.Disconnect(0)
		wg.Wait()
	}()

	publish := func(seq int, again bool) bool {
		select {
		case sem <- struct{}{}:
		case <-broken:
			return false
		case <-lost:
			breakConn()
			return false
		case <-ctx.Done():
			return false
		}
		d.mu.Lock()
		d.pending[seq] = true
		if again {
			d.resent++
		}
		d.mu.Unlock()
		tok := c.Publish(d.topic, 1, false, d.payload(seq))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ok := tok.WaitTimeout(10*time.Second) && tok.Error() == nil
			d.mu.Lock()
			if ok {
				delete(d.pending, seq)
				d.acked[seq] = time.Now()
			} else {
				d.resend = append(d.resend, seq)
			}
			d.mu.Unlock()
			if !ok {
				breakConn()
			}
		}()
		return true
	}

	// First what the last connection left unacknowledged.
	d.mu.Lock()
	again := d.resend
	d.resend = nil
	d.mu.Unlock()
	slices.Sort(again)
	for i, seq := range again {
		if !publish(seq, true) {
			d.mu.Lock()
			d.resend = append(d.resend, again[i:]...)
			d.mu.Unlock()
			return
		}
	}

	tick := time.NewTicker(time.Duration(float64(time.Second) / d.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-broken:
			return
		case <-lost:
			return
		case <-tick.C:
		}
		d.mu.Lock()
		more := d.moreLocked(stop)
		seq := d.next
		if more {
			d.next++
		}
		idle := !more && len(d.pending) == 0
		d.mu.Unlock()
		if idle {
			return
		}
		if more && !publish(seq, false) {
			d.mu.Lock()
			d.resend = append(d.resend, seq)
			d.pending[seq] = true
			d.mu.Unlock()
			return
		}
	}
}

// markKill records the messages pending now: called once the edge
// process is gone, so every message that could have reached it and got
// no acknowledgement is among them.
func (d *mqttDevice) markKill() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for seq := range d.pending {
		d.atKill[seq]++
	}
	return len(d.pending)
}

// published is the number of distinct messages published.
func (d *mqttDevice) published() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next
}

func (d *mqttDevice) ackedSeqs() map[int]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.acked)
}

func (d *mqttDevice) summary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("%s: %d published, %d acknowledged, %d pending, %d resends, %d connections",
		d.id, d.next, len(d.acked), len(d.pending), d.resent, d.connects)
}

// runDevices runs the devices until stop is closed (or their limits are
// reached) and their messages are acknowledged; wait returns their errors
// and fails the test if they are not done within timeout of being called.
func runDevices(ctx context.Context, stop <-chan struct{}, devs ...*mqttDevice) (wait func(t *testing.T, timeout time.Duration)) {
	errs := make(chan error, len(devs))
	for _, d := range devs {
		go func() { errs <- d.run(ctx, stop) }()
	}
	return func(t *testing.T, timeout time.Duration) {
		t.Helper()
		deadline := time.After(timeout)
		for range devs {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("device: %v", err)
				}
			case <-deadline:
				var s []string
				for _, d := range devs {
					s = append(s, d.summary())
				}
				t.Fatalf("devices after %v: got some still running, want all done:\n%s", timeout, strings.Join(s, "\n"))
			}
		}
		for _, d := range devs {
			t.Log(d.summary())
		}
	}
}

// coreRecord is a record read back from the core.
type coreRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
	Headers   []kgo.RecordHeader
	Timestamp time.Time
}

// header returns every value of a header key.
func (r coreRecord) header(key string) []string {
	var vs []string
	for _, h := range r.Headers {
		if h.Key == key {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

// readCore reads every record of the topics below their current end
// offsets, in partition and offset order. A topic that does not exist
// reads as empty.
func readCore(t *testing.T, brokers string, topics ...string) map[string][]coreRecord {
	t.Helper()
	return readCoreWith(t, brokers, nil, topics...)
}

// readCoreWith is readCore with more client options (a dialer, security).
func readCoreWith(t *testing.T, brokers string, opts []kgo.Opt, topics ...string) map[string][]coreRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("list end offsets of %v: %v", topics, err)
	}
	want := map[string]map[int32]int64{}
	assign := map[string]map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				t.Errorf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
			}
			return
		}
		if o.Offset == 0 {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic], assign[o.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = o.Offset
		assign[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		left++
	})
	out := map[string][]coreRecord{}
	if left == 0 {
		return out
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers), kgo.ConsumePartitions(assign), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo consumer: %v", err)
	}
	defer cl.Close()
	byTP := map[string]map[int32][]coreRecord{}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			var got []string
			for tp, ps := range byTP {
				for p, rs := range ps {
					got = append(got, fmt.Sprintf("%s/%d: %d of %d", tp, p, len(rs), want[tp][p]))
				}
			}
			t.Fatalf("read %v from the core: got %v after 30s, want every record below the end offsets", topics, got)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if byTP[r.Topic] == nil {
				byTP[r.Topic] = map[int32][]coreRecord{}
			}
			byTP[r.Topic][r.Partition] = append(byTP[r.Topic][r.Partition], coreRecord{
				Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key),
				Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp,
			})
			if r.Offset == end-1 {
				left--
			}
		})
	}
	for _, topic := range topics {
		ps := slices.Sorted(maps.Keys(byTP[topic]))
		for _, p := range ps {
			out[topic] = append(out[topic], byTP[topic][p]...)
		}
	}
	return out
}

// deviceCounts counts the records of each device and seq, and fails the
// test on a record that is not a device message or whose key is not the
// device id.
func deviceCounts(t *testing.T, recs []coreRecord) map[string]map[int]int {
	t.Helper()
	counts := map[string]map[int]int{}
	for _, r := range recs {
		id, seq, err := parsePayload(r.Value)
		if err != nil {
			t.Errorf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			continue
		}
		if r.Key != id {
			t.Errorf("%s/%d@%d (%s %d): got key %q, want %q", r.Topic, r.Partition, r.Offset, id, seq, r.Key, id)
		}
		if counts[id] == nil {
			counts[id] = map[int]int{}
		}
		counts[id][seq]++
	}
	return counts
}
