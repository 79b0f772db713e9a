package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/txn"
)

// The transaction APIs, one file per API key (22_init_producer_id.go,
// 24_add_partitions_to_txn.go to 28_txn_offset_commit.go,
// 65_describe_transactions.go, 66_list_transactions.go), hand their
// requests to the transaction coordinator (core/txn) that owns the
// transactional id; TxnOffsetCommit goes to the group coordinator, which
// keeps the offsets until the transaction ends. The versions served are:
//
//	InitProducerID v0-v4        AddPartitionsToTxn v0-v3   AddOffsetsToTxn v0-v4
//	EndTxn v0-v4                WriteTxnMarkers v0-v1      TxnOffsetCommit v0-v4
//	DescribeTransactions v0     ListTransactions v0-v1
//
// (AddPartitionsToTxn v4+ is KIP-890's broker-to-broker verification, and
// EndTxn v5 / TxnOffsetCommit v5 its epoch bump per transaction: not
// served, so clients use the classic protocol.) A request for an id this
// broker does not coordinate gets NOT_COORDINATOR, and the client looks
// the coordinator up again (FindCoordinator with key type 1).
//
// Authorization (authz.go): WRITE on the transactional id for
// InitProducerID, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
// TxnOffsetCommit (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); WRITE on each
// topic added (TOPIC_AUTHORIZATION_FAILED, the other partitions
// OPERATION_NOT_ATTEMPTED); READ on the group for AddOffsetsToTxn and
// TxnOffsetCommit (GROUP_AUTHORIZATION_FAILED) and on each topic committed
// (TOPIC_AUTHORIZATION_FAILED); CLUSTER_ACTION on the cluster for
// WriteTxnMarkers (CLUSTER_AUTHORIZATION_FAILED); DESCRIBE on the id to
// describe or list it.

// Txns finds the transaction coordinator of each transactional id, and
// writes transaction markers to the partitions this broker leads.
type Txns interface {
	// Coordinator returns this broker's coordinator for id, or nil when
	// another broker (or, right now, none) coordinates it.
	Coordinator(id string) *txn.Coordinator
	// Local returns every transaction coordinator this broker runs.
	Local() []*txn.Coordinator
	// Find names the broker coordinating transactional id key and its
	// Kafka address, or returns a Kafka error code.
	Find(ctx context.Context, key string) (node int32, addr string, code int16)
	// OffsetsPartition is the __consumer_offsets partition of group.
	OffsetsPartition(group string) int32
	// WriteMarkersLocal writes m's marker to each of its partitions, as
	// their leader, and returns a Kafka error code per partition.
	WriteMarkersLocal(ctx context.Context, m txn.Markers) map[txn.Partition]int16
}

// fencedCode maps PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for request
// versions below since, which predate the code (KIP-588).
func fencedCode(code int16, version, since int16) int16 {
	if code == kerr.ProducerFenced.Code && version < since {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
