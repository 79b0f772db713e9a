package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// laneState is what a lane's producer must remember across an edge crash
// to resend exactly the batches it may have sent, with the same producer
// id and sequence numbers, so the core drops the ones it already has.
//
// It lives in <state dir>/uplink-<lane>.json, replaced atomically (write,
// fsync, rename, fsync the directory) before each window is sent.
type laneState struct {
	ProducerID    int64            `json:"producer_id"`
	ProducerEpoch int16            `json:"producer_epoch"`
	Seqs          map[string]int32 `json:"next_sequences"` // "topic/partition" → next sequence
	Window        *window          `json:"window,omitempty"`
}

// window is a planned send: spool offsets [From, To] of the lane, the
// partition counts used to place its records, and the sequence each
// partition's batch starts at.
type window struct {
	From       int64            `json:"from"`
	To         int64            `json:"to"`
	Partitions map[string]int32 `json:"partitions"`
	Seqs       map[string]int32 `json:"sequences"`
	Counts     map[string]int   `json:"counts"` // records per partition
}

func loadState(path string) (laneState, error) {
	st := laneState{ProducerID: -1, ProducerEpoch: -1, Seqs: map[string]int32{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("uplink: %s: %w", path, err)
	}
	if st.Seqs == nil {
		st.Seqs = map[string]int32{}
	}
	return st, nil
}

func saveState(path string, st *laneState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("uplink: cannot save state: %w", err)
	}
	return nil
}
