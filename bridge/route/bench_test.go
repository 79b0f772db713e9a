package route

import (
	"testing"
	"time"
)

// BenchmarkMatch routes a telemetry topic through the default routes (it
// is tried against all three), with the level walk MatchFilter uses and,
// as the baseline in the same run, with the strings.Split implementation
// it replaced.
func BenchmarkMatch(b *testing.B) {
	routes := DefaultRoutes()
	const topic = "cars/c-0001/telemetry"
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range routes {
				if MatchFilter(r.Filter, topic) {
					break
				}
			}
		}
	})
	b.Run("split", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range routes {
				if splitCovers(r.Filter, topic, true) {
					break
				}
			}
		}
	})
}

// BenchmarkMessage builds the spool message of a 256-byte publish
// through the default routes, without user properties and with five (as
// BenchmarkIngestUserProperties in edge sends them).
func BenchmarkMessage(b *testing.B) {
	rt := NewRouter(DefaultRoutes(), "edge-bench")
	payload := make([]byte, 256)
	user := []Property{
		{"unit", "celsius"}, {"schema", "v2"}, {"trace-id", "4bf92f3577b34da6"}, {"site", "north-7"}, {"fw", "1.4.2"},
	}
	for _, c := range []struct {
		name string
		user []Property
	}{{"plain", nil}, {"props5", user}} {
		b.Run(c.name, func(b *testing.B) {
			p := Publish{Topic: "cars/c-0001/telemetry", Payload: payload, QoS: 1, ClientID: "c-0001", User: c.user, Received: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := rt.Message(p); !ok {
					b.Fatal("got no route, want telemetry")
				}
			}
		})
		// What the edge does with an AsyncSink: a reused Buf.
		b.Run(c.name+"/buf", func(b *testing.B) {
			p := Publish{Topic: "cars/c-0001/telemetry", Payload: payload, QoS: 1, ClientID: "c-0001", User: c.user, Received: time.Now()}
			var buf Buf
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := rt.MessageIn(&buf, p); !ok {
					b.Fatal("got no route, want telemetry")
				}
			}
		})
	}
}
