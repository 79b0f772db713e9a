package uplink

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// groupByCopy is the straightforward grouping groupWindow replaced: the
// records appended to each partition's slice, then sorted in place.
func groupByCopy(recs []spool.Record, partOf func(*spool.Record) int32, byDevice bool) ([]string, map[string][]spool.Record) {
	byTP := map[string][]spool.Record{}
	var order []string
	for _, r := range recs {
		tp := tpKey(r.Topic, partOf(&r))
		if _, ok := byTP[tp]; !ok {
			order = append(order, tp)
		}
		byTP[tp] = append(byTP[tp], r)
	}
	sort.Strings(order)
	if byDevice {
		for _, rs := range byTP {
			slices.SortStableFunc(rs, func(a, b spool.Record) int { return bytes.Compare(a.Key, b.Key) })
		}
	}
	return order, byTP
}

// fleetWindow is a telemetry window of n records from devices cars, on
// topics telemetry and events, in arrival order.
func fleetWindow(rng *rand.Rand, n, cars int) []spool.Record {
	recs := make([]spool.Record, n)
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := range recs {
		topic := "telemetry"
		if rng.IntN(10) == 0 {
			topic = "events"
		}
		car := rng.IntN(cars)
		recs[i] = spool.Record{Offset: int64(i), Topic: topic, Key: []byte(fmt.Sprintf("car-%04d", car)),
			Value: []byte(fmt.Sprintf(`{"car":%d,"seq":%d}`, car, i)), Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	return recs
}

func fleetPartition(r *spool.Record) int32 {
	return partitionFor(r.Key, 8)
}

// groupWindow groups and orders exactly as the straightforward grouping,
// so a window planned before an upgrade is resent as the same batches.
func TestGroupWindowMatchesSortedCopies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n, cars := 1+rng.IntN(600), 1+rng.IntN(120)
		recs := fleetWindow(rng, n, cars)
		for _, byDevice := range []bool{false, true} {
			order, groups := groupWindow(recs, fleetPartition, byDevice, nil)
			wantOrder, wantGroups := groupByCopy(recs, fleetPartition, byDevice)
			if !reflect.DeepEqual(order, wantOrder) {
				t.Fatalf("round %d: got partitions %v, want %v", round, order, wantOrder)
			}
			for _, tp := range order {
				if !reflect.DeepEqual(groups[tp], wantGroups[tp]) {
					t.Fatalf("round %d (by device %v): partition %s grouped differently", round, byDevice, tp)
				}
			}
		}
	}
}

// BenchmarkGroupWindow: a full telemetry window (5,000 records from 1,000
// cars over 8 partitions), grouped by device, against the straightforward
// grouping in the same run.
func BenchmarkGroupWindow(b *testing.B) {
	recs := fleetWindow(rand.New(rand.NewPCG(3, 4)), 5000, 1000)
	for _, bc := range []struct {
		name  string
		group func([]spool.Record, func(*spool.Record) int32, bool) ([]string, map[string][]spool.Record)
	}{{"sorted-copies", groupByCopy}, {"by-index", func(recs []spool.Record, partOf func(*spool.Record) int32, byDevice bool) ([]string, map[string][]spool.Record) {
		return groupWindow(recs, partOf, byDevice, nil)
	}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.group(recs, fleetPartition, true)
			}
		})
	}
}

// BenchmarkEncodeWindow: a full telemetry window's batches, grouped by
// device and snappy-compressed, as send makes them: with buffers made for
// each window (the baseline), and with the buffers a lane keeps from one
// window to the next.
func BenchmarkEncodeWindow(b *testing.B) {
	recs := fleetWindow(rand.New(rand.NewPCG(3, 4)), 5000, 1000)
	b.Run("fresh-buffers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			order, groups := groupWindow(recs, fleetPartition, true, nil)
			for _, tp := range order {
				encodeBatch(groups[tp], 1, 0, 0, true)
			}
		}
	})
	b.Run("kept-buffers", func(b *testing.B) {
		var grouped []spool.Record
		var enc batchEncoder
		b.ReportAllocs()
		for b.Loop() {
			order, groups := groupWindow(recs, fleetPartition, true, &grouped)
			for _, tp := range order {
				enc.encode(groups[tp], 1, 0, 0, true)
			}
			enc.done(true)
		}
	})
}

// A lane's encoder gives every batch of a window bytes of its own, which
// stay as they were while later batches fill and outgrow the arena; a
// window encoded again in the reused arena is the same batches; a window
// whose requests did not all come back leaves its arena alone.
func TestBatchEncoderKeepsWindowBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var enc batchEncoder
	for round := range 20 {
		recs := fleetWindow(rng, 1+rng.IntN(3000), 1+rng.IntN(500))
		order, groups := groupWindow(recs, fleetPartition, true, nil)
		compress := round%3 != 0
		var batches, copies [][]byte
		for _, tp := range order {
			b, _ := enc.encode(groups[tp], 1, 0, 0, compress)
			want, _ := encodeBatch(groups[tp], 1, 0, 0, compress)
			if !bytes.Equal(b, want) {
				t.Fatalf("round %d, %s: the encoder's batch differs from a fresh one", round, tp)
			}
			batches, copies = append(batches, b), append(copies, bytes.Clone(b))
		}
		for i := range batches {
			if !bytes.Equal(batches[i], copies[i]) {
				t.Fatalf("round %d: batch %d changed while the window was encoded", round, i)
			}
		}
		acked := round%4 != 3
		enc.done(acked)
		if !acked {
			// The requests may still be queued: nothing new may land
			// in their bytes.
			for _, tp := range order {
				enc.encode(groups[tp], 2, 0, 0, compress)
			}
			for i := range batches {
				if !bytes.Equal(batches[i], copies[i]) {
					t.Fatalf("round %d: batch %d of a window not acknowledged was overwritten", round, i)
				}
			}
			enc.done(true)
		}
	}
}
