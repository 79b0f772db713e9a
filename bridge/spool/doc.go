// Package spool is the edge's store-and-forward queue between MQTT and the
// core: every message a device published and the edge accepted is
// appended here before the device's acknowledgement goes out, and stays
// until the core has acknowledged it.
//
// A spool is two segment logs (core/commitlog), one per lane:
//
//	<dir>/alarm/       alarms and command answers: sent first, never evicted
//	<dir>/telemetry/   everything else: evicted oldest first when the disk
//	                   budget is full, or when older than MaxAge
//
// Records: key = device id, value = payload, headers = the message's
// headers plus the core topic (fluxo.core_topic), timestamp = receive
// time. Each Append writes one RecordBatch v2 per lane. Submit, the
// asynchronous form the edge uses, encodes the message into the lane's
// open batch and returns; one goroutine per lane writes every batch filled
// meanwhile (one CRC and one pwrite each), fsyncs once for all of them
// under SyncAlways, and then reports to each message's done function, in
// submission order. Under load (a write of 64 messages or more) the
// telemetry lane waits Config.CommitDelay (2 ms) before its next write,
// so that more messages share each fsync. Concurrent Appends share fsyncs
// too (group commit in core/commitlog).
//
// Accounting: every accepted message ends in exactly one counter —
// delivered (Release after the core acknowledged it), evicted (budget),
// expired (MaxAge, or a reader's Expire: the uplink skips telemetry past
// its MQTT 5 message expiry), or still spooled. Each lane keeps its own
// accounting lock, so the alarm lane never waits for telemetry's.
//
// Release only moves the lane's start; the log is trimmed to it (start
// checkpoint, whole segments deleted) by the maintenance goroutine once a
// second, by the budget check when space is short, and by Close, so that
// no file-system work sits between two alarms of the alarm lane.
package spool
