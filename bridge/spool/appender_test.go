package spool

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestSubmitGroupsInOrder: many devices submit at once under SyncAlways.
// Every done is called once with nil, only after the message is fsynced
// and readable; each device's messages are stored in submission order
// and their dones called in that order; and the appenders write far fewer
// batches than messages.
func TestSubmitGroupsInOrder(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	const devices, each = 16, 200
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprint("d-", d)
			var mu sync.Mutex
			next := 0
			var inner sync.WaitGroup
			for i := 0; i < each; i++ {
				inner.Add(1)
				err := s.Submit(msg(Telemetry, "telemetry", dev, i, 100), func(err error) {
					defer inner.Done()
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					if next != i {
						t.Errorf("device %s: done %d called after %d dones, want in order", dev, i, next)
					}
					next++
					mu.Unlock()
					if s.lanes[Telemetry].DurableOffset() < s.lanes[Telemetry].HighWatermark() {
						t.Error("readable before fsynced")
					}
				})
				if err != nil {
					t.Error(err)
					inner.Done()
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	if got := s.End(Telemetry); got != devices*each {
		t.Fatalf("got %d records, want %d", got, devices*each)
	}
	recs, _, err := s.Read(Telemetry, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		want := fmt.Sprintf("%s-%d", r.Key, seen[string(r.Key)])
		if got := string(r.Value[:len(want)]); got != want {
			t.Fatalf("offset %d: got %q, want %q (per-device order)", r.Offset, got, want)
		}
		seen[string(r.Key)]++
		if r.Topic != "telemetry" || len(r.Headers) != 1 {
			t.Fatalf("offset %d: got topic %q and %d headers, want telemetry and 1", r.Offset, r.Topic, len(r.Headers))
		}
	}
	st := s.lanes[Telemetry].Stats()
	if st.Appends >= devices*each/2 {
		t.Errorf("got %d appends for %d messages, want them grouped", st.Appends, devices*each)
	}
	if got := s.Stats()[Telemetry].Accepted; got != devices*each {
		t.Errorf("accepted: got %d, want %d", got, devices*each)
	}
}

// TestSubmitRefusals: what needs no I/O fails at once and done is never
// called; Close writes what was submitted before it; Submit afterwards
// fails with ErrClosed.
func TestSubmitRefusals(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testConfig())
	never := func(err error) { t.Errorf("done called with %v, want no call", err) }
	if err := s.Submit(msg(Telemetry, "t", "d", 0, 17<<10), never); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	var done sync.WaitGroup
	for i := 0; i < 100; i++ {
		done.Add(1)
		if err := s.Submit(msg(Alarm, "alarms", "d", i, 10), func(err error) {
			if err != nil {
				t.Error(err)
			}
			done.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done.Wait()
	if err := s.Submit(msg(Alarm, "alarms", "d", 0, 10), never); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close got %v, want ErrClosed", err)
	}
	s = mustOpen(t, t.TempDir(), testConfig())
	defer s.Close()
	// Alarms only: the budget fills and Submit says ErrFull at once.
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		err = s.Submit(msg(Alarm, "alarms", "p-1", i, 8000), func(error) {})
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull once alarms fill the budget", err)
	}
}
