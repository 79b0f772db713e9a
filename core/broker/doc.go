// Package broker holds a core node's topics and partitions: the partition
// layer on top of core/commitlog (log end, high watermark, idempotent
// producer state, transactions' ongoing and aborted ranges and the last
// stable offset, transaction markers, leader epoch stamping), topic creation and deletion,
// topic configs mapped onto log configs, and producer id allocation.
//
// Cluster metadata (topics, partition counts, configs, the producer id
// allocator) sits behind the Metadata interface. A single node keeps it in
// one JSON file in the data directory; a cluster keeps it in Raft.
//
// On disk:
//
//	<data-dir>/metadata.json        the single-node Metadata
//	<data-dir>/<topic>-<partition>/ one commitlog.Log per partition
package broker
