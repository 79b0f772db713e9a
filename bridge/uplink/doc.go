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
package uplink
