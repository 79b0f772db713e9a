package uplink

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// TestStateFileSurvivesTornWrite: each save goes to the other slot, so a
// write torn by a crash leaves the previous state readable.
func TestStateFileSurvivesTornWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uplink-alarm.state")
	sf, st, err := openStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.ProducerID != -1 || st.Window != nil {
		t.Fatalf("got %+v, want an empty state", st)
	}
	for i := int64(1); i <= 3; i++ {
		st.ProducerID = 1000 + i
		st.Seqs["alarms/0"] = int32(10 * i)
		if err := sf.save(&st); err != nil {
			t.Fatal(err)
		}
	}
	sf.close()
	// Tear the newest slot (seq 3 lives in slot 1).
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte("garbage"), stateSlot+20)
	f.Close()
	sf, st, err = openStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.close()
	if st.ProducerID != 1002 || st.Seqs["alarms/0"] != 20 {
		t.Fatalf("got producer %d seq %d, want the previous save (1002, 20)", st.ProducerID, st.Seqs["alarms/0"])
	}
	// The next save must not overwrite the good slot.
	st.ProducerID = 1004
	if err := sf.save(&st); err != nil {
		t.Fatal(err)
	}
	sf.close()
	_, st, _ = openStateFile(path)
	if st.ProducerID != 1004 {
		t.Fatalf("got producer %d, want 1004", st.ProducerID)
	}
}

// TestUnsyncedStateAfterReboot: a state kept in the page cache (a spool
// with --spool-sync never) is trusted after a crash of the process, the
// same boot, and taken for stale after a reboot, when the uplink starts a
// new producer: exactly once across crashes, at least once across power
// cuts, never a reused sequence.
func TestUnsyncedStateAfterReboot(t *testing.T) {
	boot := "boot-1"
	defer func(f func() string) { bootID = f }(bootID)
	bootID = func() string { return boot }

	dir := t.TempDir()
	cfg := spool.DefaultConfig()
	cfg.Sync = spool.SyncNever
	sp, err := spool.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ucfg := DefaultConfig()
	ucfg.StateDir = dir
	open := func() laneState {
		u, err := New(ucfg, sp)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		return u.lanes[spool.Alarm].st
	}
	u, err := New(ucfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	l := u.lanes[spool.Alarm]
	l.st.ProducerID, l.st.ProducerEpoch = 7, 0
	l.st.Seqs["alarms/0"] = 42
	if err := l.state.save(&l.st); err != nil {
		t.Fatal(err)
	}
	u.Close()

	if st := open(); st.ProducerID != 7 || st.Seqs["alarms/0"] != 42 || st.BootID != "boot-1" {
		t.Fatalf("same boot: got %+v, want producer 7 at sequence 42", st)
	}
	boot = "boot-2"
	if st := open(); st.ProducerID != -1 || len(st.Seqs) != 0 {
		t.Fatalf("after a reboot: got %+v, want a new producer", st)
	}
	// A state that was fdatasynced (another policy) holds across reboots.
	bootID = func() string { return "" }
	u, err = New(ucfg, sp)
	if err != nil {
		t.Fatal(err)
	}
	l = u.lanes[spool.Alarm]
	l.st.ProducerID = 8
	if err := l.state.save(&l.st); err != nil {
		t.Fatal(err)
	}
	u.Close()
	bootID = func() string { return "boot-3" }
	if st := open(); st.ProducerID != 8 {
		t.Fatalf("synced state after a reboot: got producer %d, want 8", st.ProducerID)
	}
}
