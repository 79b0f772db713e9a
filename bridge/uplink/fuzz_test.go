package uplink

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzStateFile opens a state file holding arbitrary bytes. Invariant: it
// never panics, an unreadable file yields either an error or an empty
// state, and whatever state it loads can be saved and loaded back equal.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "s.state")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, st, err := openStateFile(path)
		if err != nil {
			return
		}
		defer sf.close()
		if err := sf.save(&st); err != nil {
			t.Fatal(err)
		}
		sf2, st2, err := openStateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer sf2.close()
		if st2.ProducerID != st.ProducerID || st2.ProducerEpoch != st.ProducerEpoch || len(st2.Seqs) != len(st.Seqs) {
			t.Fatalf("round trip: got %+v, want %+v", st2, st)
		}
	})
}
