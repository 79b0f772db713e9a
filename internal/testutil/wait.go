// Package testutil holds what tests across fluxo share: waiting for a
// condition that other goroutines or processes make true. Tests never
// sleep for a fixed time to let something happen; they poll for it with
// a generous deadline, which only a failing test reaches.
package testutil

import (
	"testing"
	"time"
)

// Timeout is the default deadline of Eventually: long enough for a busy
// two-core machine running the race detector, reached only by a test
// that fails.
const Timeout = 20 * time.Second

// Eventually polls cond until it holds, failing t with "gave up waiting
// for <what>" after Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with its own deadline.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// EventuallyNoError polls check until it returns nil, failing t with
// its last error after Timeout: for state a system applies after it has
// answered (a created topic showing in Metadata).
func EventuallyNoError(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: gave up after %v: %v", what, Timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
