package snapshots_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/snapshots"
)

// table builds a valid initialized table: members n1..nM (alive, the first
// three voters), partition i with primary n(i mod M) and replicas-1 backups
// after it, leader epoch 1.
func table(version uint64, partitions uint32, members, replicas int) *metadata.RoutingTable {
	t := &metadata.RoutingTable{Version: version, PartitionCount: partitions, Replicas: replicas}
	for i := range members {
		t.UpsertMember(metadata.Member{
			ID:          metadata.NodeID(fmt.Sprintf("n%d", i+1)),
			Incarnation: fmt.Sprintf("inc-%d", i+1),
			ClusterAddr: fmt.Sprintf("127.0.0.1:%d", 3321+i),
			State:       metadata.MemberAlive,
			Voter:       i < 3,
		})
	}
	for p := range partitions {
		part := metadata.Partition{ID: p, State: metadata.PartitionActive, LeaderEpoch: 1}
		for r := range replicas {
			id := metadata.NodeID(fmt.Sprintf("n%d", (int(p)+r)%members+1))
			if r == 0 {
				part.Primary = id
			} else {
				part.Backups = append(part.Backups, id)
			}
		}
		t.Partitions = append(t.Partitions, part)
	}
	return t
}

func equalTables(a, b *metadata.RoutingTable) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Version == b.Version && a.PartitionCount == b.PartitionCount && a.Replicas == b.Replicas &&
		slices.Equal(a.Members, b.Members) &&
		slices.EqualFunc(a.Partitions, b.Partitions, metadata.Partition.Equal)
}

func equalStates(a, b snapshots.State) bool {
	return a.AppliedIndex == b.AppliedIndex && equalTables(a.Routing, b.Routing)
}

func encode(t testing.TB, s snapshots.State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := snapshots.Write(&buf, s); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

// frame wraps body in a valid header, so tests can reach the body checks.
func frame(body []byte) []byte {
	h := make([]byte, snapshots.HeaderSize, snapshots.HeaderSize+len(body))
	copy(h, snapshots.Magic)
	binary.BigEndian.PutUint16(h[4:], snapshots.FormatVersion)
	binary.BigEndian.PutUint64(h[8:], uint64(len(body)))
	binary.BigEndian.PutUint32(h[16:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return append(h, body...)
}

func TestRoundTrip(t *testing.T) {
	withFailed := table(40, 8, 4, 2)
	for i := range withFailed.Partitions {
		p := &withFailed.Partitions[i]
		if p.Holds("n4") {
			p.Backups = nil
			if p.Primary == "n4" {
				*p = metadata.Partition{ID: p.ID, State: metadata.PartitionUnavailable, LeaderEpoch: 2}
			}
		}
	}
	withFailed.Members[3].State = metadata.MemberFailed
	handoff := table(12, 4, 3, 2)
	handoff.Partitions[1].State = metadata.PartitionHandoff
	handoff.Partitions[1].HandoffTo = "n1"

	tests := []struct {
		name  string
		state snapshots.State
	}{
		{"uninitialized", snapshots.State{Routing: &metadata.RoutingTable{}}},
		{"uninitialized after other logs", snapshots.State{AppliedIndex: 9, Routing: &metadata.RoutingTable{}}},
		{"single partition", snapshots.State{AppliedIndex: 3, Routing: table(3, 1, 1, 1)}},
		{"default size", snapshots.State{AppliedIndex: 1000, Routing: table(999, metadata.DefaultPartitionCount, 5, 3)}},
		{"failed member and unavailable partitions", snapshots.State{AppliedIndex: 41, Routing: withFailed}},
		{"handoff", snapshots.State{AppliedIndex: 12, Routing: handoff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(t, tt.state)
			got, err := snapshots.Read(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !equalStates(got, tt.state) {
				t.Fatalf("got %+v, want %+v", got, tt.state)
			}
			if err := got.Routing.Validate(); err != nil {
				t.Fatalf("read table invalid: %v", err)
			}
			// Encoding is deterministic.
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestHeaderLayout(t *testing.T) {
	b := encode(t, snapshots.State{AppliedIndex: 7, Routing: table(7, 3, 2, 2)})
	if got := string(b[0:4]); got != "ORFS" {
		t.Errorf("magic %q", got)
	}
	if got := binary.BigEndian.Uint16(b[4:6]); got != 1 {
		t.Errorf("version %d", got)
	}
	if got := binary.BigEndian.Uint16(b[6:8]); got != 0 {
		t.Errorf("flags %d", got)
	}
	if got, want := binary.BigEndian.Uint64(b[8:16]), uint64(len(b)-20); got != want {
		t.Errorf("length %d, want %d", got, want)
	}
	if got, want := binary.BigEndian.Uint32(b[16:20]), crc32.Checksum(b[20:], crc32.MakeTable(crc32.Castagnoli)); got != want {
		t.Errorf("crc %#x, want %#x", got, want)
	}
}

func TestWriteRefusesInvalidState(t *testing.T) {
	bad := table(5, 4, 2, 2)
	bad.Partitions[2].Backups = []metadata.NodeID{"ghost"}
	tests := []struct {
		name  string
		state snapshots.State
		also  error
	}{
		{"nil routing", snapshots.State{AppliedIndex: 1}, nil},
		{"invalid table", snapshots.State{AppliedIndex: 5, Routing: bad}, metadata.ErrInvalidTable},
		{"version after applied index", snapshots.State{AppliedIndex: 4, Routing: table(5, 4, 2, 2)}, nil},
		{"uninitialized with version", snapshots.State{AppliedIndex: 4, Routing: &metadata.RoutingTable{Version: 2}}, nil},
		{"uninitialized with members", snapshots.State{AppliedIndex: 4, Routing: &metadata.RoutingTable{
			Members: []metadata.Member{{ID: "n1", State: metadata.MemberAlive}}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := snapshots.Write(&buf, tt.state)
			if !errors.Is(err, snapshots.ErrInvalidState) {
				t.Fatalf("Write: got %v, want ErrInvalidState", err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Fatalf("Write: got %v, want it to wrap %v", err, tt.also)
			}
			if buf.Len() != 0 {
				t.Fatalf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

// TestReadRefusesInvalidState frames bodies that decode but hold a state the
// FSM could never hold: Read must refuse them even with a good checksum.
func TestReadRefusesInvalidState(t *testing.T) {
	bad := table(5, 4, 2, 2)
	bad.Partitions[0].Primary = "n9"
	tests := []struct {
		name string
		body any
	}{
		{"nil routing", map[string]any{"applied": 3, "routing": nil}},
		{"missing routing", map[string]any{"applied": 3}},
		{"invalid table", snapshots.State{AppliedIndex: 5, Routing: bad}},
		{"version after applied", snapshots.State{AppliedIndex: 1, Routing: table(5, 4, 2, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = snapshots.Read(bytes.NewReader(frame(body)))
			if !errors.Is(err, snapshots.ErrInvalidState) {
				t.Fatalf("got %v, want ErrInvalidState", err)
			}
		})
	}
}

func TestReadRefusesBadBody(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"not msgpack", []byte{0xc1}},
		{"not a map", []byte{0x01}},
		{"two values", []byte{0x80, 0x80}},
		{"unknown field", mustMarshal(t, map[string]any{"applied": 1, "routing": map[string]any{}, "extra": true})},
		{"wrong type", mustMarshal(t, map[string]any{"applied": "one"})},
		// An array32 claiming 2^32-1 partitions in five bytes: must be refused
		// without allocating for them.
		{"huge array length", append(partsPrefix(), 0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"huge string length", []byte{0x81, 0xa7, 'r', 'o', 'u', 't', 'i', 'n', 'g', 0x81, 0xa3, 'm', 'e', 'm', 0x91, 0x81, 0xa2, 'i', 'd', 0xdb, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.Read(bytes.NewReader(frame(tt.body)))
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

// partsPrefix returns a body prefix that opens the partitions array of
// the routing table: {"applied": 1, "routing": {"pc": 1, "parts": <here>}}.
func partsPrefix() []byte {
	return []byte{0x82, 0xa7, 'a', 'p', 'p', 'l', 'i', 'e', 'd', 0x01,
		0xa7, 'r', 'o', 'u', 't', 'i', 'n', 'g', 0x82, 0xa2, 'p', 'c', 0x01,
		0xa5, 'p', 'a', 'r', 't', 's'}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadRefusesHeader(t *testing.T) {
	good := encode(t, snapshots.State{AppliedIndex: 2, Routing: table(2, 2, 2, 2)})
	mod := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, snapshots.ErrCorrupt},
		{"magic", mod(func(b []byte) { copy(b, "ORFT") }), snapshots.ErrCorrupt},
		{"version 0", mod(func(b []byte) { binary.BigEndian.PutUint16(b[4:], 0) }), snapshots.ErrUnsupportedVersion},
		{"version 2", mod(func(b []byte) { binary.BigEndian.PutUint16(b[4:], 2) }), snapshots.ErrUnsupportedVersion},
		{"flags", mod(func(b []byte) { binary.BigEndian.PutUint16(b[6:], 1) }), snapshots.ErrUnsupportedVersion},
		{"length over max", mod(func(b []byte) { binary.BigEndian.PutUint64(b[8:], snapshots.MaxBodySize+1) }), snapshots.ErrTooLarge},
		{"length max uint64", mod(func(b []byte) { binary.BigEndian.PutUint64(b[8:], ^uint64(0)) }), snapshots.ErrTooLarge},
		{"length at max, body short", mod(func(b []byte) { binary.BigEndian.PutUint64(b[8:], snapshots.MaxBodySize) }), snapshots.ErrCorrupt},
		{"length short by one", mod(func(b []byte) { binary.BigEndian.PutUint64(b[8:], uint64(len(good)-21)) }), snapshots.ErrCorrupt},
		{"checksum", mod(func(b []byte) { b[19] ^= 1 }), snapshots.ErrCorrupt},
		{"trailing byte", append(slices.Clone(good), 0), snapshots.ErrCorrupt},
		{"second snapshot appended", append(slices.Clone(good), good...), snapshots.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.Read(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadRefusesEveryByteFlip changes every byte of a small snapshot in
// every possible way (XOR with 1..255) and checks that Read refuses each one
// with the error the changed field calls for. This is the proof that no
// single-byte change goes unnoticed.
func TestReadRefusesEveryByteFlip(t *testing.T) {
	good := encode(t, snapshots.State{AppliedIndex: 4, Routing: table(4, 3, 2, 2)})
	for i := range good {
		want := snapshots.ErrCorrupt // magic, length, checksum, body
		if i >= 4 && i < 8 {
			want = snapshots.ErrUnsupportedVersion // version, flags
		}
		for x := 1; x < 256; x++ {
			b := slices.Clone(good)
			b[i] ^= byte(x)
			_, err := snapshots.Read(bytes.NewReader(b))
			if i >= 8 && i < 16 && errors.Is(err, snapshots.ErrTooLarge) {
				continue // a flipped high length byte
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d ^ %#02x: got %v, want %v", i, x, err, want)
			}
		}
	}
}

func TestReadRefusesEveryTruncation(t *testing.T) {
	for _, s := range []snapshots.State{
		{Routing: &metadata.RoutingTable{}},
		{AppliedIndex: 4, Routing: table(4, 3, 2, 2)},
	} {
		good := encode(t, s)
		for n := range len(good) {
			_, err := snapshots.Read(bytes.NewReader(good[:n]))
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("truncated to %d of %d bytes: got %v, want ErrCorrupt", n, len(good), err)
			}
		}
	}
}

// TestReadAllocatesByContent claims a 1 GiB body over a reader holding a few
// bytes: Read must fail without allocating anywhere near the claim.
func TestReadAllocatesByContent(t *testing.T) {
	in := make([]byte, snapshots.HeaderSize+10)
	copy(in, snapshots.Magic)
	binary.BigEndian.PutUint16(in[4:], snapshots.FormatVersion)
	binary.BigEndian.PutUint64(in[8:], snapshots.MaxBodySize)
	var err error
	allocs := testing.AllocsPerRun(10, func() {
		_, err = snapshots.Read(bytes.NewReader(in))
	})
	if !errors.Is(err, snapshots.ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if allocs > 20 {
		t.Fatalf("%v allocations for a 10-byte body", allocs)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadPassesReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	good := encode(t, snapshots.State{AppliedIndex: 2, Routing: table(2, 2, 2, 2)})
	for _, at := range []int{0, 10, snapshots.HeaderSize + 3, len(good)} {
		r := io.MultiReader(bytes.NewReader(good[:at]), errReader{boom})
		_, err := snapshots.Read(r)
		if !errors.Is(err, boom) {
			t.Fatalf("error after %d bytes: got %v, want it wrapped", at, err)
		}
		if errors.Is(err, snapshots.ErrCorrupt) {
			t.Fatalf("a reader error is not corruption: %v", err)
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("sink full")
	}
	w.after--
	return len(p), nil
}

func TestWritePassesWriterErrors(t *testing.T) {
	for after := range 2 {
		err := snapshots.Write(&failWriter{after: after}, snapshots.State{AppliedIndex: 2, Routing: table(2, 2, 2, 2)})
		if err == nil {
			t.Fatalf("write failing after %d writes: no error", after)
		}
	}
}

func marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }
