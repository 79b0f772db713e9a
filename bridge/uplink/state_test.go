package uplink

import (
	"os"
	"path/filepath"
	"testing"
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
