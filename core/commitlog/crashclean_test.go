package commitlog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashPoint is what the swap hook panics with to stop a cleaning dead,
// as a killed process stops: no cleanup code runs.
type crashPoint struct{ step string }

// TestCleanerCrashRecovery is the cleaner's crash property test: for
// several random logs, a cleaning is killed at every step of the swap
// protocol in turn (cleaned files half written, manifest written, each old
// segment removed, each file renamed, checkpoint written), the log is
// reopened (sometimes without its recovery point, so every segment is
// scanned), and then:
//
//   - every record served is one that was appended, at its offset;
//   - offsets only grow, and the newest record of every key is there;
//   - no .cleaned file or swap manifest is left;
//   - a cleaning after recovery leaves exactly the newest record per key.
func TestCleanerCrashRecovery(t *testing.T) {
	root := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fluxo-cleancrash-"); err == nil {
			root = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	defer func() { swapHook = nil }()
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	total := 0
	for seed := 0; seed < seeds; seed++ {
		for k := 0; ; k++ {
			dir := filepath.Join(root, fmt.Sprintf("%d-%d", seed, k))
			crashed, err := cleanCrashCase(dir, uint64(seed), k)
			if err != nil {
				t.Fatalf("seed %d, crash at step %d: %v", seed, k, err)
			}
			os.RemoveAll(dir)
			if !crashed {
				if k < 8 {
					t.Fatalf("seed %d: the cleaning had only %d steps, want a multi-segment swap", seed, k)
				}
				break
			}
			total++
		}
	}
	t.Logf("%d crash points checked", total)
}

func cleanCrashCase(dir string, seed uint64, crashAt int) (crashed bool, err error) {
	r := rand.New(rand.NewPCG(seed, 0xc1ea))
	cfg := compactConfig()
	cfg.SegmentBytes = int64(2<<10 + r.IntN(4<<10))
	cfg.MaxBatchBytes = 2 << 10
	cfg.IndexIntervalBytes = 128 + r.IntN(512)
	l, err := Open(dir, cfg)
	if err != nil {
		return false, err
	}
	keys := 3 + r.IntN(20)
	newest := map[string]int64{}
	for i := 0; i < 80+r.IntN(80); i++ {
		off := l.LogEndOffset()
		n := 1 + r.IntN(4)
		var ks []string
		var vs [][]byte
		for j := 0; j < n; j++ {
			k := "k" + strconv.Itoa(r.IntN(keys))
			ks = append(ks, k)
			vs = append(vs, []byte(fmt.Sprintf("%s@%d%s", k, off+int64(j), strings.Repeat(".", r.IntN(60)))))
			newest[k] = off + int64(j)
		}
		codec := CompressionNone
		if r.IntN(3) == 0 {
			codec = CompressionSnappy
		}
		b := keyedBatch(epoch.UnixMilli(), codec, ks, vs)
		res, err := l.Append(b)
		if err != nil {
			l.Close()
			return false, err
		}
		l.SetHighWatermark(res.LastOffset + 1)
		if r.IntN(40) == 0 {
			l.Roll()
		}
	}
	l.Roll()
	end := l.LogEndOffset()

	step := 0
	swapHook = func(s string) error {
		if step == crashAt {
			panic(crashPoint{s})
		}
		step++
		return nil
	}
	c, _ := NewCleaner(DefaultCleanerConfig())
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(crashPoint); !ok {
					panic(p)
				}
				crashed = true
			}
		}()
		_, err = c.Clean(t0ctx, l, epoch.Add(time.Second))
	}()
	swapHook = nil
	if err != nil {
		return false, fmt.Errorf("clean: %w", err)
	}
	if crashed {
		Crash(l)
	} else if err := l.Close(); err != nil {
		return false, err
	}
	if r.IntN(3) == 0 {
		os.Remove(filepath.Join(dir, recoveryPointFile))
	}

	l, err = Open(dir, cfg)
	if err != nil {
		return crashed, fmt.Errorf("reopen: %w", err)
	}
	defer l.Close()
	if l.LogEndOffset() != end {
		return crashed, fmt.Errorf("got log end %d, want %d", l.LogEndOffset(), end)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"+cleanedSuffix))
	if _, err := os.Stat(filepath.Join(dir, swapFile)); err == nil {
		left = append(left, swapFile)
	}
	if len(left) > 0 {
		return crashed, fmt.Errorf("left after recovery: %v", left)
	}
	check := func(exact bool) error {
		recs, err := readRecordsErr(l)
		if err != nil {
			return err
		}
		seen := map[string]int{}
		last := int64(-1)
		for _, g := range recs {
			if g.off <= last {
				return fmt.Errorf("offset %d after %d", g.off, last)
			}
			last = g.off
			if !strings.HasPrefix(g.value, fmt.Sprintf("%s@%d", g.key, g.off)) {
				return fmt.Errorf("offset %d holds %q=%.20q, not what was appended there", g.off, g.key, g.value)
			}
			seen[g.key]++
			if exact && g.off != newest[g.key] {
				return fmt.Errorf("after cleaning, key %s at offset %d, want only its newest %d", g.key, g.off, newest[g.key])
			}
		}
		for k, off := range newest {
			if seen[k] == 0 {
				return fmt.Errorf("newest record of %s (offset %d) lost", k, off)
			}
		}
		return nil
	}
	if err := check(false); err != nil {
		return crashed, err
	}
	if _, err := c.Clean(t0ctx, l, epoch.Add(time.Second)); err != nil {
		return crashed, fmt.Errorf("clean after recovery: %w", err)
	}
	return crashed, check(true)
}
