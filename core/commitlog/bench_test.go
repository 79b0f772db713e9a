package commitlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every benchmark here comes with a baseline in the same run, so that the
// figure to look at is a ratio, not an absolute MB/s (benchmarks/README.md):
//
//	BenchmarkAppend/<size>/{nosync,fsync}  vs BenchmarkBaselineWrite/<size>/{nosync,fsync}
//	BenchmarkRead/<size>                   vs BenchmarkBaselineMemcpy/<size>
//
// A batch is one record with no key and no headers whose value makes the
// whole RecordBatch exactly <size> bytes: the shape of one MQTT message per
// produce, and the worst case for per-batch costs.
//
// The loops use b.Loop: it resets the timer on its first call and stops it
// when it returns false, so setup and cleanup are not timed, and it runs
// each benchmark function once, so a read benchmark's log is built once per
// size rather than once per b.N guess.

var benchSizes = []struct {
	name string
	size int
}{
	{"100B", 100},
	{"1KiB", 1 << 10},
	{"16KiB", 16 << 10},
}

const (
	// benchRotateBytes bounds the disk used by the write benchmarks: after
	// this many bytes the log (or file) is closed and removed, with the
	// timer stopped, and a fresh one takes over. It stays within one
	// DefaultConfig segment, so appends never roll.
	benchRotateBytes = 1 << 30
	// benchFetchBytes is the maxBytes of each Read, as in a Kafka fetch.
	benchFetchBytes = 1 << 20
	// benchReadLogBytes is about how much the read benchmarks cycle through:
	// more than any CPU cache, so both sides run from memory.
	benchReadLogBytes = 64 << 20
)

// benchBatch returns an uncompressed RecordBatch v2 of exactly size bytes
// holding one record.
func benchBatch(tb testing.TB, size int) []byte {
	tb.Helper()
	build := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte('a' + i%26)
		}
		return AppendBatch(nil, NoProducer(epoch.UnixMilli()), []kmsg.Record{{Value: v}})
	}
	n := max(size-HeaderSize, 0)
	for range 8 {
		b := build(n)
		if len(b) == size {
			return b
		}
		n += size - len(b)
	}
	tb.Fatalf("cannot build a batch of exactly %d bytes", size)
	return nil
}

func BenchmarkAppend(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			b.Run("nosync", func(b *testing.B) { benchAppend(b, bs.size, 0) })
			b.Run("fsync", func(b *testing.B) { benchAppend(b, bs.size, 1) })
		})
	}
}

// benchAppend appends the same batch over and over, setting the high
// watermark after each append as a broker does. flushBatches is
// Config.FlushBatches: 0 never fsyncs, 1 fsyncs before each Append returns.
func benchAppend(b *testing.B, size, flushBatches int) {
	buf := benchBatch(b, size)
	cfg := DefaultConfig()
	cfg.FlushBatches = flushBatches
	root := b.TempDir()
	var (
		l       *Log
		dir     string
		gen     int
		written int
	)
	open := func() {
		dir = filepath.Join(root, fmt.Sprint(gen))
		gen++
		var err error
		if l, err = Open(dir, cfg); err != nil {
			b.Fatalf("Open: %v", err)
		}
		written = 0
	}
	closeAndRemove := func() {
		if err := l.Close(); err != nil {
			b.Fatalf("Close: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
	open()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if written+size > benchRotateBytes {
			b.StopTimer()
			closeAndRemove()
			open()
			b.StartTimer()
		}
		res, err := l.Append(buf)
		if err != nil {
			b.Fatalf("Append: %v", err)
		}
		l.SetHighWatermark(res.LastOffset + 1)
		written += size
	}
	closeAndRemove()
}

func BenchmarkBaselineWrite(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			b.Run("nosync", func(b *testing.B) { benchWrite(b, bs.size, false) })
			b.Run("fsync", func(b *testing.B) { benchWrite(b, bs.size, true) })
		})
	}
}

// benchWrite is the baseline for benchAppend: the same bytes written with
// plain sequential write(2) to one file in the same kind of directory,
// followed by fsync(2) when sync is set.
func benchWrite(b *testing.B, size int, sync bool) {
	buf := benchBatch(b, size)
	root := b.TempDir()
	var (
		f       *os.File
		gen     int
		written int
	)
	open := func() {
		var err error
		if f, err = os.Create(filepath.Join(root, fmt.Sprintf("%d.log", gen))); err != nil {
			b.Fatal(err)
		}
		gen++
		written = 0
	}
	closeAndRemove := func() {
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(f.Name()); err != nil {
			b.Fatal(err)
		}
	}
	open()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if written+size > benchRotateBytes {
			b.StopTimer()
			closeAndRemove()
			open()
			b.StartTimer()
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		written += size
	}
	closeAndRemove()
}

// benchFetch is the shape of the read benchmarks for one batch size: how
// many batches one Read of benchFetchBytes returns, and how many such reads
// the data holds.
func benchFetch(size int) (perRead, reads int) {
	perRead = benchFetchBytes / size
	return perRead, max(benchReadLogBytes/(perRead*size), 1)
}

// BenchmarkRead reads a log sequentially with Read(offset, 1 MiB), as a
// Kafka fetch does, and copies each View into a destination buffer (the
// cost of the socket write that would follow), wrapping around at the end.
//
// One op is one Read. The log holds a whole number of reads' worth of
// batches, so every Read returns exactly perRead batches (checked): the
// bytes per op are constant and b.SetBytes gives an exact MB/s, directly
// comparable with BenchmarkBaselineMemcpy, which copies the same number of
// bytes per op.
func BenchmarkRead(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			perRead, reads := benchFetch(bs.size)
			readBytes := perRead * bs.size
			l, err := Open(b.TempDir(), DefaultConfig())
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			defer l.Close()
			chunk := make([]byte, 0, readBytes)
			one := benchBatch(b, bs.size)
			for range perRead {
				chunk = append(chunk, one...)
			}
			for range reads {
				res, err := l.Append(chunk)
				if err != nil {
					b.Fatalf("Append: %v", err)
				}
				l.SetHighWatermark(res.LastOffset + 1)
			}
			end := l.HighWatermark()
			dst := make([]byte, readBytes)
			var off int64

			b.SetBytes(int64(readBytes))
			b.ReportAllocs()
			for b.Loop() {
				v, err := l.Read(off, benchFetchBytes)
				if err != nil {
					b.Fatalf("Read(%d): %v", off, err)
				}
				if len(v.Data) != readBytes {
					b.Fatalf("Read(%d): got %d bytes, want %d", off, len(v.Data), readBytes)
				}
				copy(dst, v.Data)
				off = v.Next
				v.Release()
				if off == end {
					off = 0
				}
			}
		})
	}
}

// BenchmarkBaselineMemcpy is the baseline for BenchmarkRead: the same bytes
// per op copied from a heap buffer as large as the log into the same
// destination, sequentially, wrapping around at the end.
func BenchmarkBaselineMemcpy(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			perRead, reads := benchFetch(bs.size)
			readBytes := perRead * bs.size
			one := benchBatch(b, bs.size)
			// Filled, so that every page is really backed: untouched pages
			// would all read from the one zero page, which stays in cache.
			src := make([]byte, 0, reads*readBytes)
			for range reads * perRead {
				src = append(src, one...)
			}
			dst := make([]byte, readBytes)
			pos := 0

			b.SetBytes(int64(readBytes))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, src[pos:pos+readBytes])
				pos += readBytes
				if pos == len(src) {
					pos = 0
				}
			}
		})
	}
}

// BenchmarkEncodeBatch measures the batch encoder the spool and the uplink
// use: 100 telemetry-sized records with two headers each, then the header.
func BenchmarkEncodeBatch(b *testing.B) {
	val := make([]byte, 200)
	hs := []kmsg.Header{{Key: "mqtt.topic", Value: []byte("fleet/dev-1/telemetry")}, {Key: "edge.received_ms", Value: []byte("1700000000000")}}
	buf := make([]byte, HeaderSize, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:HeaderSize]
		for i := range 100 {
			buf = AppendRecord(buf, int32(i), int64(i), []byte("dev-1"), val, hs)
		}
		FinishBatch(buf, NoProducer(1_700_000_000_000), 100, 1_700_000_000_099)
	}
	b.SetBytes(int64(len(buf)))
}
