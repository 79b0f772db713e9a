package commitlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFirstWrite is the first append to each of 1,000 fresh logs, as
// a produce to 1,000 new partitions makes them: files=1 is the log as it
// is (the first write creates the .log; the indexes stay in memory),
// files=3 the baseline in the same run, the first write creating the
// .index and .timeindex too (eagerIndexFiles). ns/op is per first write.
// Opening the logs (their directories) and closing them are not timed;
// every 1,000 writes the logs are closed, removed and opened afresh. On
// ext4 without a journal, creating a file costs more while many were
// deleted in the last minute: run with -count so that the two alternate,
// and -benchtime 3000x to time 3 × 1,000 logs:
//
//	go test -run '^$' -bench FirstWrite -benchtime 3000x -count 6 ./core/commitlog/
func BenchmarkFirstWrite(b *testing.B) {
	const n = 1000
	batch := testBatch(1, 1000, epoch.UnixMilli(), "first")
	for _, c := range []struct {
		name  string
		eager bool
	}{{"files=3", true}, {"files=1", false}} {
		b.Run(c.name, func(b *testing.B) {
			eagerIndexFiles = c.eager
			defer func() { eagerIndexFiles = false }()
			root := b.TempDir()
			var logs []*Log
			closeAll := func() {
				for _, l := range logs {
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
					if err := os.RemoveAll(l.Dir()); err != nil {
						b.Fatal(err)
					}
				}
				logs = logs[:0]
			}
			round, i := 0, 0
			for b.Loop() {
				if i%n == 0 {
					b.StopTimer()
					closeAll()
					round++
					for p := 0; p < n; p++ {
						l, err := Open(filepath.Join(root, fmt.Sprintf("t-%d-%d", round, p)), DefaultConfig())
						if err != nil {
							b.Fatal(err)
						}
						logs = append(logs, l)
					}
					b.StartTimer()
				}
				if _, err := logs[i%n].Append(batch); err != nil {
					b.Fatal(err)
				}
				i++
			}
			closeAll()
		})
	}
}
