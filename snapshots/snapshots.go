package snapshots

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/metadata"
)

// Format constants; see the package documentation for the layout.
const (
	// FormatVersion is the version Write writes and the only one Read reads.
	FormatVersion = 1
	// Magic opens every snapshot.
	Magic = "ORFS"
	// HeaderSize is the size of the header before the body.
	HeaderSize = 20
	// MaxBodySize bounds the body length. A 65536-partition table with 7
	// replicas of 128-byte member ids stays well below it.
	MaxBodySize = 1 << 30
)

// Sentinel errors. Messages are prefixed with the package name; test with
// errors.Is.
var (
	// ErrCorrupt reports input that is not an intact snapshot: wrong magic,
	// truncated, bytes after the body, checksum mismatch, or a body that does
	// not decode as a State.
	ErrCorrupt = errors.New("snapshots: corrupt snapshot")
	// ErrUnsupportedVersion reports a format version or flags this build
	// does not know (written by a newer olric-raft).
	ErrUnsupportedVersion = errors.New("snapshots: unsupported snapshot format")
	// ErrTooLarge reports a body longer than MaxBodySize.
	ErrTooLarge = errors.New("snapshots: snapshot too large")
	// ErrInvalidState reports a State the FSM could never hold: no routing
	// table, a table that fails metadata's Validate (the error wraps
	// metadata.ErrInvalidTable too), a routing version after the applied
	// index, or an uninitialized table that is not empty.
	ErrInvalidState = errors.New("snapshots: invalid state")
)

// State is what an fsm snapshot holds.
type State struct {
	// AppliedIndex is the Raft index of the last log the FSM applied.
	AppliedIndex uint64 `msgpack:"applied"`
	// Routing is the routing table as of AppliedIndex; never nil in a valid
	// State.
	Routing *metadata.RoutingTable `msgpack:"routing"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Write encodes s to w in the current format. It refuses a State that Read
// would refuse (ErrInvalidState, ErrTooLarge) and writes nothing then.
func Write(w io.Writer, s State) error {
	if err := validate(s); err != nil {
		return err
	}
	body, err := msgpack.Marshal(&s)
	if err != nil {
		return fmt.Errorf("snapshots: encode: %w", err)
	}
	if len(body) > MaxBodySize {
		return fmt.Errorf("%w: body of %d bytes, at most %d", ErrTooLarge, len(body), MaxBodySize)
	}
	var h [HeaderSize]byte
	copy(h[0:4], Magic)
	binary.BigEndian.PutUint16(h[4:6], FormatVersion)
	binary.BigEndian.PutUint16(h[6:8], 0)
	binary.BigEndian.PutUint64(h[8:16], uint64(len(body)))
	binary.BigEndian.PutUint32(h[16:20], crc32.Checksum(body, castagnoli))
	if _, err := w.Write(h[:]); err != nil {
		return fmt.Errorf("snapshots: write header: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("snapshots: write body: %w", err)
	}
	return nil
}

// Read decodes one snapshot from r and reads r to its end: r must hold
// nothing else. See the package documentation for what it refuses. Errors
// from r itself are returned wrapped, without a sentinel.
func Read(r io.Reader) (State, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return State{}, readError("header", err)
	}
	if string(h[0:4]) != Magic {
		return State{}, fmt.Errorf("%w: magic %q, want %q", ErrCorrupt, h[0:4], Magic)
	}
	if v := binary.BigEndian.Uint16(h[4:6]); v != FormatVersion {
		return State{}, fmt.Errorf("%w: format version %d, this build reads %d", ErrUnsupportedVersion, v, FormatVersion)
	}
	if flags := binary.BigEndian.Uint16(h[6:8]); flags != 0 {
		return State{}, fmt.Errorf("%w: unknown flags %#04x", ErrUnsupportedVersion, flags)
	}
	n := binary.BigEndian.Uint64(h[8:16])
	if n > MaxBodySize {
		return State{}, fmt.Errorf("%w: body of %d bytes, at most %d", ErrTooLarge, n, MaxBodySize)
	}
	sum := binary.BigEndian.Uint32(h[16:20])

	// Read at most n bytes in growing chunks: memory follows what is
	// really there, not what the header claims.
	var buf bytes.Buffer
	buf.Grow(int(min(n, 64<<10)))
	if _, err := buf.ReadFrom(io.LimitReader(r, int64(n))); err != nil {
		return State{}, readError("body", err)
	}
	body := buf.Bytes()
	if uint64(len(body)) < n {
		return State{}, fmt.Errorf("%w: truncated body: %d of %d bytes", ErrCorrupt, len(body), n)
	}
	var one [1]byte
	switch k, err := io.ReadFull(r, one[:]); {
	case k > 0:
		return State{}, fmt.Errorf("%w: bytes after the %d-byte body", ErrCorrupt, n)
	case err != io.EOF:
		return State{}, readError("past the body", err)
	}
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return State{}, fmt.Errorf("%w: body checksum %#08x, header says %#08x", ErrCorrupt, got, sum)
	}
	var s State
	if err := strictmsgpack.Unmarshal(body, &s); err != nil {
		return State{}, fmt.Errorf("%w: body: %w", ErrCorrupt, err)
	}
	if err := validate(s); err != nil {
		return State{}, err
	}
	return s, nil
}

// readError turns a short read into ErrCorrupt and wraps any other error of
// the underlying reader.
func readError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	return fmt.Errorf("snapshots: read %s: %w", what, err)
}

// validate checks that s is a state the FSM can hold.
func validate(s State) error {
	t := s.Routing
	if t == nil {
		return fmt.Errorf("%w: no routing table", ErrInvalidState)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if t.Version > s.AppliedIndex {
		return fmt.Errorf("%w: routing version %d is after applied index %d", ErrInvalidState, t.Version, s.AppliedIndex)
	}
	if !t.Initialized() && (t.Version != 0 || t.Replicas != 0 || len(t.Members) != 0) {
		return fmt.Errorf("%w: uninitialized routing table is not empty (version %d, replicas %d, %d members)",
			ErrInvalidState, t.Version, t.Replicas, len(t.Members))
	}
	return nil
}
