// Package commitlog is fluxo's segment log: the storage under every core
// topic partition and under the edge's store-and-forward spool.
//
// # Layout
//
// A log is a directory of segments named by the offset of their first
// record, zero-padded to 20 digits, as Kafka names them:
//
//	00000000000000000000.log         batches, back to back
//	00000000000000000000.index       sparse offset → file position
//	00000000000000000000.timeindex   sparse max timestamp → offset
//	00000000000000000000.txnindex    aborted transactions whose marker is here (txnindex.go), if any
//	00000000000000004096.log         the next segment, and so on
//	recovery-point                   offset below which data was fsynced
//	log-start-offset                 first readable offset (DeleteBefore)
//	leader-epoch-checkpoint          leader epoch → first offset
//
// # .log: Kafka RecordBatch v2, stored as received
//
// Every entry is one RecordBatch (magic 2), exactly the bytes a producer
// sent, with the base offset filled in by Append. Compressed batches stay
// compressed. Integers are big-endian:
//
//	 0                   8        12       16 17       21     23
//	+-------------------+--------+--------+--+--------+------+--------------+
//	| baseOffset int64  | length | leader |ma| crc32c | attr | lastOffset   |
//	|                   | int32  | epoch  |gi| uint32 | int16| Delta int32  |
//	+-------------------+--------+--------+--+--------+------+--------------+
//	27                  35                 43                 51     53     57     61
//	+-------------------+-------------------+-------------------+------+------+------+---------
//	| firstTimestamp    | maxTimestamp      | producerId int64  | prod | base | num  | records
//	| int64             | int64             |                   | epoch| seq  | recs | ...
//	+-------------------+-------------------+-------------------+------+------+------+---------
//
// length counts the bytes after itself (the batch is length+12 bytes). The
// CRC32C (Castagnoli) covers attributes to the end: base offset, length,
// leader epoch and magic are outside it, so offsets are assigned and epochs
// stamped by rewriting those fields, never by re-encoding.
//
// This package holds fluxo's one encoder and one parser of the format:
// AppendRecord, FinishBatch and AppendBatch build batches (the log, the
// edge's spool, the uplink's Kafka batches and the benchmarks all use
// them); ParseHeader, ValidateBatch, Batches and Records read them.
//
// # .index and .timeindex
//
// The offset index holds an 8-byte entry every Config.IndexIntervalBytes of
// log (and for each segment's first batch): the batch's last offset minus
// the segment base (uint32) and the batch's file position (uint32). The time
// index holds 12-byte entries: the largest timestamp so far (int64) and the
// last offset minus base (uint32) of the batch where it was reached, added
// when that timestamp grows. Both are mapped read-write while the segment is
// active (space reserved ahead in 64 KiB steps) and cut to their entries
// when it is sealed. An active segment that starts without entries keeps
// both in anonymous memory instead, so that its first write creates one
// file: they are written to their files when it is sealed, put to sleep,
// truncated or closed, synced once it holds 4 MiB, or written past 64 MiB;
// a crash before that leaves a .log without them, and recovery rebuilds
// them.
//
// # Checkpoints
//
// recovery-point and log-start-offset hold 12 bytes: an int64 offset and
// the CRC32C of those 8 bytes; a damaged checkpoint reads as absent.
// leader-epoch-checkpoint is Kafka's text format: "0", the entry count, then
// "epoch startOffset" lines.
//
// # Writes
//
// Append validates each batch (lengths, magic, CRC, record count against
// lastOffsetDelta), assigns offsets, and writes with pwrite at the end of
// the active segment into space reserved ahead with fallocate: a full disk
// is an error from the reservation, before any byte is written, never a
// SIGBUS from a mapped page. The reservation grows in a step that follows
// the write rate: it doubles while each reservation is used up within ten
// seconds of the last (up to Config.PreallocateBytes) and halves otherwise
// (down to 64 KiB), so a log that takes a little data holds little
// reserved space and a busy one calls fallocate rarely.
//
// The active segment opens its files on its first write (a log that is
// opened or created holds no file open) and sleeps once nothing has been
// appended for Config.IdleUnmap (Maintain): pending writes are synced,
// the log and index files cut to their contents, closed and unmapped,
// and the recovery point's file closed. An idle log holds no file open
// and no mapping, so a broker can host thousands of them. A write or fsync failure after bytes may have
// reached the file is sticky. The flush policy (every N batches, every T,
// or never) decides when Append waits for an fsync; concurrent appenders
// share one fsync (group commit). After each fsync the recovery point is
// rewritten.
//
// # Reads
//
// Segments are mapped; Read returns a View of whole batches straight from
// the mapping, bounded by the high watermark the owner sets, reference
// counted so deletion or idle unmapping never pulls bytes from under a
// reader. Sealed segments are mapped on first use and unmapped when idle.
//
// # Recovery
//
// Open scans from the last batch that the offset index of the segment
// holding the recovery point shows below it (each entry on the way is
// checked against the log; without a usable one, or without the index
// file, from the segment's start): batches below the recovery point get header checks, batches
// after it full validation and offset-continuity checks. The first bad batch after the recovery point ends the log there
// (the tail is cut, logged and counted, and later segments that no longer
// continue the log are removed); the indexes of scanned segments are
// rebuilt. Damage below the recovery point is ErrCorrupt: data the log had
// made durable is never silently cut (damage before the resume point shows
// when the batch is read). Indexes of older segments are checked on first
// use and rebuilt if damaged. Open fsyncs nothing: checkpoints are
// rewritten (atomically) only when they change, and a recovered tail past
// the recovery point becomes durable with the next sync; until then
// DurableOffset stays at the recovery point.
//
// # Compaction
//
// A log whose Config.Cleanup includes CleanupCompact is compacted by a
// Cleaner (cleaner.go: the algorithm; offsetmap.go: the key → offset map;
// swap.go: the swap protocol and the manifest's byte layout), which keeps
// the newest record of each key in the sealed segments. Three more files
// may appear:
//
//	cleaner-offset-checkpoint        first dirty offset (12 bytes, as the other offset checkpoints)
//	cleaner-swap                     swap manifest, while a swap is under way
//	<base>.log.cleaned (.index, …)   a cleaned segment being written
//
// Below the first dirty offset, segments were written by the cleaner:
// offsets may jump (gaps), and a batch may hold fewer records than its
// offset span (ValidateStoredBatch), none for the kept last batch of a
// producer. Recovery and index checks accept both there and only there;
// reads skip to the next batch that exists. Open finishes a committed swap
// and deletes the files of an uncommitted one.
package commitlog
