// Package txn is the transaction coordinator of Kafka's transactions
// (KIP-98): it hands transactional producers their id and epoch, records
// which partitions each transaction touches, and ends transactions by
// having a commit or abort marker written to each of them. It knows
// nothing of sockets: the Kafka protocol server (core/kafka's files 22,
// 24-26, 65 and 66) checks and decodes requests and calls the methods
// here; placement (which broker coordinates which transactional id) and
// the markers' delivery to partition leaders live in core (txn_router.go),
// behind the Cluster interface.
//
// # States
//
// A transactional id moves between Kafka's states:
//
//	Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//	                           │ ──EndTxn(abort), timeout,──▶ PrepareAbort ──markers──▶ CompleteAbort
//	                           │    InitProducerID
//	Complete* ──AddPartitions──▶ Ongoing
//
// InitProducerID bumps the epoch (a new producer id once the epoch would
// pass 32766), which fences the older producer (KIP-98, KIP-360): its
// requests then get PRODUCER_FENCED here, and INVALID_PRODUCER_EPOCH from
// the partitions once a marker at the new epoch reached them. An ongoing
// transaction is aborted first, at a bumped epoch. A transaction older
// than its timeout is aborted the same way, at a bumped epoch, so its
// producer is fenced. While the markers of a Prepare state are being
// written, requests for the id get CONCURRENT_TRANSACTIONS.
//
// # Log format
//
// Every state change is written to a Log, as Kafka writes its
// __transaction_state topic, with kmsg's codecs, big-endian:
//
//	key   TxnMetadataKey v0:   version int16 = 0 | transactional id string
//	value TxnMetadataValue v0: version int16 = 0 | producer id int64 | producer epoch int16 |
//	                           timeout int32 (ms) | state int8 | partitions [int32 count] of
//	                           topic string | [int32 count] partition int32 |
//	                           last update timestamp int64 (ms) | start timestamp int64 (ms)
//
// A value that carries the producer's last epoch (Kafka's
// lastProducerEpoch: the epoch an InitProducerID naming the producer had
// when it aborted the producer's own transaction, so that its retry, at
// this coordinator or the next, is not fenced by that abort) is a
// TxnMetadataValue v1: the same fields in the flexible encoding (compact
// strings and arrays), then tagged fields, where tag 0x4658 holds the
// epoch as an int16; Kafka's readers skip a tag they do not know. Other
// values stay v0.
//
// A nil value is a tombstone: ExpireIDs writes one for a transactional id
// that has had no transaction for Config.IDExpiration (Kafka's
// transactional.id.expiration.ms), and the log's compaction then forgets
// the id. New replays the log, last record per id
// winning; a transaction found in PrepareCommit or PrepareAbort has its
// markers written again (a partition ignores a marker for a transaction
// it no longer has), so a coordinator's failover never leaves one
// undecided.
//
// # Concurrency
//
// Each transactional id has a mutex held across its log writes and state
// changes, taken before the coordinator's mu, which guards the map of ids
// and is never held while taking another lock. Marker writers and the
// timeout loop are goroutines owned by the coordinator; Close cancels and
// waits for them.
package txn
