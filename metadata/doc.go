// Package metadata is the routing-table model of olric-raft: members,
// partitions, replica placement and routing versions.
//
// It is pure: no I/O, no goroutines, no clocks, no randomness, and it imports
// nothing else of olric-raft. Everything here is deterministic so that the
// Raft FSM (package fsm) can validate and install tables identically on every
// member.
//
// # Duties and ordering
//
//  1. The Raft leader's reconcile loop (package node) reads the committed
//     table, decides what must change (a member joined, failed, left, the
//     partitions are unbalanced) and calls the placement functions here
//     (Place) to compute the explicit new assignment; Summarize gives the
//     one-line account of it for the log.
//  2. The leader logs that result, not its inputs, as an fsm command.
//  3. On every member, fsm.Apply clones the current table (Clone), applies the
//     change, runs Validate, sets Version to the Raft index of the entry and
//     publishes the new table with an atomic pointer swap.
//  4. Readers (HTTP API, data plane) load the published *RoutingTable and
//     never modify it: a published table is immutable. Only code holding a
//     fresh Clone may write to it.
//
// Nothing in this package is safe for concurrent mutation; immutable
// published tables are safe for any number of concurrent readers.
//
// # Placement
//
// Place computes a partition assignment for the eligible (alive) members.
// It is a pure function of its arguments: no map iteration order, clock or
// randomness reaches the result, the order of the member list does not
// matter, and ties are broken by member id, then partition id. With n
// eligible members each available partition gets k = min(replicas, n)
// replicas on k different members: a primary and k-1 backups. Place works
// in four steps:
//
//  1. Survivors. Replicas on members that are not eligible are dropped and
//     backups beyond k are trimmed from the end. If the primary was dropped,
//     the first surviving backup (in Backups order) becomes primary
//     (failover). A written partition (Written) that loses every replica
//     becomes unavailable (no primary, no backups): its data is gone, and
//     CP forbids re-creating it empty behind the clients' backs. An
//     unavailable partition stays unavailable until an operator
//     force-assigns it. A partition never written that loses every replica
//     lost no data: it is left without replicas, to be placed afresh in
//     steps 2 and 3 like a partition of a new cluster. A handoff is kept if
//     its primary survived and its target is eligible, otherwise it is
//     cancelled (state active); Place never starts one, and never changes
//     the primary of a partition in handoff (unless that primary is gone).
//  2. Primaries. Partitions without any replica (a new cluster's, and
//     never-written partitions that lost every replica) get the member
//     with the fewest primaries. Then each member's primary count is
//     brought to floor or ceil of A/n (A: available partitions), cheapest
//     step first: promote a backup (swap roles, no data moves); make a
//     member that holds nothing of a partition missing a backup its
//     primary, the old primary taking the backup role (the copy was due
//     anyway); and only then hand the primary to a member that holds
//     nothing of the partition, dropping the old primary.
//  3. Backups. Missing backups go to the member with the fewest backups
//     that holds nothing of the partition.
//  4. Backup balance. Each member's backup count is brought to floor or ceil
//     of B/n (B = A*(k-1)): backups added by this call are re-routed first
//     (free), then roles are swapped where primary balance allows, then
//     backups of over-loaded members move to under-loaded members, and, in
//     the rare case where every such move is blocked by "one replica per
//     member", a role swap plus one move does it (or, when that is pinned,
//     a chain of moves that re-routes copies made by this call).
//
// Two data-safety rules restrict steps 2 and 4: a partition that failed
// over in this call keeps one of its surviving replicas as primary (the one
// that holds the data, never a member that would have to copy it first),
// and, when k >= 2, no partition gives up the last replica it had before
// the call.
//
// Every step takes one unit (a primary or a backup) from a member above
// its target and gives it to one below, lowering the excess by one, so
// Place terminates. Balance, every member's primary count and backup count
// at floor or ceil of the mean, is always achievable (number the available
// partitions 0..A-1 and give partition i the members i, i+1, ..., i+k-1
// mod n, the first as primary), and the result is balanced when cur was
// Place's own result for the previous member set and one member joined,
// failed, left or rejoined. After several members are lost at once, the
// failover rule may leave a member above its primary target; the next call
// (the reconcile loop's next pass) balances, since the partitions have
// failed over by then. A handoff pins its primary, and then balance is the
// best the pinned primaries allow. The property tests check all of this.
//
// Every change of a partition's Primary (failover, balancing, becoming
// unavailable, placing a never-written partition afresh) increments its
// LeaderEpoch by exactly one, compared with cur; otherwise LeaderEpoch is
// unchanged. A new cluster's partitions start at LeaderEpoch 1. Place on an
// already balanced, complete assignment with the same members returns it
// unchanged, so for balanced results Place(Place(x)) == Place(x).
//
// The FSM owns Written and the history (PrevPrimary, PrevEpoch); Place only
// carries them over: PrevPrimary and PrevEpoch are copied from cur
// unchanged, Written is kept for a partition that is available in the
// result and false for an unavailable one (a partition placed afresh was
// not written, so it stays false).
//
// # Movement bound
//
// Let cur' be cur after step 1 and, computed from cur and cur' alone:
//
//   - D: partitions whose primary differs between cur and cur': failovers,
//     written partitions that became unavailable, and partitions without
//     any replica in cur' (a new cluster's, and never-written partitions
//     that lost every replica, whose old primary is gone);
//   - M: missing replica slots, the sum over available partitions of k
//     minus their replicas in cur' (k for each partition without any
//     replica in cur', so a never-written partition placed afresh counts
//     k); Mb: the missing backup slots among them (M less the partitions
//     that have no replica at all, i.e. k-1 for each of those);
//   - Ep: the primary excess, the fewest single-primary transfers between
//     members that balance the primary counts of cur' against A (which
//     includes the partitions without any replica); Eb: the same for
//     backup counts, against B. For counts c over n members and a total T,
//     with ceil = ⌈T/n⌉ and r = T mod n, the excess is
//     sum(max(0, c_m - ceil)) plus, when r > 0,
//     max(0, #{m : c_m >= ceil} - r).
//
// Then, counted by Moves (a replica slot added is a (partition, member)
// pair held after but not before, i.e. one copy of a partition to make),
// for every input (the lower bound on slots assumes no backup beyond
// replicas had to be trimmed):
//
//	M <= replica slots added <= M + Mb + Ep + Eb
//	D <= primary changes     <= D + 3*Ep + 2*(Eb + Mb)
//
// Proof sketch: the primary of a partition without any replica is one of
// its k slots in M and goes to a member with the fewest primaries, which
// raises no excess; each primary step costs at most one copy and raises the
// backup excess by at most one; each backup step costs at most one copy
// (chains of moves re-route only copies made by this call, plus at most
// one old backup); a missing backup costs one copy, plus one unit of
// backup excess when every member short of backups already holds that
// partition (e.g. its only survivor is the member that lost its backups).
// That last case is the Mb term; in random sequences of joins and
// failures it is needed in well under 1% of the steps, so the usual cost is
// M + Ep + Eb. Primary changes: one per primary step (Ep of them), and at
// most two per backup step (a role swap; a role swap plus a move), of which
// there are at most Eb + Ep + Mb. The property tests check both bounds
// after every step.
//
// # Key to partition
//
// PartitionOf maps (dmap, key) to a partition with 64-bit xxhash (XXH64,
// seed 0) over dmap and key concatenated, modulo PartitionCount: Olric's
// function, so that Olric's clients route each key to its primary.
package metadata
