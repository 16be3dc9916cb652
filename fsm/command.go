package fsm

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/metadata"
)

// CommandType is the first byte of every command in the Raft log.
type CommandType uint8

// Command types. Each names its body type and the shape Apply requires of
// it; a body of the wrong shape is refused with ErrInvalidChange. Every
// Change must also be computed from the table at its ExpectVersion.
const (
	// CommandInitRouting creates the first routing table. Body InitRouting.
	CommandInitRouting CommandType = 1
	// CommandMemberJoin adds or re-admits members. Body Change: Upsert
	// non-empty with every member alive, Remove empty, Partitions optional.
	CommandMemberJoin CommandType = 2
	// CommandMemberLeave marks members as leaving, plus any partitions moved
	// off them. Body Change: Upsert non-empty with every member leaving,
	// Remove empty.
	CommandMemberLeave CommandType = 3
	// CommandMemberFailed marks members as failed, plus the failover
	// assignments. Body Change: Upsert non-empty with every member failed,
	// Remove empty.
	CommandMemberFailed CommandType = 4
	// CommandMemberRemove deletes members from the table. Body Change:
	// Remove non-empty, Upsert empty, Partitions optional.
	CommandMemberRemove CommandType = 5
	// CommandRebalance moves partitions (handoffs, promotions, new
	// backups). Body Change: Partitions only.
	CommandRebalance CommandType = 6
	// CommandSetVoter records members' Raft suffrage. Body Change: Upsert
	// non-empty, each an existing member that differs only in Voter;
	// nothing else.
	CommandSetVoter CommandType = 7
	// CommandForceAssign is the operator's escape hatch for unavailable
	// partitions: it installs new owners that hold no data. Apply logs it
	// at WARN as data loss. Body Change: Partitions non-empty, nothing else.
	CommandForceAssign CommandType = 8
	// CommandMarkWritten records that partitions are about to take their
	// first write (their primary waits for it before acknowledging). Body
	// Change: Partitions non-empty, each identical to the current one but
	// for Written = true; nothing else. Its ExpectVersion may be older than
	// the current version (the partitions themselves are compared).
	CommandMarkWritten CommandType = 9
	// CommandReplicaInSync records that syncing backups caught up with
	// their primary and join the in-sync set (proposed by the primary
	// through the leader). Body Change: Partitions non-empty, each
	// identical to the current one but for a Syncing list that is a strict
	// subset of the current one; nothing else. Like mark_written, it may
	// name an older ExpectVersion.
	CommandReplicaInSync CommandType = 10
)

// CommandFormatVersion is the second byte of every command: the version of
// the body encoding. A member that meets a newer one skips the command.
const CommandFormatVersion = 1

// String returns the command's name, e.g. "member_join".
func (t CommandType) String() string {
	switch t {
	case CommandInitRouting:
		return "init_routing"
	case CommandMemberJoin:
		return "member_join"
	case CommandMemberLeave:
		return "member_leave"
	case CommandMemberFailed:
		return "member_failed"
	case CommandMemberRemove:
		return "member_remove"
	case CommandRebalance:
		return "rebalance"
	case CommandSetVoter:
		return "set_voter"
	case CommandForceAssign:
		return "force_assign"
	case CommandMarkWritten:
		return "mark_written"
	case CommandReplicaInSync:
		return "replica_in_sync"
	default:
		return fmt.Sprintf("unknown(%d)", uint8(t))
	}
}

func (t CommandType) known() bool {
	return t >= CommandInitRouting && t <= CommandReplicaInSync
}

// InitRouting creates the first routing table; valid only once, on an
// uninitialized FSM. Partitions must hold each of the PartitionCount
// partitions exactly once, in any order.
type InitRouting struct {
	PartitionCount uint32               `msgpack:"pc"`
	Replicas       int                  `msgpack:"rep"`
	Members        []metadata.Member    `msgpack:"mem"`
	Partitions     []metadata.Partition `msgpack:"parts"`
}

// Change is an explicit result computed by the leader from the table at
// ExpectVersion: the log carries results, not inputs. Apply removes, then
// upserts, then replaces partitions, then checks the result (see FSM.Apply).
type Change struct {
	// ExpectVersion must equal the current routing version, else Apply
	// rejects the change with ErrVersionConflict.
	ExpectVersion uint64 `msgpack:"ev"`
	// Upsert inserts or replaces members by ID.
	Upsert []metadata.Member `msgpack:"up"`
	// Remove deletes members; each must exist.
	Remove []metadata.NodeID `msgpack:"rm"`
	// Partitions replace the partitions with the same IDs.
	Partitions []metadata.Partition `msgpack:"parts"`
	// Reason is a one-line human summary, logged.
	Reason string `msgpack:"why"`
}

// Encode returns the log bytes of a command: t, CommandFormatVersion, then
// the msgpack body. body is an InitRouting (or pointer) for
// CommandInitRouting and a Change (or pointer) for every other type.
// Encode does not check the body's content; Apply does.
func Encode(t CommandType, body any) ([]byte, error) {
	if !t.known() {
		return nil, fmt.Errorf("%w: type %d", ErrUnknownCommand, uint8(t))
	}
	var v any
	switch b := body.(type) {
	case InitRouting:
		v = &b
	case *InitRouting:
		if b != nil {
			v = b
		}
	case Change:
		v = &b
	case *Change:
		if b != nil {
			v = b
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s needs an InitRouting or Change body, got %T", ErrMalformedCommand, t, body)
	}
	if _, isInit := v.(*InitRouting); isInit != (t == CommandInitRouting) {
		return nil, fmt.Errorf("%w: %s cannot carry a %T", ErrMalformedCommand, t, body)
	}
	enc, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedCommand, t, err)
	}
	return append([]byte{byte(t), CommandFormatVersion}, enc...), nil
}

// Decode parses log bytes made by Encode. The body is an *InitRouting or a
// *Change. It fails with ErrMalformedCommand (input shorter than two bytes,
// a body that is not exactly one msgpack value of the body type) or
// ErrUnknownCommand (a format version or command type this build does not
// know, e.g. written by a newer member during a rolling upgrade). Decode
// never allocates more than a small multiple of len(b).
func Decode(b []byte) (CommandType, any, error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("%w: %d bytes, need at least 2", ErrMalformedCommand, len(b))
	}
	t := CommandType(b[0])
	if v := b[1]; v != CommandFormatVersion {
		return t, nil, fmt.Errorf("%w: format version %d (this build reads %d), type %d", ErrUnknownCommand, v, CommandFormatVersion, b[0])
	}
	if !t.known() {
		return t, nil, fmt.Errorf("%w: type %d", ErrUnknownCommand, b[0])
	}
	var body any
	if t == CommandInitRouting {
		body = new(InitRouting)
	} else {
		body = new(Change)
	}
	if err := strictmsgpack.Unmarshal(b[2:], body); err != nil {
		return t, nil, fmt.Errorf("%w: %s body: %w", ErrMalformedCommand, t, err)
	}
	return t, body, nil
}
