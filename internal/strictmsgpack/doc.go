// Package strictmsgpack decodes msgpack from untrusted bytes without trusting
// any length those bytes declare.
//
// vmihailenco/msgpack/v5 allocates a slice of the declared element count
// before it decodes the elements, so five bytes (an array32 header claiming
// 2^32-1 elements) can make it try to allocate hundreds of gigabytes: a
// runtime panic or a fatal out-of-memory, not an error. Unmarshal first walks
// the input once (Check), iteratively and without allocating per value, and
// only hands it to msgpack when it is exactly one well-formed value whose
// every declared length is backed by bytes that are really there. Every array
// element and map entry occupies at least one byte, so the decoder then
// allocates O(len(b)) at most.
//
// It is shared by the snapshot body (package snapshots) and the Raft command
// body (package fsm), the two places that decode bytes that came from disk or
// the network.
//
// # Duties
//
//  1. Callers (fsm.Decode on Raft's FSM goroutine, snapshots.Read on
//     whichever goroutine restores) pass a complete byte slice; nothing is
//     streamed.
//  2. Check walks it once, iteratively (no recursion, so no stack growth
//     from hostile nesting), keeping a fixed-size stack of at most
//     MaxDepth+1 counters.
//  3. Only then does Unmarshal let msgpack decode, refusing unknown fields.
//
// The package holds no state; every function is safe for concurrent use.
// It would sit better in the module's internal/ tree; it lives under
// snapshots/ only because fsm and snapshots both need it.
package strictmsgpack
