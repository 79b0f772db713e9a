package uplink

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

func expiryHeader(t time.Time) kmsg.Header {
	return kmsg.Header{Key: route.HeaderExpiryMS, Value: []byte(strconv.FormatInt(t.UnixMilli(), 10))}
}

func TestDropExpired(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	rec := func(off int64, hs ...kmsg.Header) spool.Record { return spool.Record{Offset: off, Headers: hs} }
	recs := []spool.Record{
		rec(0),
		rec(1, expiryHeader(now.Add(-time.Millisecond))),
		rec(2, expiryHeader(now.Add(time.Second))),
		rec(3, kmsg.Header{Key: route.HeaderExpiryMS, Value: []byte("garbage")}),
		rec(4, expiryHeader(now.Add(-time.Hour))),
	}
	keep, dropped := dropExpired(recs, now)
	var offs []int64
	for _, r := range keep {
		offs = append(offs, r.Offset)
	}
	if !reflect.DeepEqual(offs, []int64{0, 2, 3}) || !reflect.DeepEqual(dropped, []int64{1, 4}) {
		t.Errorf("got kept %v dropped %v, want [0 2 3] [1 4]", offs, dropped)
	}
	if keep, dropped := dropExpired(recs[:1], now); len(keep) != 1 || dropped != nil {
		t.Errorf("nothing expired: got %d kept, dropped %v; want 1, none", len(keep), dropped)
	}
}

// Telemetry whose MQTT 5 message expiry passed while it waited in the
// spool is not sent and counted as expired; the rest arrives once, in
// order. A window of expired records only is released too.
func TestMessageExpiryInSpool(t *testing.T) {
	node := startCore(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	now := time.Now()
	kept, expired := 0, 0
	add := func(dev string, seq int, hs ...kmsg.Header) {
		m := spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Key: []byte(dev),
			Value:   []byte(fmt.Sprintf(`{"device":%q,"seq":%d}`, dev, seq)),
			Headers: append([]kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/" + dev + "/t")}}, hs...),
			Time:    now}
		if err := sp.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	// A run of expired records alone first (a window of nothing to send).
	for i := range 50 {
		add("old", i, expiryHeader(now.Add(-time.Minute)))
		expired++
	}
	for i := range 300 {
		dev := fmt.Sprintf("c-%d", i%5)
		switch i % 3 {
		case 0:
			add(dev, i, expiryHeader(now.Add(-time.Second)))
			expired++
		case 1:
			add(dev, i, expiryHeader(now.Add(time.Hour)))
			kept++
		default:
			add(dev, i)
			kept++
		}
	}
	u := newUplink(t, sp, dir, node.KafkaAddr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	waitDrained(t, sp)
	cancel()
	<-done
	consume(t, node.KafkaAddr(), "telemetry", kept)
	st := sp.Stats()[spool.Telemetry]
	if st.Expired != int64(expired) || st.Delivered != int64(kept) {
		t.Errorf("got expired %d delivered %d, want %d %d", st.Expired, st.Delivered, expired, kept)
	}
}
