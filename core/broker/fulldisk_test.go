//go:build linux

package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/sys/unix"
)

// TestProduceToFullDisk: on a real, full file system a produce gets
// KAFKA_STORAGE_ERROR, reads go on, and produce works again once space is
// freed.
func TestProduceToFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a size-limited tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	cfg := DefaultConfig()
	cfg.Log.SegmentBytes = 1 << 20
	cfg.Log.MaxBatchBytes = 64 << 10
	cfg.Log.PreallocateBytes = 256 << 10
	b := openTestBrokerConfig(t, filepath.Join(mnt, "data"), cfg)
	defer b.Close()
	tp, err := b.CreateTopic(context.Background(), "t", 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	p := tp.Partitions[0]
	var res AppendResult
	written := 0
	for i := 0; i < 10000; i++ {
		res = p.Append(idemBatch(-1, -1, -1, 100), 1)
		if res.Code != 0 {
			break
		}
		written++
	}
	if res.Code != kerr.KafkaStorageError.Code {
		t.Fatalf("got code %d (%v), want KAFKA_STORAGE_ERROR", res.Code, res.Err)
	}
	if hw := p.HighWatermark(); hw != int64(written)*100 {
		t.Fatalf("got high watermark %d, want %d", hw, written*100)
	}
	v, err := p.Log().Read(0, 1<<20)
	if err != nil || len(v.Data) == 0 {
		t.Fatalf("read on a full disk: %v", err)
	}
	v.Release()
	os.Remove(filler)
	if res := p.Append(idemBatch(-1, -1, -1, 100), 1); res.Code != 0 || res.BaseOffset != int64(written)*100 {
		t.Fatalf("after freeing space: got code %d base %d, want 0 and %d", res.Code, res.BaseOffset, written*100)
	}
}
