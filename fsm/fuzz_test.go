package fsm_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the committed fuzz seed corpora in testdata/fuzz")

// fuzzBase is the table FuzzApply's second FSM starts from (version 1).
func fuzzBase() fsm.InitRouting { return initRouting(6, 3, 2) }

// seedCommands are valid and nearly valid commands against fuzzBase, so the
// fuzzer starts next to every path of Apply.
func seedCommands(t testing.TB) map[string][]byte {
	f := fsm.New(quietLogger())
	f.Apply(cmdLog(1, mustEncode(t, fsm.CommandInitRouting, fuzzBase())))
	cur := f.Routing()
	m4 := member(4, "a")
	m1 := member(1, "a")
	m1.Voter = false
	leaving := member(3, "a")
	leaving.State = metadata.MemberLeaving
	unavailable := cur.Partitions[2].Clone()
	unavailable.Primary, unavailable.Backups, unavailable.State = "", nil, metadata.PartitionUnavailable
	unavailable.LeaderEpoch++
	handoff := cur.Partitions[3].Clone()
	handoff.State, handoff.HandoffTo = metadata.PartitionHandoff, "n3" // primary n1, backup n2
	// Remove n3 and move its partitions away in the same entry.
	remove := failover(cur, "n3 removed", "n3")
	remove.Upsert, remove.Remove = nil, []metadata.NodeID{"n3"}
	return map[string][]byte{
		"init":           mustEncode(t, fsm.CommandInitRouting, fuzzBase()),
		"join":           mustEncode(t, fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1, Upsert: []metadata.Member{m4}, Reason: "join"}),
		"leave":          mustEncode(t, fsm.CommandMemberLeave, fsm.Change{ExpectVersion: 1, Upsert: []metadata.Member{leaving}}),
		"failed":         mustEncode(t, fsm.CommandMemberFailed, failover(cur, "n2 dead", "n2")),
		"remove":         mustEncode(t, fsm.CommandMemberRemove, remove),
		"rebalance":      mustEncode(t, fsm.CommandRebalance, fsm.Change{ExpectVersion: 1, Partitions: []metadata.Partition{moveChange(cur, 0, cur.Partitions[0].Backups[0]), handoff}}),
		"set-voter":      mustEncode(t, fsm.CommandSetVoter, fsm.Change{ExpectVersion: 1, Upsert: []metadata.Member{m1}}),
		"force-assign":   mustEncode(t, fsm.CommandForceAssign, fsm.Change{ExpectVersion: 1, Partitions: []metadata.Partition{unavailable}}),
		"stale-version":  mustEncode(t, fsm.CommandRebalance, fsm.Change{ExpectVersion: 0}),
		"unknown-type":   {42, fsm.CommandFormatVersion, 0x80},
		"unknown-format": {byte(fsm.CommandRebalance), 7, 0x80},
		"empty":          nil,
		"huge-array":     {byte(fsm.CommandRebalance), fsm.CommandFormatVersion, 0x81, 0xa5, 'p', 'a', 'r', 't', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
	}
}

// TestFuzzCorpus rewrites the committed seed corpora with -rewrite and
// otherwise checks that they are present and current.
func TestFuzzCorpus(t *testing.T) {
	for _, target := range []string{"FuzzDecode", "FuzzApply"} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, b := range seedCommands(t) {
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
			if got, err := os.ReadFile(path); err != nil || string(got) != want {
				t.Errorf("seed %s is missing or stale: run go test ./fsm -run TestFuzzCorpus -rewrite", path)
			}
		}
	}
}

// TestSeedCommands checks that the seeds meant to succeed do, so the fuzzer
// starts from inside every accepting path.
func TestSeedCommands(t *testing.T) {
	for name, b := range seedCommands(t) {
		f := fsm.New(testLogger(t))
		index := uint64(1)
		if name != "init" {
			f.Apply(cmdLog(1, mustEncode(t, fsm.CommandInitRouting, fuzzBase())))
			index = 2
		}
		res := f.Apply(cmdLog(index, b)).(fsm.ApplyResult)
		switch name {
		case "stale-version", "unknown-type", "unknown-format", "empty", "huge-array":
			if res.Err == nil {
				t.Errorf("%s: accepted", name)
			}
		default:
			if res.Err != nil {
				t.Errorf("%s: %v", name, res.Err)
			}
		}
	}
}

// FuzzDecode: Decode never panics, fails only with its sentinels, and what
// it accepts re-encodes to bytes that decode to the same encoding.
func FuzzDecode(f *testing.F) {
	for _, b := range seedCommands(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := fsm.Decode(b)
		if err != nil {
			if !errors.Is(err, fsm.ErrMalformedCommand) && !errors.Is(err, fsm.ErrUnknownCommand) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		enc, err := fsm.Encode(typ, body)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		typ2, body2, err := fsm.Decode(enc)
		if err != nil || typ2 != typ {
			t.Fatalf("re-encoded command: %s, %v", typ2, err)
		}
		enc2, _ := fsm.Encode(typ2, body2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the command")
		}
	})
}

// FuzzApply: arbitrary log data never makes Apply panic or publish an
// invalid table; a rejected command changes nothing; two FSMs given the
// same log agree.
func FuzzApply(f *testing.F) {
	for _, b := range seedCommands(f) {
		f.Add(b)
	}
	base := mustEncode(f, fsm.CommandInitRouting, fuzzBase())
	f.Fuzz(func(t *testing.T, data []byte) {
		// On an uninitialized FSM (the InitRouting path), and twice on an
		// initialized one (the Change paths, then the same command again).
		empty := fsm.New(quietLogger())
		check(t, empty, 1, data)

		var pair [2]*fsm.FSM
		for i := range pair {
			pair[i] = fsm.New(quietLogger())
			pair[i].Apply(cmdLog(1, base))
		}
		r2 := check(t, pair[0], 2, data)
		r3 := check(t, pair[0], 3, data)
		if s2, s3 := check(t, pair[1], 2, data), check(t, pair[1], 3, data); fmt.Sprint(r2, r3) != fmt.Sprint(s2, s3) ||
			!equalTables(pair[0].Routing(), pair[1].Routing()) {
			t.Fatalf("two FSMs disagree: %v %v vs %v %v", r2, r3, s2, s3)
		}
	})
}

// check applies data at index and checks the invariants of Apply.
func check(t *testing.T, f *fsm.FSM, index uint64, data []byte) fsm.ApplyResult {
	before := f.Routing()
	beforeCopy := before.Clone()
	res, ok := f.Apply(cmdLog(index, data)).(fsm.ApplyResult)
	if !ok {
		t.Fatalf("Apply returned %T", res)
	}
	after := f.Routing()
	if err := after.Validate(); err != nil {
		t.Fatalf("published an invalid table: %v", err)
	}
	if f.AppliedIndex() != index {
		t.Fatalf("applied index %d, want %d", f.AppliedIndex(), index)
	}
	if !equalTables(before, beforeCopy) {
		t.Fatalf("the previous table was modified in place")
	}
	if res.Err != nil {
		if !errors.Is(res.Err, fsm.ErrRejected) {
			t.Fatalf("error outside the ErrRejected family: %v", res.Err)
		}
		if after != before || res.Version != before.Version {
			t.Fatalf("rejected command changed the table")
		}
		return res
	}
	if after == before || after.Version != index || res.Version != index {
		t.Fatalf("accepted command: version %d, result %d, want %d", after.Version, res.Version, index)
	}
	// Partitions a change did not name are untouched, and epochs only rise.
	if before.Initialized() {
		for i, p := range after.Partitions {
			if p.LeaderEpoch < before.Partitions[i].LeaderEpoch {
				t.Fatalf("partition %d: leader epoch went down", i)
			}
		}
		if after.PartitionCount != before.PartitionCount || after.Replicas != before.Replicas {
			t.Fatalf("a change altered the cluster settings")
		}
	}
	return res
}
