package uplink

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// laneState is what a lane's producer must remember across an edge crash
// to resend exactly the batches it may have sent, with the same producer
// id and sequence numbers, so the core drops the ones it already has.
type laneState struct {
	ProducerID    int64            `json:"producer_id"`
	ProducerEpoch int16            `json:"producer_epoch"`
	Seqs          map[string]int32 `json:"next_sequences"` // "topic/partition" → next sequence
	Window        *window          `json:"window,omitempty"`
	Live          *liveState       `json:"live,omitempty"` // set while draining live-first
	// BootID is the machine's boot id when the state was written without
	// fdatasync (a SyncNever spool); empty when it was synced.
	BootID string `json:"boot_id,omitempty"`
}

// liveState tracks a live-first drain: fresh records from Start on are
// sent ahead of the backlog below Start, each stream in order. Records
// are released from the spool as the backlog advances, and all the way up
// to Next once the backlog is done.
type liveState struct {
	Start   int64 `json:"start"`   // first offset of the live stream
	Next    int64 `json:"next"`    // next live offset to send
	Backlog int64 `json:"backlog"` // next backlog offset to send
}

// Streams a window can come from.
const (
	streamInOrder = ""        // the normal, in-order drain
	streamLive    = "live"    // live-first: fresh records
	streamBacklog = "backlog" // live-first: the backlog behind them
)

// window is a planned send: spool offsets [From, To] of the lane, the
// partition counts used to place its records, the sequence each
// partition's batch starts at, and how many records it has.
type window struct {
	From       int64            `json:"from"`
	To         int64            `json:"to"`
	Partitions map[string]int32 `json:"partitions"`
	Seqs       map[string]int32 `json:"sequences"`
	Counts     map[string]int   `json:"counts"`
	Stream     string           `json:"stream,omitempty"`
	// Skip are the offsets between From and To not sent: telemetry
	// records whose MQTT 5 message expiry (route.HeaderExpiryMS) had
	// passed when the window was planned. A resent window skips the same.
	Skip []int64 `json:"skip,omitempty"`
}

// stateFile keeps a laneState durable with one fdatasync per save: the
// file has two fixed slots written alternately, each
//
//	+----------+----------+------------+----------------------+
//	| seq u64  | len u32  | crc32c u32 | JSON state (len)     |
//	+----------+----------+------------+----------------------+
//
// and loading takes the valid slot with the higher seq, so a torn write
// leaves the previous state in the other slot.
type stateFile struct {
	f       *os.File
	seq     uint64 // of the last synced state
	slot    int64  // size of a slot
	written bool   // a state was written after it and is not synced yet
	// boot, when set, is the machine's boot id: states are written with
	// it and never fdatasynced (see unsynced).
	boot string
}

// bootID returns the machine's boot id, new at every boot, or "" where
// there is none to read.
var bootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// unsynced makes the file keep states in the page cache only, as a
// SyncNever spool keeps records: they survive a crash of the process,
// which is all such a spool promises. A state written so carries the boot
// id; loaded after the machine restarted (stale) it may be older than
// what was sent, and the lane must start over with a new producer. Without
// a boot id to tell, states stay fdatasynced.
func (sf *stateFile) unsynced() {
	sf.boot = bootID()
}

// stale reports whether a loaded state was written unsynced before the
// machine last started.
func stale(st laneState) bool {
	return st.BootID != "" && st.BootID != bootID()
}

const stateSlot = 256 << 10

func openStateFile(path string) (*stateFile, laneState, error) {
	st := laneState{ProducerID: -1, ProducerEpoch: -1, Seqs: map[string]int32{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, st, fmt.Errorf("uplink: %w", err)
	}
	sf := &stateFile{f: f, slot: stateSlot}
	var best []byte
	for i := int64(0); i < 2; i++ {
		seq, data, ok := sf.readSlot(i)
		if ok && (best == nil || seq > sf.seq) {
			sf.seq, best = seq, data
		}
	}
	if best != nil {
		if err := json.Unmarshal(best, &st); err != nil {
			f.Close()
			return nil, st, fmt.Errorf("uplink: %s: %w", path, err)
		}
		if st.Seqs == nil {
			st.Seqs = map[string]int32{}
		}
	}
	return sf, st, nil
}

func (sf *stateFile) readSlot(i int64) (uint64, []byte, bool) {
	var h [16]byte
	if _, err := sf.f.ReadAt(h[:], i*sf.slot); err != nil {
		return 0, nil, false
	}
	seq := binary.BigEndian.Uint64(h[:])
	n := binary.BigEndian.Uint32(h[8:])
	if n == 0 || int64(n) > sf.slot-16 {
		return 0, nil, false
	}
	data := make([]byte, n)
	if _, err := sf.f.ReadAt(data, i*sf.slot+16); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, false
	}
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(h[12:]) {
		return 0, nil, false
	}
	return seq, data, true
}

// save writes st and fdatasyncs it.
func (sf *stateFile) save(st *laneState) error {
	if err := sf.write(st); err != nil {
		return err
	}
	return sf.sync()
}

// write writes st to the slot not holding the last synced state, without
// syncing it: until sync returns nil, loading may find the previous state.
// A write after a failed sync goes to the same slot again, so the synced
// state is never overwritten by one that is not.
func (sf *stateFile) write(st *laneState) error {
	st.BootID = sf.boot
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if int64(len(data)) > sf.slot-16 {
		return fmt.Errorf("uplink: state of %d bytes does not fit a %d-byte slot", len(data), sf.slot)
	}
	seq := sf.seq + 1
	buf := make([]byte, 16+len(data))
	binary.BigEndian.PutUint64(buf, seq)
	binary.BigEndian.PutUint32(buf[8:], uint32(len(data)))
	binary.BigEndian.PutUint32(buf[12:], crc32.Checksum(data, castagnoli))
	copy(buf[16:], data)
	if _, err := sf.f.WriteAt(buf, int64(seq%2)*sf.slot); err != nil {
		return fmt.Errorf("uplink: cannot save state: %w", err)
	}
	sf.written = true
	return nil
}

// sync makes the last write durable.
func (sf *stateFile) sync() error {
	if !sf.written {
		return nil
	}
	if sf.boot != "" {
		// Page cache only (unsynced).
	} else if err := fdatasync(sf.f); err != nil {
		return fmt.Errorf("uplink: cannot sync state: %w", err)
	}
	sf.seq++
	sf.written = false
	return nil
}

func (sf *stateFile) close() error { return sf.f.Close() }
