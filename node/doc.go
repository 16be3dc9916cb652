// Package node assembles one olric-raft member: the cluster port
// (transport), Raft with raft-boltdb stores and the routing-table FSM (fsm),
// memberlist for discovery and failure detection, and the leader's
// reconcile loop that turns membership into committed routing changes.
//
// # Routing state has one writer
//
// Nothing in this package writes routing state. The leader computes changes
// with metadata.Place and proposes them as Raft log entries; fsm.Apply is the
// only writer, on every member, in log order. This is what makes Olric
// v0.5.5's start-up race (RoutingTable.Start writing while
// updateRoutingCommandHandler read) impossible here: even the first table
// (InitRouting) is a log entry proposed by the elected leader.
//
// # Start-up (New)
//
//  1. Validate the Config (every problem at once; with TLS or a gossip
//     key, that includes loading and checking the files).
//  2. Open raft-boltdb (log + stable store) and the file snapshot store under
//     DataDir; create the FSM. raft.NewRaft restores the latest snapshot into
//     the FSM before returning, so no reader sees a half-restored table.
//  3. Listen on the cluster port (Raft and cluster RPC share it; mutual TLS
//     with Config.TLS) and start Raft; with --bootstrap and no Raft state,
//     bootstrap a one-member configuration.
//  4. Serve cluster RPC, then start memberlist last (advertising incarnation
//     and addresses in node metadata; encrypted with Config.GossipKeyFile),
//     so peers only find us once we answer.
//  5. Start goroutines: watchLeadership; retryJoin (with --join);
//     bootstrapExpect (with --bootstrap-expect and no Raft state).
//
// # Goroutines and who stops them
//
//   - watchLeadership (owned by Node, stopped by Close via n.stop): starts
//     leaderLoop when Raft reports leadership and stops it (and waits) when
//     leadership is lost or the node closes.
//   - leaderLoop (owned by watchLeadership): Barrier, then reconcile steps on
//     every memberlist event (kick, non-blocking, coalesced) and every
//     Timing.ReconcileInterval.
//   - retryJoin, bootstrapExpect (owned by Node, stopped by Close): exit when
//     done or when n.stop closes.
//   - Raft's, memberlist's and the transport's own goroutines are stopped
//     by their Shutdown/Close in shutdown, in reverse dependency order.
//
// # The reconcile loop (leader only, level-triggered)
//
// Each step observes the committed table, memberlist's live members and the
// Raft configuration, makes at most one change, and starts over:
//
//  1. Raft configuration: live gossip members become Raft servers (voters
//     until RaftVoters live voters exist, then non-voters); a healthy
//     non-voter is promoted when a voter is gone; dead servers are removed
//     (a dead voter only once a replacement voter is live). With TLS, a
//     gossip member becomes a server only after the leader's ping of its
//     cluster port succeeded, i.e. both accepted each other's certificate:
//     gossip knows nothing of certificates, so without this check a member
//     with the gossip key but a foreign certificate would be added to the
//     Raft configuration (and weaken the quorum) without ever being able to
//     take part. A refused member is probed again every few reconcile
//     intervals and logged once per incarnation.
//  2. InitRouting, once, from the live members that are Raft servers.
//  3. Members: a new incarnation (restart) drops the member's replicas in the
//     same entry that records it; a new member joins; a member memberlist
//     declared dead (or absent longer than a grace period) is marked failed
//     and its partitions fail over to backups in the same entry; a leaving
//     member is removed once it left memberlist.
//  4. Voter flags in the table follow the Raft configuration.
//  5. Rebalance to metadata.Place's balanced assignment.
//
// Every proposal carries the version it was computed from; fsm rejects it
// if the table moved (a stale leader's computation never lands).
//
// # Readiness
//
// Ready is "applied up to the leader's commit index": a follower asks the
// leader (which confirms leadership with VerifyLeader) for its commit index
// and waits until its own FSM has applied that far. A new leader is ready
// only after its first Barrier of the term.
//
// # Security
//
// Config.TLS (cluster port: Raft and cluster RPC) and Config.GossipKeyFile
// (memberlist) are independent; use both to keep outsiders out: the gossip
// key keeps them out of the member list, the certificates out of Raft, the
// routing table and the data. ReloadTLS (SIGHUP in the server) swaps the
// certificate, key and CA for new connections; the gossip key is read once.
// With BootstrapExpect, a member holding the gossip key but a foreign
// certificate stalls the bootstrap (the others cannot ask it for its Raft
// state) rather than being part of it.
package node
