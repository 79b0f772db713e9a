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
// Each Append writes one RecordBatch v2 per lane: record key = device id,
// value = payload, headers = the message's headers plus the core topic
// (fluxo.core_topic), timestamp = receive time. Group commit: concurrent
// appends (one per device connection) share fsyncs under SyncAlways.
//
// Accounting: every accepted message ends in exactly one counter —
// delivered (Release after the core acknowledged it), evicted (budget),
// expired (MaxAge), or still spooled.
package spool
