package commitlog

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transaction markers in a cleaning, as Kafka's LogCleaner removes them
// (CleanedTransactionMetadata): a marker goes once no batch of its
// transaction is left in the log and its segment's newest record is older
// than DeleteRetention (the tombstones' horizon), in two passes:
//
//   - the pass that finds data of an aborted transaction drops that data
//     and keeps the marker and the transaction's index entry; the pass
//     that finds the marker with no data before it drops the entry (the
//     transaction has nothing left to hide from read_committed readers)
//     and, past the horizon, the marker;
//   - a commit marker stays while the pass finds data of its transaction
//     (transactional batches of its producer since the producer's previous
//     marker), whether or not compaction removes those now;
//   - a control batch without records (the form Kafka leaves) has nothing
//     to keep;
//   - the last batch of a producer stays whatever it is: it carries the
//     producer's epoch for the next replay.
//
// A marker whose index entry stays keeps its place in the cleaned
// segment's transaction index; the swap that removes a marker or an entry
// removes both from the log at once.
type txnCleaning struct {
	aborted   abortedIndex
	seenAbort map[int64]bool // marker offset → data of its aborted transaction read in this pass
	seenData  map[int64]bool // producer id → transactional data read since its last marker
}

func newTxnCleaning(aborted abortedIndex) *txnCleaning {
	return &txnCleaning{aborted: aborted, seenAbort: map[int64]bool{}, seenData: map[int64]bool{}}
}

// data notes a data batch read by the cleaning; it reports whether the
// batch belongs to an aborted transaction (its data is dropped).
func (tc *txnCleaning) data(b Batch) bool {
	if !b.IsTransactional() || b.ProducerID < 0 {
		return false
	}
	if r, ok := tc.aborted.find(b); ok {
		tc.seenAbort[r.LastOffset] = true
		return true
	}
	tc.seenData[b.ProducerID] = true
	return false
}

// marker notes a control batch read by the cleaning and reports whether
// nothing in the log needs it any more (it may go once past the horizon).
func (tc *txnCleaning) marker(b Batch, raw []byte) bool {
	typ, ok := int16(-1), false
	Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
		if len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key) == 0 {
			typ, ok = int16(binary.BigEndian.Uint16(r.Key[2:])), true
		}
		return false
	})
	data := tc.seenData[b.ProducerID]
	delete(tc.seenData, b.ProducerID)
	switch {
	case b.NumRecords == 0:
		return true // already emptied
	case !ok:
		return false // unreadable: keep it
	case typ == 0: // abort
		return !tc.seenAbort[b.BaseOffset]
	case typ == 1: // commit
		return !data
	}
	return false
}

// keepEntry reports whether the cleaned index keeps the entry of an
// aborted transaction: its data was read (and dropped) in this pass.
func (tc *txnCleaning) keepEntry(a AbortedTxn) bool { return tc.seenAbort[a.LastOffset] }

// knows checks that the cleaning was given every aborted transaction of
// es, the index entries of the segments it cleans, but those whose
// marker is below start (the log start: nobody reads them). An entry it
// was not given was indexed after the caller took the Transactions (a
// replay adding back a missing entry): the cleaning took that
// transaction's data for committed data, and keepEntry would drop the
// entry. It returns errCleaningRace then; the next cleaning is given it.
func (tc *txnCleaning) knows(es []AbortedTxn, start int64) error {
	for _, a := range es {
		if a.LastOffset < start {
			continue
		}
		if !slices.ContainsFunc(tc.aborted[a.ProducerID], func(r AbortedRange) bool {
			return r.FirstOffset == a.FirstOffset && r.LastOffset == a.LastOffset
		}) {
			return fmt.Errorf("%w: aborted transaction of producer %d at %d not given", errCleaningRace, a.ProducerID, a.LastOffset)
		}
	}
	return nil
}
