package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// benchProps are the five user properties of BenchmarkIngestUserProperties.
var benchProps = [][2]string{
	{"unit", "celsius"}, {"schema", "v2"}, {"trace-id", "4bf92f3577b34da6"}, {"site", "north-7"}, {"fw", "1.4.2"},
}

// BenchmarkIngestUserProperties measures MQTT 5 QoS 1 ingest into a real
// spool, under the default SyncAlways (acknowledged once fsynced, as
// fluxo edge ships) and under SyncNever (the CPU path alone), over one
// connection with
// 100 publishes in flight, 256-byte payloads, without user properties and with five per
// message, interleaved in chunks within the same run. It reports each
// rate and their ratio (props5/plain), and the process's CPU time per
// message of each and their ratio (cpu-ratio: plain/props5).
func BenchmarkIngestUserProperties(b *testing.B) {
	for _, sync := range []spool.SyncPolicy{spool.SyncAlways, spool.SyncNever} {
		b.Run("sync="+sync.String(), func(b *testing.B) { benchIngestUserProperties(b, sync) })
	}
}

// newSpoolEdge returns an edge, not started, writing into a spool of
// its own under sync; the spool is closed when b ends.
func newSpoolEdge(b *testing.B, sync spool.SyncPolicy) *Edge {
	b.Helper()
	sc := spool.DefaultConfig()
	sc.Sync = sync
	sc.SegmentBytes = 8 << 20
	sc.MaxBytes = 1 << 30
	sp, err := spool.Open(b.TempDir(), sc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sp.Close() })
	cfg := DefaultConfig()
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.EdgeID = "edge-bench"
	cfg.AllowAnonymous = true
	cfg.Logger = zerolog.Nop()
	e, err := New(cfg, sp)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func benchIngestUserProperties(b *testing.B, sync spool.SyncPolicy) {
	e := newSpoolEdge(b, sync)
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	defer e.Close()

	c, err := net.Dial("tcp", e.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := c.Write(connectPacket(5, "bench-1", "", "")); err != nil {
		b.Fatal(err)
	}
	if first, body, err := readRaw(r); err != nil || first != 0x20 || body[1] != 0 {
		b.Fatalf("connack: got %#x %v %v, want success", first, body, err)
	}

	const window, chunk = 100, 2000
	// 256 bytes, benchmarks/mqtt's default -payload-bytes: a car's
	// telemetry reading as the devices package writes it, padded.
	payload := `{"device":"c-0001","seq":1234,"ts_ms":1765000000000,"lat":48.137154,"lon":11.576124,"speed_kmh":87.4,"heading":212,"fuel_pct":63.2,"engine_temp_c":91.7}`
	payload += strings.Repeat(" ", 256-len(payload))
	plain := make([][]byte, window)
	props := make([][]byte, window)
	for i := range window {
		plain[i] = publishWithProps(1, uint16(i+1), "fleet/dev-1/telemetry", payload)
		props[i] = publishWithProps(1, uint16(i+1), "fleet/dev-1/telemetry", payload, benchProps...)
	}
	w := bufio.NewWriter(c)
	// run publishes n messages of pks with up to window in flight.
	run := func(pks [][]byte, n int) time.Duration {
		start := time.Now()
		sent, acked := 0, 0
		for acked < n {
			// Refill the window, then read the acknowledgements that
			// have arrived (at least one), as a pipelining client does.
			for sent < n && sent-acked < window {
				if _, err := w.Write(pks[sent%window]); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			for first := true; first || r.Buffered() > 0; first = false {
				typ, body, err := readRaw(r)
				if err != nil {
					b.Fatal(err)
				}
				if typ != 0x40 || (len(body) > 2 && body[2] != 0) {
					b.Fatalf("got %#x %v, want a successful PUBACK", typ, body)
				}
				acked++
			}
		}
		return time.Since(start)
	}
	var tPlain, tProps, cPlain, cProps time.Duration
	var nPlain, nProps int
	b.ResetTimer()
	for left := b.N; left > 0; {
		n := min(left, chunk)
		c := processCPU(b)
		tProps += run(props, n)
		c2 := processCPU(b)
		tPlain += run(plain, n)
		c3 := processCPU(b)
		cProps += c2 - c
		cPlain += c3 - c2
		nProps += n
		nPlain += n
		left -= n
	}
	b.StopTimer()
	plainRate := float64(nPlain) / tPlain.Seconds()
	propsRate := float64(nProps) / tProps.Seconds()
	b.ReportMetric(plainRate, "plain-msg/s")
	b.ReportMetric(propsRate, "props5-msg/s")
	b.ReportMetric(propsRate/plainRate, "ratio")
	// CPU of the whole process (edge, spool and this client) per
	// message: less disturbed than the rates by other work on the
	// machine.
	b.ReportMetric(float64(cPlain.Microseconds())/float64(nPlain), "plain-cpu-µs/msg")
	b.ReportMetric(float64(cProps.Microseconds())/float64(nProps), "props5-cpu-µs/msg")
	b.ReportMetric(cPlain.Seconds()/cProps.Seconds(), "cpu-ratio")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readRaw reads one MQTT packet: its first byte and body.
func readRaw(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			break
		}
		if mul *= 128; mul > 128*128*128 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read body: %w", err)
	}
	return first, body, nil
}

// BenchmarkPublishDecode decodes a 256-byte MQTT 5 QoS 1 publish with
// mochi's decoder (what mochi's read loop does for every publish),
// without user properties and with the five of
// BenchmarkIngestUserProperties: the part of their cost that is mochi's,
// apart from the edge's (route.BenchmarkMessage) and the spool's.
func BenchmarkPublishDecode(b *testing.B) {
	payload := strings.Repeat("x", 256)
	for _, c := range []struct {
		name  string
		props [][2]string
	}{{"plain", nil}, {"props5", benchProps}} {
		b.Run(c.name, func(b *testing.B) {
			raw := publishWithProps(1, 7, "fleet/dev-1/telemetry", payload, c.props...)
			body := raw[3:] // one type byte, a two-byte remaining length (> 127)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Remaining: len(body)}}
				if err := pk.PublishDecode(body); err != nil {
					b.Fatal(err)
				}
				if len(pk.Properties.User) != len(c.props) {
					b.Fatalf("got %d user properties, want %d", len(pk.Properties.User), len(c.props))
				}
			}
		})
	}
}

// BenchmarkAckEncode encodes the PUBACK of an MQTT 5 publish as mochi
// writes it after OnPacketEncode: as MQTT 5 (the baseline: mochi's
// property encoder runs for an empty property set) and as MQTT 3.1.1,
// which OnPacketEncode now hands mochi (the same bytes, see
// TestAckEncodingAsMQTT311).
func BenchmarkAckEncode(b *testing.B) {
	for _, version := range []byte{5, 4} {
		b.Run(fmt.Sprintf("version=%d", version), func(b *testing.B) {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7, ProtocolVersion: version}
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := pk.PubackEncode(&buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDevicesOnPublished is the device registry's part of a publish
// (devicesHook.OnPublished: the reply check, the route match for the
// record key and lane, Registry.Published) with 10,000 devices known and
// 20 of them publishing in turn, as benchmarks/mqtt's registry phase
// floods it; parallel over GOMAXPROCS goroutines, so that the registry's
// lock is contended as by mochi's connection goroutines.
func BenchmarkDevicesOnPublished(b *testing.B) {
	rc := registry.DefaultConfig()
	rc.Path = filepath.Join(b.TempDir(), "devices.db")
	reg, err := registry.Open(rc)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	const devices, hot = 10000, 20
	now := time.Now()
	for i := range devices {
		id := fmt.Sprintf("d-%05d", i)
		reg.Published(registry.Publish{Device: id, Fleet: "cars", Topic: "cars/" + id + "/telemetry", Bytes: 256, At: now})
	}
	h := &devicesHook{e: &Edge{router: route.NewRouter(route.DefaultRoutes(), "edge-bench")}, reg: reg}
	clients := make([]*mqtt.Client, hot)
	pks := make([]packets.Packet, hot)
	for i := range hot {
		clients[i] = &mqtt.Client{ID: fmt.Sprintf("c-%04d", i+1)}
		id := fmt.Sprintf("d-%05d", i*(devices/hot))
		pks[i] = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "cars/" + id + "/telemetry", Payload: make([]byte, 256)}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			i = (i + 1) % hot
			h.OnPublished(clients[i], pks[i])
		}
	})
	b.StopTimer()
	var counted int64
	for i := range hot {
		d, _ := reg.Get(fmt.Sprintf("d-%05d", i*(devices/hot)))
		counted += d.Messages.Total() - 1 // taught once
	}
	if counted != int64(b.N) {
		b.Fatalf("got %d publishes counted to the devices, want %d", counted, b.N)
	}
}
