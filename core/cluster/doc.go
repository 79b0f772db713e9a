// Package cluster makes core brokers a cluster: Serf gossip detects which
// members are alive, Raft replicates the cluster metadata (the State:
// brokers, topics, partition replicas, leaders, ISRs, producer ids), and
// the Raft leader is the controller that turns what Serf sees into
// commands, as Consul and Nomad do, and as Kafka's KRaft controller does
// for brokers.
//
// # Serf detects, Raft decides
//
// Serf is advisory. Its events only wake the controller (through a
// 1-buffered, non-blocking signal; Serf's event channel is drained by a
// goroutine that never blocks), and the controller also reconciles the
// full member list every Timers.ReconcileInterval. While this node is the
// Raft leader (checked by polling raft.State and woken by a Raft
// observer), after a Barrier so its State holds everything committed
// before, the controller:
//
//   - registers (RegisterBroker) every alive member with fluxo tags that is
//     unregistered, fenced, or registered with other addresses;
//   - fences (FenceBroker) a registered, unfenced member once Serf has
//     shown it failed for Timers.FailureConfirm, a left or leaving member
//     at once, and a member Serf does not know at all after
//     5 × (FailureConfirm + ReconcileInterval);
//   - adds alive members missing from the Raft configuration as voters,
//     up to 5 voters, then as non-voters.
//
// A failed node is not a removed node: nothing is removed from Raft or
// from State.Brokers automatically. Cluster.Remove (`fluxo cluster
// remove`, Kafka's UnregisterBroker) does that.
//
// Each member's Serf node name is "fluxo-<id>" and its tags are id, kafka
// (the advertised Kafka address), raft (the advertised Raft address) and,
// once Cluster.Leave has begun, leaving=1.
//
// # Commands
//
// Every change is a Command applied by every node's FSM in Raft log order.
// Applying depends only on the State and the command (the proposer picks
// random topic ids), so every node's State at an index is the same. A
// State is never modified once published: each command builds a new one
// that shares the untouched topics (copy on write); a refused command
// publishes nothing. The rules of each command are on its type:
// CreateTopic, DeleteTopic, CreatePartitions, SetConfigs,
// AllocateProducerIDs, AlterPartition, RegisterBroker, FenceBroker,
// RemoveBroker, ReassignPartition; and for security, UpsertScramCredential,
// DeleteScramCredential, CreateACLs, DeleteACLs (the SCRAM users and ACL
// bindings Kafka's admin APIs manage).
//
// # Encoding
//
// A Raft log entry is one byte of command type followed by the command's
// JSON:
//
//	+------+-------------------------------------------+
//	| type | JSON body, e.g. {"id":3} for FenceBroker  |
//	+------+-------------------------------------------+
//	type: 1 CreateTopic, 2 DeleteTopic, 3 CreatePartitions, 4 SetConfigs,
//	      5 AllocateProducerIDs, 6 AlterPartition, 7 RegisterBroker,
//	      8 FenceBroker, 9 RemoveBroker, 10 ReassignPartition,
//	      11 UpsertScramCredential, 12 DeleteScramCredential,
//	      13 CreateACLs, 14 DeleteACLs
//
// The numbers are stored in every node's log: never renumber them. A
// snapshot is the JSON of the State. Raft's own state is in
// DataDir/raft.db (bbolt; the layout of hashicorp/raft-boltdb/v2: bucket
// "logs" of msgpack raft.Log by big-endian index, bucket "conf" for terms
// and votes) and DataDir/snapshots (two kept).
//
// # The Raft port and the forwarding RPC
//
// The Raft address serves two protocols on one listener, told apart by
// the first byte of each connection: 0x01 is a Raft transport stream
// (hashicorp/raft's NetworkTransport), 0x02 one forwarding RPC. Apply on a
// node that is not the leader sends the command to the leader this way;
// Remove and WaitReady use it too. An RPC connection carries one request
// and one response, each a frame of a big-endian length and JSON:
//
//	client → server
//	+------+-------------+---------------------------------------------+
//	| 0x02 | len uint32  | {"op":"apply","type":6,"body":{...},        |
//	|      | big-endian  |  "timeout_ms":9000}                         |
//	+------+-------------+---------------------------------------------+
//	server → client
//	+-------------+----------------------------------------------------+
//	| len uint32  | {"result":{...},"code":"fenced_leader_epoch",      |
//	|             |  "error":"cluster: stale leader epoch"}            |
//	+-------------+----------------------------------------------------+
//
// ops: apply (type and body are an encoded command), status (answers
// {"status":{"has_state","applied_index","leader"}}), remove-server (id),
// keys (key_op list|install|use|remove and key, base64; answers
// {"keyring":{...}}, a KeyringStatus: see Keyring).
// code is empty on success, one per sentinel error (so errors.Is works
// across a forward), not_controller when the server no longer leads (the
// caller retries with the new leader), or other with the text. Frames are
// at most 4 MiB; every read and write has a deadline. A request that
// failed before it was fully written is retried; one that failed after is
// ErrUnknownOutcome, as is a leadership loss while the command was in
// flight.
//
// # Mutual TLS on the Raft port
//
// With Config.TLS set, every connection to the Raft port, Raft stream or
// RPC, is TLS (1.2 or later) with client certificates required: the
// handshake runs on the connection's own goroutine, under the same 5 s
// deadline as the first byte, before anything is read. A peer whose
// certificate does not chain to the cluster CA (or that sends none, or
// speaks plaintext) is refused, logged at warn with its address, and
// counted. Dialing (Raft and RPC) presents this node's certificate and
// verifies the server's chain against the CA pool, with no host name:
// membership is the CA's signature, so any certificate the cluster CA
// signed is a member, whatever address it was dialed at. The framing
// inside the TLS stream is unchanged. ReloadTLS swaps the certificate and
// pool for later handshakes. Without TLS the port is plaintext, and
// anyone who reaches it can change the metadata: keep it on loopback or a
// trusted network.
//
// # Gossip keys
//
// Config.SerfKey encrypts gossip. Keyring (Cluster.Keys, RemoteKeys)
// rotates keys on every member through Serf's key queries; Serf rewrites
// DataDir/serf.keyring (a JSON array of base64 keys, primary first) after
// each change, and a restart reads it back in preference to SerfKey. A
// member gossiping with another key, or none, never joins; memberlist's
// lines saying so are logged at error ("serf key mismatch") and counted.
//
// # Timers and the failover arithmetic
//
// With DefaultTimers (Serf probe 500 ms, probe timeout 250 ms, suspicion
// multiplier 3, FailureConfirm 500 ms; Raft heartbeat and election 1 s),
// a broker that dies is:
//
//   - probed by some member within about one probe interval (each member
//     probes one member per interval): ≤ 0.5 s;
//   - suspected when the direct and indirect probes of that round fail:
//     ≤ 0.5 s;
//   - declared failed when the suspicion times out: 3 × 0.5 s = 1.5 s for
//     up to 10 members (the multiplier scales with log10 of the member
//     count), shortened when other members confirm the suspicion, at most
//     doubled without confirmation (memberlist's SuspicionMaxTimeoutMult is
//     set to 2);
//   - fenced by the controller FailureConfirm later: 0.5 s; the
//     FenceBroker commit is one Raft round trip (milliseconds).
//
// That is about 2 to 3 s from death to a State where its partitions have
// new leaders; brokers watching the State then take writes for them, well
// within 5 s. If the dead broker was also the controller, Raft elects
// another meanwhile (followers notice after one to two heartbeat timeouts,
// 1 to 2 s, and an election takes a round trip), which then confirms the
// failure itself: about 3 to 3.5 s. FastTimers divides all of this by 5
// for tests. ReconcileInterval (1 s) bounds how late a missed Serf
// event is noticed; SerfReapInterval and SerfReconnectTimeout decide how
// long Serf remembers a failed member (24 h by default).
//
// # Contact with the leader
//
// LastContact says how long ago this node last heard from the Raft
// leader (about 0 on the leader, which Raft steps down once it has not
// reached a quorum for RaftLeaderLease): a ticker refreshes an atomic
// every tenth of RaftHeartbeat from raft's state and LastContact, so the
// broker can consult it on every request. A broker that stays out of
// contact for its leader lease (broker.Config.LeaderLease) stops acting
// as leader; CatchUp is what it waits for before it resumes. It also
// calls ReportCutOff, which sets this member's cutoff Serf tag until it
// resumes: the controller fences an alive member that has carried the
// tag for FailureConfirm plus two heartbeats (2.5 s). Gossip goes around
// a partial partition (a member cut off from the controller but not from
// a third member is probed through it and stays alive to Serf), Raft
// does not; the tag carries the broker's own verdict to the controller
// by the path that still works.
// Config.Network replaces the operating system's network for the Raft
// port's dials and for gossip, so tests can cut a member off without
// stopping it.
//
// # Metrics
//
// With Config.Registerer set, a Cluster exports (names are stable):
//
//	fluxo_cluster_raft_state{state="follower|candidate|leader|shutdown"}  1 for this node's state
//	fluxo_cluster_is_controller                                          1 if this node leads Raft
//	fluxo_cluster_members{status="alive|leaving|left|failed"}            fluxo members Serf knows
//	fluxo_cluster_brokers{state="live|fenced"}                           registered brokers in the State
//	fluxo_cluster_leader_elections_total                                 partition leader changes applied here
//	fluxo_cluster_rpc_rejected_total{reason="not_tls|no_certificate|bad_certificate|handshake|unknown_type"}
//	                                                                     Raft port connections refused before any frame
//	fluxo_cluster_serf_key_errors_total                                  gossip refused for a key mismatch
//
// # Logging
//
// The Config.Logger receives this package's logs (controller decisions at
// info, with fields broker, topic, partition, leader, epoch) and, through
// adapters, raft's (hclog) and serf's and memberlist's (standard log),
// with component=raft|serf|memberlist. The field node is always this node.
package cluster
