// Package group is the coordinator of classic consumer groups: the
// JoinGroup/SyncGroup rebalance protocol that Kafka clients run with their
// own assignors (range, roundrobin, sticky, cooperative-sticky), member
// heartbeats and session timeouts, and committed offsets. It knows nothing
// of sockets: the Kafka protocol server decodes a request, calls the
// Coordinator method of the same name with it, and writes back the
// response the method returns, at the request's version.
//
// The coordinator does not read the members' metadata or assignments,
// except to learn which topics a "consumer" group subscribes to, for
// offset retention and OffsetDelete: it is protocol-agnostic, as Kafka's is.
//
// # States
//
// A group moves between Kafka's states:
//
//	  ┌──────────────────────────┐
//	  ▼                          │
//	Empty ──▶ PreparingRebalance ──▶ CompletingRebalance ──▶ Stable
//	  │          ▲  ▲                        │                 │
//	  ▼          │  └────────────────────────┘                 │
//	Dead         └─────────────────────────────────────────────┘
//
//	Empty               → PreparingRebalance   a member joins
//	PreparingRebalance  → CompletingRebalance  every member rejoined, or the rebalance timeout passed
//	PreparingRebalance  → Empty                the same, with no member left
//	CompletingRebalance → Stable               the leader's assignments are stored
//	CompletingRebalance → PreparingRebalance   a member joins with new metadata, leaves, fails to sync
//	Stable              → PreparingRebalance   the leader or a member with new metadata rejoins,
//	                                           a member leaves, a session expires, a member fails to sync
//	Empty               → Dead                 DeleteGroups, or its last offsets expire or are deleted
//
// A Dead group answers as if it did not exist and is dropped once its
// tombstones are written.
//
// PreparingRebalance collects JoinGroup calls and holds them. It ends when
// every member has rejoined and no member id handed out with
// MEMBER_ID_REQUIRED is still expected, or when the largest rebalance
// timeout among the members has passed; dynamic members that have not
// rejoined by then are removed. A group leaving Empty first waits
// InitialRebalanceDelay, longer while members keep arriving (Kafka's
// group.initial.rebalance.delay.ms). The next generation then starts, its
// protocol is the one every member supports that most members prefer, and
// every held JoinGroup is answered; the leader's answer lists the members
// with their metadata.
//
// CompletingRebalance holds the followers' SyncGroup calls until the
// leader's SyncGroup brings the assignments; once they are stored in the
// log, every member gets its own and the group is Stable. Members that do
// not send SyncGroup within the rebalance timeout are removed, and the
// group rebalances.
//
// In Stable, heartbeats keep sessions alive; a member that misses them for
// its session timeout is removed and the group rebalances. A JoinGroup from
// the leader, or from a member whose metadata changed (a cooperative
// consumer that revoked partitions, a new subscription), starts a
// rebalance; a follower rejoining with unchanged metadata gets the current
// generation back. During a rebalance, heartbeats answer
// REBALANCE_IN_PROGRESS, and once it completes, calls that carry the old
// generation (heartbeats, offset commits) answer ILLEGAL_GENERATION.
//
// Static members (group.instance.id, KIP-345) are not removed when they
// fail to rejoin in time, only when their session expires or LeaveGroup
// names them; one that restarts takes over its membership, fencing the old
// member id with FENCED_INSTANCE_ID, and keeps its assignment without a
// rebalance when the group is Stable.
//
// # Log format
//
// Offsets and group metadata are written to a Log as Kafka writes them to
// its __consumer_offsets topic, with kmsg's codecs, big-endian:
//
//	offset commit   key   OffsetCommitKey v1:    version int16 = 1 | group string | topic string | partition int32
//	                value OffsetCommitValue v3:  version int16 = 3 | offset int64 | leader epoch int32 |
//	                                             metadata string | commit timestamp int64 (ms)
//	                  or OffsetCommitValue v1:   version int16 = 1 | offset int64 | metadata string |
//	                                             commit timestamp int64 | expire timestamp int64
//	                                             (for an OffsetCommit v2-v4 with a retention time)
//	group metadata  key   GroupMetadataKey v2:   version int16 = 2 | group string
//	                value GroupMetadataValue v3: version int16 = 3 | protocol type string | generation int32 |
//	                                             protocol nullable string | leader nullable string |
//	                                             state timestamp int64 (ms) | members [int32 count] of
//	                                             member id string | instance id nullable string |
//	                                             client id string | client host string |
//	                                             rebalance timeout int32 (ms) | session timeout int32 (ms) |
//	                                             subscription bytes | assignment bytes
//
// Strings carry an int16 length, bytes an int32 length, nullable strings -1
// for null. A nil value is a tombstone. Group metadata is written when the
// leader's assignments arrive, when a group becomes Empty, and when a
// static member takes over its membership; an offset commit is answered
// once its records are durable. On New the log is replayed, last record
// per key winning: offsets come back, and a group whose last metadata has
// members comes back Stable with them, each member having a session
// timeout from then to heartbeat. Keys of other versions (Kafka's newer
// group types) are skipped.
//
// Transactional offset commits (TxnOffsetCommit, txn.go) are offset
// commit records in a transactional batch of the producer (a TxnLog), and
// count only from the commit marker of that producer's transaction that
// follows them in the log (an abort marker drops them); on replay, those
// with no marker yet are pending again.
//
// # Where the group code lives
//
// Three layers, each in its own place:
//
//   - this package: one coordinator, the groups of one __consumer_offsets
//     partition (state machine, rebalances, offsets, their records);
//   - core/group_router.go: placement, which coordinator a group belongs
//     to (Kafka's hash of the group id over the partitions of
//     __consumer_offsets), starting and stopping coordinators as this
//     broker gains and loses their partitions' leadership, and the log a
//     coordinator writes (its partition, acks=all);
//   - core/kafka's files 08, 09, 11-16 and 42 (groups.go for what they
//     share): the protocol, decoding each request, authorizing it, and
//     calling the coordinator method of the same name.
//
// # Concurrency
//
// Each group has two locks, taken in this order: appendMu, which makes the
// group's log writes one at a time so that the log and memory see them in
// the same order, then mu, which guards the group's state. The
// coordinator's own mu, guarding the map of groups, is taken last and
// never held while taking another. Blocked JoinGroup and SyncGroup calls
// hold no lock: they wait on a channel that the rebalance answers. Timers
// are time.AfterFunc callbacks that take the group's mu; Close stops them,
// answers the blocked calls and waits for every callback and background
// write to finish.
package group
