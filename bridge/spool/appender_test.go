package spool

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/internal/testutil"
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

// Under SyncAlways the telemetry lane waits CommitDelay before a write
// only after a write of at least commitSiblings messages: a small round
// never waits, a busy one makes the next wait, and Close ends the wait.
// The delay is an hour here, so a wait that should not happen would stall
// the test. Rounds are told apart by the lane's fsync count when each
// message's done is called.
func TestCommitDelayAfterBusyRounds(t *testing.T) {
	cfg := testConfig()
	cfg.CommitDelay = time.Second
	s := mustOpen(t, t.TempDir(), cfg)
	syncs := func() int64 { return s.lanes[Telemetry].Stats().Syncs }
	if d := s.appenders[Alarm].delay; d != 0 {
		t.Fatalf("the alarm lane waits %v, want never", d)
	}
	if d := s.appenders[Telemetry].delay; d != time.Second {
		t.Fatalf("the telemetry lane waits %v, want the configured 1s", d)
	}
	// Longer than Validate allows, before the appender first looks.
	s.appenders[Telemetry].delay = time.Hour

	// Round 1: one message, whose done holds the appender until the next
	// 99 are queued. Round 2: those 99, at once (round 1 was small).
	entered, release := make(chan struct{}), make(chan struct{})
	if err := s.Submit(msg(Telemetry, "telemetry", "d", 0, 100), func(err error) {
		close(entered)
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	<-entered
	var mu sync.Mutex
	rounds := map[int64]int{} // fsync count at done -> messages
	done := func(err error) {
		if err != nil {
			t.Errorf("done: %v", err)
		}
		mu.Lock()
		rounds[syncs()]++
		mu.Unlock()
	}
	for i := 1; i < 100; i++ {
		if err := s.Submit(msg(Telemetry, "telemetry", "d", i, 100), done); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	testutil.Eventually(t, "the 99 messages after a small round", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return rounds[syncs()] == 99
	})

	// Round 3 follows a busy round: it waits, here until Close.
	var closing atomic.Bool
	var lateDone atomic.Bool
	before := syncs()
	if err := s.Submit(msg(Telemetry, "telemetry", "d", 100, 100), func(err error) {
		lateDone.Store(err == nil && closing.Load())
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // room for a write that should not happen
	closing.Store(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !lateDone.Load() {
		t.Fatal("the message after a busy round was written before Close: it did not wait")
	}
	if got := syncs() - before; got != 1 {
		t.Fatalf("got %d fsyncs for the last message, want 1", got)
	}
}
