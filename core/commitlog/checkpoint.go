package commitlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	recoveryPointFile = "recovery-point"
	logStartFile      = "log-start-offset"
	epochFile         = "leader-epoch-checkpoint"
)

// writeFileAtomic replaces path with data: written to a temporary file,
// fsynced, renamed over path, and the directory fsynced.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeFileRename replaces path with data atomically (a temporary file
// renamed over it), without fsync: a crash of the process leaves the old
// or the new content, a power cut possibly the old one.
func writeFileRename(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// An offset checkpoint is 12 bytes: the offset (int64) and the CRC32C of
// those 8 bytes (uint32), big-endian. A torn or damaged checkpoint reads as
// absent.
func encodeOffset(off int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(off))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func readOffsetFile(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// EpochEntry says that leader epoch Epoch wrote its first batch at
// StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// The leader-epoch checkpoint uses Kafka's text format: a version line (0),
// an entry count, then one "epoch startOffset" line per entry.
func encodeEpochs(es []EpochEntry) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(es))
	for _, e := range es {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}

func decodeEpochs(data []byte) ([]EpochEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var lines []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || lines[0] != "0" {
		return nil, fmt.Errorf("bad header")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("bad entry count")
	}
	es := make([]EpochEntry, 0, n)
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("bad entry %q", l)
		}
		ep, err1 := strconv.ParseInt(f[0], 10, 32)
		off, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad entry %q", l)
		}
		if len(es) > 0 && (int32(ep) <= es[len(es)-1].Epoch || off < es[len(es)-1].StartOffset) {
			return nil, fmt.Errorf("entries out of order at %q", l)
		}
		es = append(es, EpochEntry{Epoch: int32(ep), StartOffset: off})
	}
	return es, nil
}

// RecoveryPoint reads the recovery point checkpoint of the log in dir
// without opening the log: offsets below it were fsynced. ok is false when
// there is no readable checkpoint. Tools use it; the log keeps its own.
func RecoveryPoint(dir string) (offset int64, ok bool) {
	return readOffsetFile(filepath.Join(dir, recoveryPointFile))
}
