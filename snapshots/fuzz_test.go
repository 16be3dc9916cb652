package snapshots_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/snapshots"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the committed fuzz seed corpus in testdata/fuzz")

// seeds are the inputs of the committed corpus testdata/fuzz/FuzzRead.
func seeds(t testing.TB) map[string][]byte {
	good := encode(t, snapshots.State{AppliedIndex: 4, Routing: table(4, 3, 2, 2)})
	truncated := good[:len(good)-5]
	flipped := bytes.Clone(good)
	flipped[30] ^= 0x40
	handoff := table(9, 5, 3, 3)
	handoff.Partitions[2].State = metadata.PartitionHandoff
	handoff.Partitions[2].HandoffTo = "n1"
	handoff.Partitions[2].Primary, handoff.Partitions[2].Backups = "n3", []metadata.NodeID{"n2"}
	return map[string][]byte{
		"empty":         nil,
		"uninitialized": encode(t, snapshots.State{AppliedIndex: 1, Routing: &metadata.RoutingTable{}}),
		"small":         good,
		"handoff":       encode(t, snapshots.State{AppliedIndex: 10, Routing: handoff}),
		"truncated":     truncated,
		"flipped":       flipped,
		"header-only":   good[:snapshots.HeaderSize],
		// A bare body: FuzzRead also frames its input with a valid header.
		"body-only":  good[snapshots.HeaderSize:],
		"huge-array": append(partsPrefix(), 0xdd, 0xff, 0xff, 0xff, 0xff),
	}
}

// TestFuzzCorpus rewrites the committed seed corpus with -rewrite and
// otherwise checks that it is present.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	for name, b := range seeds(t) {
		path := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *rewrite {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale: run go test ./snapshots -run TestFuzzCorpus -rewrite", path)
		}
	}
}

// FuzzRead: Read never panics, refuses with one of the package's errors,
// and whatever it accepts re-encodes to a snapshot that reads back equal.
// Each input is also tried as a body behind a valid header, so the fuzzer
// reaches the msgpack decoding and the state checks, not just the checksum.
func FuzzRead(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, b := range [][]byte{in, frame(in)} {
			s, err := snapshots.Read(bytes.NewReader(b))
			if err != nil {
				if !errors.Is(err, snapshots.ErrCorrupt) && !errors.Is(err, snapshots.ErrUnsupportedVersion) &&
					!errors.Is(err, snapshots.ErrTooLarge) && !errors.Is(err, snapshots.ErrInvalidState) {
					t.Fatalf("Read error without a sentinel: %v", err)
				}
				continue
			}
			if err := s.Routing.Validate(); err != nil {
				t.Fatalf("Read accepted an invalid table: %v", err)
			}
			var buf bytes.Buffer
			if err := snapshots.Write(&buf, s); err != nil {
				t.Fatalf("Write of an accepted state: %v", err)
			}
			again, err := snapshots.Read(&buf)
			if err != nil {
				t.Fatalf("re-encoded snapshot refused: %v", err)
			}
			if !equalStates(s, again) {
				t.Fatalf("round trip changed the state:\n%+v\n%+v", s, again)
			}
		}
	})
}
