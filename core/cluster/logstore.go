package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// boltStore is Raft's log store and stable store in one bbolt file
// (raft.db). It is the layout of hashicorp/raft-boltdb/v2, so either can
// open the other's file:
//
//	bucket "logs": key = index (uint64 big-endian), value = raft.Log, msgpack
//	bucket "conf": key = raft's key (e.g. "CurrentTerm"), value = raw bytes
//	               (uint64 values big-endian)
//
// raft-boltdb/v2 itself is not used because v2.3.1 imports
// hashicorp/go-metrics/compat, which go-metrics v0.7.0 (required by raft
// v1.8.0) no longer has.
//
// bbolt serializes writers and lets readers run concurrently, so the store
// is safe for concurrent use as raft requires.
type boltStore struct {
	db *bbolt.DB
}

var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")
	// errKeyNotFound's text is what raft tests for ("not found") when a
	// stable key has never been set.
	errKeyNotFound = errors.New("not found")
)

func openBoltStore(path string) (*boltStore, error) {
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketConf)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cluster: cannot initialize %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (b *boltStore) Close() error { return b.db.Close() }

func (b *boltStore) FirstIndex() (uint64, error) {
	var idx uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

func (b *boltStore) LastIndex() (uint64, error) {
	var idx uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

func (b *boltStore) GetLog(idx uint64, l *raft.Log) error {
	return b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(u64(idx))
		if v == nil {
			return raft.ErrLogNotFound
		}
		// A reader, not NewDecoderBytes: the decoder must copy what it
		// keeps, v is only valid inside the transaction.
		return codec.NewDecoder(bytes.NewReader(v), &codec.MsgpackHandle{}).Decode(l)
	})
}

func (b *boltStore) StoreLog(l *raft.Log) error { return b.StoreLogs([]*raft.Log{l}) }

func (b *boltStore) StoreLogs(logs []*raft.Log) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		bucket := tx.Bucket(bucketLogs)
		for _, l := range logs {
			var buf bytes.Buffer
			// Times in the old format, as raft-boltdb writes by default.
			h := &codec.MsgpackHandle{}
			h.TimeNotBuiltin = true
			if err := codec.NewEncoder(&buf, h).Encode(l); err != nil {
				return err
			}
			if err := bucket.Put(u64(l.Index), buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRange deletes the logs from min to max, both included.
func (b *boltStore) DeleteRange(min, max uint64) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		for k, _ := c.Seek(u64(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *boltStore) Set(k, v []byte) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketConf).Put(k, v) })
}

func (b *boltStore) Get(k []byte) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConf).Get(k)
		if v == nil {
			return errKeyNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (b *boltStore) SetUint64(k []byte, v uint64) error { return b.Set(k, u64(v)) }

func (b *boltStore) GetUint64(k []byte) (uint64, error) {
	v, err := b.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("cluster: raft.db: key %q holds %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
