package commitlog

import (
	"encoding/binary"
	"hash/maphash"
)

// offsetMap maps the hash of a record key to the offset of the newest
// record with that key in the dirty section of a log, in a fixed amount of
// memory, as Kafka's SkimpyOffsetMap does: open addressing over one slice
// of slots, each a 128-bit key hash and an offset. Keys themselves are not
// kept; two keys whose 128-bit hashes collide would be treated as one (a
// 2^-128 event per pair).
//
// An offsetMap is used by one goroutine at a time.
type offsetMap struct {
	slots   []byte // slotSize bytes per slot: hash hi, hash lo, offset+1 (0: empty)
	n       int    // slots in use
	limit   int    // most slots the map accepts (its load factor)
	seed1   maphash.Seed
	seed2   maphash.Seed
	lastOff int64 // largest offset put, -1 when empty
}

const slotSize = 24

// loadFactor is the share of slots the map fills before it reports full
// (Kafka's log.cleaner.io.buffer.load.factor).
const loadFactor = 0.9

// newOffsetMap returns a map using about memBytes of memory.
func newOffsetMap(memBytes int) *offsetMap {
	n := max(memBytes/slotSize, 16)
	return &offsetMap{
		slots:   make([]byte, n*slotSize),
		limit:   int(float64(n) * loadFactor),
		seed1:   maphash.MakeSeed(),
		seed2:   maphash.MakeSeed(),
		lastOff: -1,
	}
}

func (m *offsetMap) hash(key []byte) (uint64, uint64) {
	return maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
}

// slot returns the index of key's slot: the one holding its hash, or the
// empty one where it would go.
func (m *offsetMap) slot(h1, h2 uint64) int {
	n := len(m.slots) / slotSize
	i := int(h1 % uint64(n))
	for {
		s := m.slots[i*slotSize:]
		if binary.LittleEndian.Uint64(s[16:]) == 0 ||
			(binary.LittleEndian.Uint64(s) == h1 && binary.LittleEndian.Uint64(s[8:]) == h2) {
			return i
		}
		i++
		if i == n {
			i = 0
		}
	}
}

// full reports whether the map takes no new key.
func (m *offsetMap) full() bool { return m.n >= m.limit }

// put records offset as the newest for key. It returns false, changing
// nothing, when the key is new and the map is full.
func (m *offsetMap) put(key []byte, offset int64) bool {
	h1, h2 := m.hash(key)
	s := m.slots[m.slot(h1, h2)*slotSize:]
	if binary.LittleEndian.Uint64(s[16:]) == 0 {
		if m.full() {
			return false
		}
		m.n++
		binary.LittleEndian.PutUint64(s, h1)
		binary.LittleEndian.PutUint64(s[8:], h2)
	}
	binary.LittleEndian.PutUint64(s[16:], uint64(offset+1))
	m.lastOff = max(m.lastOff, offset)
	return true
}

// get returns the newest offset put for key, or -1.
func (m *offsetMap) get(key []byte) int64 {
	h1, h2 := m.hash(key)
	s := m.slots[m.slot(h1, h2)*slotSize:]
	return int64(binary.LittleEndian.Uint64(s[16:])) - 1
}

// reset empties the map for the next cleaning.
func (m *offsetMap) reset() {
	clear(m.slots)
	m.n = 0
	m.lastOff = -1
}
