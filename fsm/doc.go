// Package fsm is the hashicorp/raft FSM of olric-raft: it applies committed
// routing commands and publishes each committed routing table.
//
// # Commands
//
// A command in the Raft log is one CommandType byte, one format-version
// byte (CommandFormatVersion) and a msgpack body: InitRouting for
// CommandInitRouting, Change for every other type (Encode, Decode). Log
// entries carry results, not inputs: the leader computes the new members
// and partitions (package metadata's placement) from the table at
// Change.ExpectVersion and logs them; Apply only checks and installs them.
//
// # Duties
//
// Which goroutine calls what, per hashicorp/raft's fsm.go contract:
//
//  1. Raft's FSM goroutine (runFSM) calls Apply for every committed
//     LogCommand entry, in log order, one at a time. Apply may also be given
//     other log types (a BatchingFSM would be): it only advances the
//     applied index for them.
//  2. The same goroutine calls Snapshot, never concurrently with Apply.
//     Snapshot only captures the immutable published table and the applied
//     index, so it returns at once.
//  3. Raft's snapshot goroutine calls Persist on the FSMSnapshot, while the
//     FSM goroutine keeps calling Apply. Persist encodes the captured table
//     (snapshots.Write), which no one modifies, into the sink, then closes
//     the sink (or cancels it on error). Release does nothing.
//  4. Raft's FSM goroutine calls Restore (installing a snapshot sent by the
//     leader, or at start-up), never concurrently with Apply or Snapshot.
//     Restore reads and checks the snapshot (snapshots.Read) before taking
//     the lock, then replaces all state at once; a refused snapshot changes
//     nothing.
//  5. Any goroutine may call Routing, AppliedIndex, WaitApplied, Subscribe
//     and its cancel function, concurrently with all of the above. Readers
//     never lock: Routing is one atomic pointer load.
//
// mu serializes Apply, Snapshot and Restore anyway, so calling them from
// other goroutines (tests, tools) is safe too.
//
// # Apply
//
// Apply is deterministic (no clocks, randomness or map iteration order) and
// never panics, on any input: it validates rather than recovers. For each
// log, in order:
//
//  1. A log whose index is not after the applied index is refused
//     (ErrIndexRegression) and changes nothing.
//  2. A log that is not a LogCommand only advances the applied index.
//  3. The command is decoded. An unknown type or format version is logged
//     at WARN and skipped (ErrUnknownCommand): members of a newer release
//     may write commands this one does not know during a rolling upgrade.
//  4. InitRouting is valid only on an uninitialized FSM
//     (ErrAlreadyInitialized); a Change only on an initialized one
//     (ErrNotInitialized), with ExpectVersion equal to the current routing
//     version (ErrVersionConflict) and the shape its type requires
//     (ErrInvalidChange; see the CommandType constants).
//  5. Copy, change, check: the current table is cloned; Change.Remove,
//     then Change.Upsert, then Change.Partitions (each replacing the
//     partition with its ID) are applied to the clone; then (a) every
//     replaced partition whose primary changed has a higher LeaderEpoch and
//     every other replaced partition the same one (ErrEpochRegression), (b)
//     no member that was removed, given a new incarnation or newly marked
//     failed holds a replica (ErrStaleReplica), (c) the table passes
//     metadata's Validate (ErrInvalidChange).
//  6. On success the new table's Version is the log index; the table is
//     published with one atomic pointer store, and one line is logged at
//     INFO (version, command, reason), or at WARN for CommandForceAssign,
//     which loses the data of the partitions it reassigns.
//  7. On any failure the published table is unchanged and
//     ApplyResult.Err matches ErrRejected and the specific sentinel.
//  8. Except in step 1, the applied index then advances to the log index,
//     whether the command succeeded or not.
//
// # Ordering rules
//
//  1. A table is published before the applied index that includes it, so a
//     reader that sees AppliedIndex() >= i and then loads Routing() gets a
//     table that includes log i (WaitApplied relies on this).
//  2. A published table is never modified: Apply builds a fresh clone.
//  3. Waiters are woken after the applied index advances and after mu is
//     released: the advance closes a channel and installs a new one (no
//     lock held while waking, no goroutine per waiter).
//  4. Subscribers are then offered the new table without blocking: each
//     subscription's channel holds one table and a stale one is replaced
//     by the newest, so Apply never waits for a subscriber, and an older
//     table is never offered after a newer one.
//  5. Restore publishes the restored table before its applied index, then
//     wakes waiters and offers the table, like Apply.
//
// # Applied index
//
// AppliedIndex is the index of the last log Apply saw, or the index stored
// in the last restored snapshot. Raft hands a plain FSM only LogCommand
// entries, so it may trail raft's own applied index by no-op, barrier and
// configuration entries: wait for a routing version (a command's index)
// with WaitApplied, and for "caught up with the leader" use raft's
// Barrier or AppliedIndex.
package fsm
