// Package snapshots defines the file format of fsm snapshots: the applied
// Raft index and the committed routing table, versioned and checksummed.
// (Data-plane partition snapshots will live here too.)
//
// # Format (FormatVersion 1)
//
// A snapshot is a 20-byte header followed by the body. All integers are
// big-endian.
//
//	offset  size  field
//	     0     4  magic: the ASCII bytes "ORFS" (olric-raft FSM snapshot)
//	     4     2  format version: 1 (FormatVersion)
//	     6     2  flags: 0; no flag is defined yet
//	     8     8  body length in bytes, at most MaxBodySize (1 GiB)
//	    16     4  CRC-32C (Castagnoli polynomial) of the body
//	    20     n  body: one msgpack value, State encoded as a map keyed by
//	              the msgpack struct tags ("applied", "routing", and inside
//	              the routing table the tags of package metadata)
//
// Nothing follows the body.
//
// Every change to a single byte of a snapshot is detected: a changed magic,
// version or flags field is refused as such; a longer length finds the input
// truncated and a shorter one finds bytes after the body; a changed checksum
// or body byte fails the CRC, which catches every burst of up to 32 bits.
// TestReadRefusesEveryByteFlip checks all 255 changes of every byte.
//
// # Duties
//
//  1. fsm.FSM.Snapshot (called by Raft's FSM goroutine) captures the applied
//     index and the immutable published routing table in a State.
//  2. The FSMSnapshot's Persist (called by Raft's snapshot goroutine,
//     concurrently with Apply) calls Write with that State. Write only reads
//     the table, which no one modifies once published, so no lock is needed.
//  3. fsm.FSM.Restore (called by Raft's FSM goroutine, never concurrently
//     with Apply) calls Read and installs the State only if Read accepts it.
//
// Write and Read hold no state and are safe to call from any goroutine.
//
// # What Read refuses
//
// Read trusts nothing it reads: a wrong magic (ErrCorrupt), an unknown
// version or flags (ErrUnsupportedVersion), a length over MaxBodySize
// (ErrTooLarge, before allocating anything), a truncated body, bytes after
// the body, a checksum mismatch or a body that is not exactly one msgpack
// value of the State shape (ErrCorrupt), and a state the FSM could never hold
// (ErrInvalidState): a missing routing table, one that fails
// metadata.RoutingTable.Validate, a routing version after the applied index,
// or an uninitialized table that is not empty. The body is read in growing
// chunks up to the declared length, so memory follows the bytes actually
// present, and msgpack lengths inside the body are checked against the body
// before decoding (package strictmsgpack). Write refuses the same invalid
// states, so every snapshot Write produces is one Read accepts.
package snapshots
