// Package uplink forwards the edge's spool to the core (or to any Kafka
// cluster) over the Kafka protocol.
//
// Each lane has its own idempotent producer (its own producer id and its
// own connections, so an alarm never queues behind a telemetry request)
// and sends one window at a time:
//
//  1. read up to MaxBatchBytes of records from the lane (telemetry lingers
//     for a fuller window, 1 s by default, unless a full window is already
//     there, as after an outage; alarms do not linger);
//  2. place each record on a partition with Kafka's default partitioner
//     (murmur2 of the key, so a device's records stay in order on one
//     partition), give each partition's batch the next sequence numbers,
//     and write this plan (uplink-<lane>.state);
//  3. build one RecordBatch v2 per partition, records compressed with
//     snappy, and produce them with acks=all to the partition leaders.
//     The plan is fdatasynced before the send, or, for an alarm window
//     that directly follows the last durable plan on the same partition
//     counts, while the window is on its way (see overlapSync: after a
//     power cut the next plan is then the same window again);
//     Telemetry records are grouped by key inside the batch (a stable
//     sort: each device's records keep their order, and are next to each
//     other so that snappy finds their repeats); across devices, records
//     of one window are not in the order the edge received them. Alarms
//     keep the spool's order;
//  4. once every batch is acknowledged and the plan is durable, release
//     the window from the spool.
//
// A lane keeps its buffers from one window to the next (the window read
// from the spool with a spool.Reader, the records grouped by partition,
// the encoded batches in one arena) and lets them go while it has nothing
// to send: a megabyte window allocated anew every time made the
// collector the biggest cost of a busy edge after mochi itself. The
// arena of a window whose request failed on the way is left to the
// client, which may still hold that request.
//
// After a crash the saved plan is sent again byte for byte equivalent —
// same producer id, epoch, sequences and records — so the broker
// acknowledges the batches it already has without writing them twice.
//
// Guarantee against fluxo core: no loss and no duplicates across edge
// crashes, as long as the core keeps the producer's state (it rebuilds it
// from the log on restart). Over a spool with SyncNever the plans are not
// fdatasynced either, and carry the boot id: after a reboot the lane
// starts a new producer, and what is still spooled goes at least once. Against Apache Kafka or Redpanda the same holds
// while the cluster remembers the producer id (Kafka expires idle producer
// ids after transactional.id.expiration.ms / producer.id.expiration.ms,
// one day by default, and keeps only the last five batches per partition);
// if it has forgotten the producer (UNKNOWN_PRODUCER_ID,
// OUT_OF_ORDER_SEQUENCE_NUMBER), the uplink takes a new producer id and
// sends the window again: at-least-once for that one window, logged and
// counted as a new producer.
//
// # Kafka versions
//
// The uplink builds its own Produce requests (kmsg) and lets franz-go
// negotiate the version with each broker, so it speaks whatever the
// cluster advertises. Produce v13 (KIP-516, Apache Kafka 4.x) names
// topics by id instead of name: every request carries both, the name and
// the topic id learned from the metadata cache (Metadata v10+ returns
// ids), and a request for a topic whose id is unknown (an older broker,
// or one without ids, as fluxo core before v13) is capped at v12, the
// last version that names topics — franz-go's own producer makes the same
// choice. A topic id that goes stale (the topic deleted and created
// again: UNKNOWN_TOPIC_ID) empties the metadata cache and the window is
// sent again with the new id; the new topic does not know the producer,
// so that window goes under a new producer id (at least once).
//
// # Failures
//
// Errors are classified once (classify): a transient one (leader moved,
// broker restarting, timeout, network) is retried with RetryBackoff
// doubling to MaxRetryBackoff (AlarmMaxRetryBackoff, 1 s, on the alarm
// lane: an alarm spooled during an outage goes soon after the link is
// back; a telemetry send that timed out is given
// twice the time on the next try, up to 8 × RequestTimeout, since its
// saved window goes again as it is: over a link too slow for one window
// per RequestTimeout it would otherwise never get through); a lost or fenced producer starts a new one;
// a permanent one (TOPIC_AUTHORIZATION_FAILED, SASL_AUTHENTICATION_FAILED,
// INVALID_RECORD, MESSAGE_TOO_LARGE, UNSUPPORTED_VERSION, a TLS
// certificate that does not verify, a topic still unknown after
// UnknownTopicTimeout, ...) parks the lane: one error log line, the state
// in LaneStats (Parked, ParkReason) for /metrics and /readyz, and a probe
// every ParkBackoff, doubling to MaxParkBackoff, instead of a retry per
// send. A probe is the same step as any send — the saved plan sent again
// as it is, same producer and sequences — so once the cause is fixed (the
// topic created, the ACL granted) the lane resumes with one info line,
// nothing lost and nothing written twice. MESSAGE_TOO_LARGE parks even
// for a batch of several records: lower MaxBatchBytes below the topic's
// max.message.bytes.
package uplink
