// Package dataplane is olric-raft's data plane: the per-member storage
// engine (Engine) and the service that routes DMap operations to partition
// primaries (Service). DESIGN.md §4 and §5 are the contract.
//
// # Engine
//
// An Engine holds the partitions of this member. Each partition is a set of
// DMaps, each DMap a table of values (bytes, with a version, an optional
// expiry and an access time) and a separate namespace of locks. A mutex per
// partition serializes everything done to it, so every operation is
// linearizable per key; operations on different partitions run in
// parallel.
//
// Versions. Every write to a partition takes the partition's next sequence
// number seq; the written key's version is epoch<<40 | seq, where epoch
// (< 2^24) is the leader epoch the primary serves the partition at. Since
// the sequence number travels with the partition (snapshots, replicated
// mutations) and epochs only grow, versions are unique and increase across
// failovers. A lock's fencing token is the version of the mutation that
// took it.
//
// Fencing. Each partition has a fence epoch, raised by Do (to its epoch),
// Fence, Snapshot, ApplyMutation and Install, and never lowered. Do and
// ApplyMutation with an older epoch fail with ErrFencedEpoch, checked
// under the partition lock: once Fence(p, e) returns, no operation of an
// epoch before e changes p.
//
// Mutations. Every change — client writes, lazy and background expiry,
// evictions, request results — is computed as a Mutation and applied by one function
// (applyMutation); Do reports each to Engine.OnMutation, and
// ApplyMutation applies a primary's mutations on another engine, in
// sequence order (ErrSeqGap otherwise), reaching the same state.
//
// Request ids. A write carrying a Request.RequestID (the X-Request-Id
// header, at most MaxRequestIDLen bytes) names one logical write: a client
// that got an indeterminate result retries with the same id. Per
// partition a dedupe table keeps the results of recent writes by id; Do of
// a write whose id has a live result returns a copy of it — the Response,
// or an error with the first one's sentinel and text — and applies
// nothing (no mutation, no sequence number), even after a failover. An id
// reused for a different request (op, DMap, key or arguments differ;
// Wait and routing fields do not count) fails with ErrInvalid. Recorded:
// successes and the definitive failures decided against the partition's
// state (not_found, key_exists, version_mismatch, not_a_number, overflow,
// locked, no_such_lock, full). Not recorded, so a retry runs again:
// validation errors, fencing, unavailability and context errors
// (including a lock wait given up). A lock with Wait checks the table at
// every attempt, so two attempts waiting side by side get one token.
// Reads ignore ids. Bounds (Config): at most DedupeEntries results
// (default 4096) and DedupeBytes (default 1 MiB; getput's previous value
// counts) per partition, oldest dropped first, the newest always kept; a
// result answers for DedupeWindow (default 5 minutes) after it was
// recorded, by the engine clock (a recording time never precedes the
// previous one's), and is dropped once a newer record is a window
// younger. The table is state of the partition: the record travels on
// the write's last mutation (Mutation.RequestID and Result; a write that
// changed nothing gets a MutationRecord), in PartitionSnapshot.Requests,
// and is forgotten by Drop. Its content depends only on the records and
// the bounds, never on when a clock was read, so a backup replaying the
// mutations or installing a snapshot holds the same table; only lookups
// read the local clock (clock skew between primaries stretches or
// shortens the window after a handover).
//
// Expiry and eviction. Expired keys are deleted when touched (lazily) and
// by a background cycle that samples keys with an expiry per DMap and
// partition, Redis style. Per-DMap limits (max keys, max bytes, per
// partition) evict by sampled LRU or refuse writes (ErrFull); max idle
// evicts keys not read or written for that long. Only a partition's
// primary expires or evicts: a backup applies its primary's deletions.
// Every decision reads the injected clock.
//
// Memory. A key and its value live in one pointer-free allocation: a
// 24-byte header (version, expiry, access time), the two lengths as
// uvarints, the key and value bytes (see kvEntry). Per DMap and partition,
// an extendible hash table of Go maps keyed by the key's 64-bit hash holds
// one pointer per key (see kvTable); buckets split before their map would
// grow, so loading leaves no garbage. 16-byte keys with 100-byte values
// take about 180 bytes per key live, 190 of heap in use (see
// BenchmarkEngineMemory1M), and the garbage collector scans only the map
// slots. Values handed out by Get are copies.
//
// # Engine duties
//
// Which goroutine calls what, and what may run concurrently:
//
//  1. Request goroutines (the Service serving a local or forwarded
//     request) call Do, for any partition, concurrently. Do validates the
//     request without a lock, then holds the partition's mutex for the
//     whole operation. A lock that is held is waited for without the
//     mutex (re-taken for each attempt).
//  2. The Service's routing and transfer goroutines call Fence, Drop,
//     Holds, Snapshot and Install, each under the partition's mutex,
//     concurrently with Do on this and other partitions. Snapshot copies
//     under the mutex and sorts after releasing it; Install builds the new
//     state before taking the mutex and swaps it in.
//  3. A replication receiver calls ApplyMutation, in sequence order per
//     partition; it makes this engine a non-primary for the partition
//     until a Do serves it again.
//  4. The expiry goroutine (Start starts it, Close stops it and waits)
//     runs a cycle every ExpiryInterval: it visits partitions in turn,
//     holding one partition's mutex at a time, for at most a quarter of
//     the interval per cycle, and changes only partitions it is serving
//     as primary at their current fence epoch.
//  5. OnMutation is called by whichever goroutine applied the mutation (a
//     Do caller or the expiry goroutine) with the partition's mutex held,
//     in sequence order per partition. It must not block or call the
//     Engine. For a write with a request id the operation's mutations are
//     reported together when it ends (the last carries the result), still
//     under the same mutex hold.
//  6. Stats may be called from any goroutine: it locks each partition in
//     turn and reads atomic counters.
//
// Lock ordering: a goroutine holds at most one partition mutex at a time
// and never waits (for a lock, a channel, I/O) while holding it; the
// engine has no other lock (configuration is read-only after NewEngine,
// counters are atomics). The injected clock is read under the mutex: it
// must not block.
//
// # Service
//
// A Service routes each Request to its partition's primary, serves the
// partitions this member leads, replicates them synchronously to their
// backups, and applies what its own primaries send it. It reads routing
// through the small Routing interface (the node's committed table and
// WaitRouting) and calls other members through Caller (the cluster RPC):
// methods dmap.do, dmap.transfer (with FenceOnly: dmap "fence"),
// dmap.release and dmap.replicate.
//
// Routing a request (Do, any goroutine):
//
//  1. Compute the partition from the committed table; an unavailable
//     partition fails at once with ErrUnavailable.
//  2. Serve it locally when this member is the primary, else forward it
//     with the table's version and the partition's leader epoch.
//  3. The primary (local) waits, bounded, for its own table to reach the
//     request's version, refuses with ErrStaleRouting if it is not the
//     primary at that epoch, answers "not ready" while it is still filling
//     the partition, has the partition marked written (a committed
//     mark_written entry, once per partition and epoch) before its first
//     write, and runs the operation on the Engine at the partition's epoch
//     (the engine's fence turns a race with a primary change into
//     ErrStaleRouting). It serves nothing without a current primary lease
//     (LeaseValid). Then, whatever the result, it waits until every
//     in-sync backup applied the partition up to its sequence number
//     (see Replication), and a read checks its lease again before it
//     answers.
//  4. The forwarder retries stale and not-ready answers and unreachable
//     primaries until RouteTimeout, then fails with ErrUnavailable; a write
//     whose request may have reached the primary fails with
//     ErrIndeterminate instead of being retried.
//
// Following routing (OnRouting, called by the node's routing goroutine in
// version order, possibly skipping versions):
//
//  1. Partitions no longer led here are fenced at their new epoch at once.
//  2. Partitions newly led here start empty when they are fresh (no
//     previous primary, or never written); otherwise a transfer goroutine
//     pulls them from the previous primary (dmap.transfer: it fences the
//     partition at the new epoch and snapshots it under the partition
//     lock), installs the snapshot, starts serving, and tells the previous
//     primary to drop its copy (dmap.release). If the previous primary is
//     failed or removed, or never held the data, the loss is reported to
//     the leader, which marks the partition unavailable. A partition this
//     member was promoted to from its in-sync copy (Partition.Promoted, and
//     the copy here is from the previous epoch) is not pulled: it serves
//     once the previous primary confirmed it fenced the partition
//     (dmap.transfer with FenceOnly) or is failed or removed in the table
//     (the leader fails a member only after its lease surely expired).
//  3. Backups are attached and detached (see Replication).
//
// # Replication
//
// The routing table lists, per partition, the backups and which of them are
// still syncing (Partition.Syncing); the others form the in-sync set. The
// primary acknowledges nothing until every in-sync backup has applied the
// partition up to the sequence number the request left it at (PacificA:
// the configuration is held by the Raft leader, the data path is the
// primary's).
//
//  1. Attach. When this member serves a partition, every backup in the
//     table gets a copy first: Engine.BackfillSnapshot copies the
//     partition under its lock and, under the same hold, registers the
//     backup and queues the copy on the backup's sender, split into
//     chunks of BackfillChunkBytes (default 4 MiB; chunk.go), so the
//     mutations that follow (Engine.OnMutation, also under the partition
//     lock) are queued right after its last chunk, with no gap and no
//     overlap.
//  2. Send. One sender goroutine per backup member sends, one batch at a
//     time (up to 8192 mutations or 8 MiB; one chunk of a copy), from
//     two lanes: copies, and
//     the mutations queued behind a copy until it is delivered, go in the
//     bulk lane, paced to BackfillRate bytes per second (default
//     256 MiB/s); the mutations of attached partitions go in the other
//     lane, first, so a copy never delays another partition's writes.
//     Order is kept per partition. A batch is encoded once into a buffer
//     of its size and retried for ReplicationTimeout. The backup
//     (serveReplicate) checks each item against its own committed table —
//     the sender must be the partition's primary at that epoch and this
//     member one of its backups, waiting for the sender's routing version
//     first — stages the chunks of a copy in order (a chunk out of order
//     drops the staged copy and is refused), installs the whole copy with
//     its last chunk (remembering the epoch it is a backup at) and
//     applies mutations with Engine.ApplyReplicated, which skips
//     resent ones and refuses gaps and older epochs (fenced_epoch).
//  3. Acknowledge. The backup answers its sequence number per partition;
//     waiters (waitReplicated) are woken on every answer and every new
//     table.
//  4. Failure. A backup that refuses an item, or does not answer a batch
//     within ReplicationTimeout, is marked failed for every partition it
//     backs here and reported to the leader (node.replicas), which removes
//     it from those partitions' backups in one committed entry; the wait
//     then ends without it. The reconcile loop places a new backup, which
//     starts syncing. A primary that cannot reach the leader either cannot
//     get the backup removed, so it acknowledges nothing: a minority side
//     refuses writes.
//  5. In sync. Once a syncing backup applied its copy and the mutations
//     queued behind it in the bulk lane, it joins: every request waits
//     for it from then on, as for an in-sync backup, and the highest
//     sequence number acknowledged before is its target. Once it applied
//     that target the primary reports it in sync (the replica_in_sync
//     entry). From then on it may be promoted: it holds every
//     acknowledged write. (Reporting it at its copy lost a write
//     acknowledged while it was syncing and still queued for it when the
//     leader promoted it: found by the Jepsen harness.)
//
// After any change of primary the FSM marks every backup syncing (a
// surviving backup may hold a write the new primary never saw, or miss
// one it did), so every backup is refilled from the new primary — except
// the previous primary of a promotion when it answered the fence with the
// new primary's own sequence number: both copies are then the previous
// primary's stream up to that number, so it resumes as a backup from its
// own copy (a Resume item instead of a copy), which halves what a staged
// move copies. A backup
// that is no longer listed drops its copy, unless the new primary may
// still pull it or it was promoted and is still fencing the primary before
// it. A copy travels in chunks, so a partition of any size reaches its
// backups; one value must still fit one RPC frame (64 MiB), and so must a
// partition pulled whole from a previous primary when no backup was in
// sync (the stop-copy-switch handover, see above).
//
// A forwarded request whose primary stops answering (paused, cut off) is
// given up when the routing table moves its partition to another epoch: a
// read is retried on the new primary, a write fails as indeterminate.
//
// Goroutines: transfer goroutines, one sender per backup member and the
// report goroutine are owned by the Service and stopped by Close (which
// cancels their context and waits); at most TransferConcurrency pulls are
// in flight, and the semaphore is held only around a pull, never across a
// backoff. Locks, in the only order they are taken: the service's mutex
// (mu, per-partition roles), an engine partition lock, then the
// replication mutex (rep.mu, replication progress). None is held across
// network I/O.
package dataplane
