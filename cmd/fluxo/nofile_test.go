package main

import (
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// The soft open file limit is raised to the hard one, and the ceiling
// logged leaves filesReserved descriptors to the node.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if orig.Max <= 512 {
		t.Skipf("hard open file limit %d: too low to lower the soft one under it", orig.Max)
	}
	low := syscall.Rlimit{Cur: 512, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	ceiling := logFileLimit(zerolog.Nop(), "devices")
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != orig.Max {
		t.Fatalf("soft limit: got %d, want the hard limit %d", now.Cur, orig.Max)
	}
	if want := orig.Max - filesReserved; ceiling != want {
		t.Fatalf("ceiling: got %d, want %d", ceiling, want)
	}
}
