package metadata

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// validTable returns a small valid, initialized table: members a, b, c
// alive and d failed, 6 partitions with 2 replicas placed by Place.
func validTable(t *testing.T) *RoutingTable {
	t.Helper()
	parts, err := Place(nil, 6, 2, []NodeID{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	tb := &RoutingTable{
		Version:        7,
		PartitionCount: 6,
		Replicas:       2,
		Members: []Member{
			{ID: "a", State: MemberAlive, Voter: true},
			{ID: "b", State: MemberAlive, Voter: true},
			{ID: "c", State: MemberAlive},
			{ID: "d", State: MemberFailed},
		},
		Partitions: parts,
	}
	if err := tb.Validate(); err != nil {
		t.Fatalf("base table invalid: %v", err)
	}
	return tb
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*RoutingTable)
		want   string // substring naming the problem
	}{
		{"bad partition count", func(tb *RoutingTable) { tb.PartitionCount = 0 }, "partition count 0"},
		{"bad replicas", func(tb *RoutingTable) { tb.Replicas = 0 }, "replicas 0"},
		{"partition count mismatch", func(tb *RoutingTable) { tb.Partitions = tb.Partitions[:5] }, "5 partitions, want 6"},
		{"invalid member id", func(tb *RoutingTable) { tb.Members[0].ID = "a b" }, "invalid node id"},
		{"empty member id", func(tb *RoutingTable) { tb.Members[0].ID = "" }, "invalid node id"},
		{"members unsorted", func(tb *RoutingTable) { tb.Members[0], tb.Members[1] = tb.Members[1], tb.Members[0] }, "not sorted or duplicated"},
		{"member duplicated", func(tb *RoutingTable) { tb.Members[1].ID = "a" }, "not sorted or duplicated"},
		{"member state unknown", func(tb *RoutingTable) { tb.Members[2].State = 0 }, `member "c": unknown state 0`},
		{"partition id", func(tb *RoutingTable) { tb.Partitions[3].ID = 4 }, "partition at index 3 has id 4"},
		{"active without primary", func(tb *RoutingTable) {
			tb.Partitions[1].Primary = ""
			tb.Partitions[1].Backups = nil
		}, "partition 1: active without primary"},
		{"unavailable with replicas", func(tb *RoutingTable) { tb.Partitions[2].State = PartitionUnavailable }, "partition 2: unavailable but has replicas"},
		{"unavailable and written", func(tb *RoutingTable) {
			// Its data is lost: Written is cleared with it.
			tb.Partitions[2] = Partition{ID: 2, State: PartitionUnavailable, LeaderEpoch: 4, Written: true}
		}, "partition 2: unavailable but has replicas or is marked written"},
		{"partition state unknown", func(tb *RoutingTable) { tb.Partitions[0].State = 9 }, "partition 0: unknown state 9"},
		{"handoff target while active", func(tb *RoutingTable) { tb.Partitions[0].HandoffTo = "c" }, `partition 0: handoff target "c" in state active`},
		{"handoff without target", func(tb *RoutingTable) { tb.Partitions[0].State = PartitionHandoff }, `partition 0: handoff target "" in state handoff`},
		{"handoff to primary", func(tb *RoutingTable) {
			tb.Partitions[0].State = PartitionHandoff
			tb.Partitions[0].HandoffTo = tb.Partitions[0].Primary
		}, "partition 0: bad handoff target"},
		{"handoff to failed member", func(tb *RoutingTable) {
			tb.Partitions[0].State = PartitionHandoff
			tb.Partitions[0].HandoffTo = "d"
		}, `partition 0: bad handoff target "d"`},
		{"too many replicas", func(tb *RoutingTable) {
			tb.Replicas = 1 // one extra backup is allowed (a staged move), two are not
			p := &tb.Partitions[0]
			for _, m := range []NodeID{"a", "b", "c"} {
				if !p.Holds(m) {
					p.Backups = append(p.Backups, m)
				}
			}
		}, "partition 0: 3 replicas, more than 2"},
		{"empty backup", func(tb *RoutingTable) { tb.Partitions[4].Backups[0] = "" }, "partition 4: empty replica"},
		{"replica on failed member", func(tb *RoutingTable) { tb.Partitions[5].Backups[0] = "d" }, `partition 5: replica "d" is not a live member`},
		{"replica on unknown member", func(tb *RoutingTable) { tb.Partitions[5].Primary = "zz" }, `partition 5: replica "zz" is not a live member`},
		{"two replicas on one member", func(tb *RoutingTable) {
			tb.Partitions[3].Backups[0] = tb.Partitions[3].Primary
		}, "holds two replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := validTable(t)
			tt.change(tb)
			err := tb.Validate()
			if !errors.Is(err, ErrInvalidTable) {
				t.Fatalf("Validate() = %v, want ErrInvalidTable", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %q, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		tb   *RoutingTable
	}{
		{"empty table before InitRouting", &RoutingTable{}},
		{"members only", &RoutingTable{Members: []Member{{ID: "a", State: MemberAlive}, {ID: "b", State: MemberLeaving}}}},
		{"base", validTable(t)},
		{"handoff to a backup", func() *RoutingTable {
			tb := validTable(t)
			tb.Partitions[0].State = PartitionHandoff
			tb.Partitions[0].HandoffTo = tb.Partitions[0].Backups[0]
			return tb
		}()},
		{"unavailable partition", func() *RoutingTable {
			tb := validTable(t)
			tb.Partitions[0] = Partition{ID: 0, State: PartitionUnavailable, LeaderEpoch: 3}
			return tb
		}()},
		{"unavailable partition with history", func() *RoutingTable {
			tb := validTable(t)
			tb.Partitions[0] = Partition{ID: 0, State: PartitionUnavailable, LeaderEpoch: 3, PrevPrimary: "d", PrevEpoch: 2}
			return tb
		}()},
		{"written partitions with history", func() *RoutingTable {
			tb := validTable(t)
			tb.Partitions[0].Written = true
			tb.Partitions[1].Written = true
			tb.Partitions[1].PrevPrimary, tb.Partitions[1].PrevEpoch = "d", 7 // a failed member: history only
			return tb
		}()},
		{"replica on a leaving member", func() *RoutingTable {
			tb := validTable(t)
			tb.Members[2].State = MemberLeaving
			return tb
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.tb.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	var tb *RoutingTable
	if err := tb.Validate(); !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), "nil table") {
		t.Fatalf("Validate() on nil = %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	tb := validTable(t)
	tb.Partitions[0].State = 9
	tb.Members[2].State = 0
	err := tb.Validate()
	for _, want := range []string{"partition 0: unknown state 9", `member "c": unknown state 0`} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Validate() = %v, want it to name %q", err, want)
		}
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, id := range []NodeID{"a", "node-1", "n_2.example", NodeID(strings.Repeat("x", MaxNodeIDLen))} {
		if err := ValidateNodeID(id); err != nil {
			t.Errorf("ValidateNodeID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []NodeID{"", "a b", "a/b", "ä", NodeID(strings.Repeat("x", MaxNodeIDLen+1))} {
		if err := ValidateNodeID(id); !errors.Is(err, ErrInvalidNodeID) {
			t.Errorf("ValidateNodeID(%q) = %v, want ErrInvalidNodeID", id, err)
		}
	}
}

func TestValidateSettings(t *testing.T) {
	tests := []struct {
		pc   uint32
		rep  int
		want []string // problems named; none means valid
	}{
		{DefaultPartitionCount, DefaultReplicas, nil},
		{1, 1, nil},
		{MaxPartitionCount, MaxReplicas, nil},
		{0, 2, []string{"partition count 0"}},
		{MaxPartitionCount + 1, 2, []string{"partition count 65537"}},
		{271, 0, []string{"replicas 0"}},
		{0, MaxReplicas + 1, []string{"partition count 0", "replicas 8"}},
	}
	for _, tt := range tests {
		err := ValidateSettings(tt.pc, tt.rep)
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("ValidateSettings(%d, %d) = %v, want nil", tt.pc, tt.rep, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidSettings) {
			t.Errorf("ValidateSettings(%d, %d) = %v, want ErrInvalidSettings", tt.pc, tt.rep, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ValidateSettings(%d, %d) = %q, want it to name %q", tt.pc, tt.rep, err, w)
			}
		}
	}
}

func TestCloneIndependent(t *testing.T) {
	orig := validTable(t)
	want := validTable(t)
	c := orig.Clone()
	if !tablesEqual(c, orig) {
		t.Fatal("clone differs from original")
	}
	c.Version++
	c.Members[0].State = MemberFailed
	c.UpsertMember(Member{ID: "e", State: MemberAlive})
	c.Partitions[0].Primary = "zz"
	c.Partitions[1].Backups[0] = "zz"
	c.Partitions[2].Backups = append(c.Partitions[2].Backups, "zz")
	c.Partitions = append(c.Partitions, Partition{ID: 6})
	if !tablesEqual(orig, want) {
		t.Fatal("changing the clone changed the original")
	}
	var nilTable *RoutingTable
	if c := nilTable.Clone(); c == nil || c.Initialized() {
		t.Fatalf("nil.Clone() = %+v, want an empty table", c)
	}
	p := orig.Partitions[0]
	q := p.Clone()
	q.Backups[0] = "zz"
	if orig.Partitions[0].Backups[0] == "zz" {
		t.Fatal("Partition.Clone shares Backups")
	}
}

func tablesEqual(a, b *RoutingTable) bool {
	if a.Version != b.Version || a.PartitionCount != b.PartitionCount || a.Replicas != b.Replicas ||
		!slices.Equal(a.Members, b.Members) || len(a.Partitions) != len(b.Partitions) {
		return false
	}
	for i := range a.Partitions {
		if !a.Partitions[i].Equal(b.Partitions[i]) {
			return false
		}
	}
	return true
}

func TestUpsertRemoveMemberKeepOrder(t *testing.T) {
	tb := &RoutingTable{}
	for _, id := range []NodeID{"m5", "m1", "m9", "m3", "m7", "m0"} {
		tb.UpsertMember(Member{ID: id, State: MemberAlive})
	}
	ids := func() []NodeID {
		var out []NodeID
		for _, m := range tb.Members {
			out = append(out, m.ID)
		}
		return out
	}
	if got, want := ids(), []NodeID{"m0", "m1", "m3", "m5", "m7", "m9"}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
	tb.UpsertMember(Member{ID: "m3", State: MemberFailed, ClusterAddr: "x:1"})
	if m, ok := tb.Member("m3"); !ok || m.State != MemberFailed || m.ClusterAddr != "x:1" || len(tb.Members) != 6 {
		t.Fatalf("upsert of an existing member: %+v, %d members", m, len(tb.Members))
	}
	if !tb.RemoveMember("m0") || !tb.RemoveMember("m9") || !tb.RemoveMember("m5") {
		t.Fatal("RemoveMember of a member reported false")
	}
	if tb.RemoveMember("m5") || tb.RemoveMember("nope") {
		t.Fatal("RemoveMember of a missing member reported true")
	}
	if got, want := ids(), []NodeID{"m1", "m3", "m7"}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := tb.AliveMembers(), []NodeID{"m1", "m7"}; !slices.Equal(got, want) {
		t.Fatalf("AliveMembers() = %v, want %v", got, want)
	}
}

func TestMemberLookup(t *testing.T) {
	tb := validTable(t)
	for _, id := range []NodeID{"a", "b", "c", "d"} {
		m, ok := tb.Member(id)
		if !ok || m.ID != id {
			t.Errorf("Member(%q) = %+v, %v", id, m, ok)
		}
	}
	for _, id := range []NodeID{"", "0", "bb", "e"} {
		if m, ok := tb.Member(id); ok {
			t.Errorf("Member(%q) = %+v, want not found", id, m)
		}
	}
	var nilTable *RoutingTable
	if _, ok := nilTable.Member("a"); ok {
		t.Error("nil table found a member")
	}
}

// TestPartitionEqual: Written is part of a placement, the history is not.
func TestPartitionEqual(t *testing.T) {
	p := Partition{ID: 1, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive, LeaderEpoch: 3, Written: true, PrevPrimary: "c", PrevEpoch: 2}
	if !p.Equal(p.Clone()) {
		t.Fatal("partition differs from its clone")
	}
	q := p.Clone()
	q.PrevPrimary, q.PrevEpoch = "", 0
	if !p.Equal(q) {
		t.Error("Equal compares the history")
	}
	q = p.Clone()
	q.Written = false
	if p.Equal(q) {
		t.Error("Equal ignores Written")
	}
}

func TestPartitionAccessors(t *testing.T) {
	tb := validTable(t)
	if !tb.Initialized() {
		t.Fatal("Initialized() = false")
	}
	if (&RoutingTable{PartitionCount: 6}).Initialized() {
		t.Fatal("table without partitions reports initialized")
	}
	if p, ok := tb.Partition(5); !ok || p.ID != 5 {
		t.Fatalf("Partition(5) = %+v, %v", p, ok)
	}
	if _, ok := tb.Partition(6); ok {
		t.Fatal("Partition(6) found")
	}
	p, ok := tb.Locate("default", "foo")
	if !ok || p.ID != PartitionOf("default", "foo", 6) {
		t.Fatalf("Locate = %+v, %v", p, ok)
	}
	if _, ok := (&RoutingTable{}).Locate("default", "foo"); ok {
		t.Fatal("Locate on an uninitialized table succeeded")
	}
	q := Partition{Primary: "a", Backups: []NodeID{"b", "c"}}
	if got := q.Replicas(); !slices.Equal(got, []NodeID{"a", "b", "c"}) {
		t.Fatalf("Replicas() = %v", got)
	}
	if got := (Partition{State: PartitionUnavailable}).Replicas(); len(got) != 0 {
		t.Fatalf("Replicas() of unavailable = %v", got)
	}
	if !q.Holds("c") || q.Holds("d") {
		t.Fatal("Holds wrong")
	}
	loads := tb.Loads()
	total := Load{}
	for _, id := range []NodeID{"a", "b", "c"} {
		l := loads[id]
		if l.Primaries != 2 || l.Backups != 2 {
			t.Errorf("Loads()[%s] = %+v, want 2 and 2", id, l)
		}
		total.Primaries += l.Primaries
		total.Backups += l.Backups
	}
	if _, ok := loads["d"]; ok || total.Primaries != 6 || total.Backups != 6 {
		t.Errorf("Loads() = %v", loads)
	}
}

func TestStateStrings(t *testing.T) {
	for s, want := range map[fmt.Stringer]string{
		MemberAlive: "alive", MemberLeaving: "leaving", MemberFailed: "failed", MemberState(0): "unknown(0)",
		PartitionActive: "active", PartitionHandoff: "handoff", PartitionUnavailable: "unavailable", PartitionState(7): "unknown(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestPartitionOfGolden pins the key-to-partition function: changing it
// would send every key of a running cluster to another partition, and
// Olric's clients (which hash keys themselves, XXH64 of dmap+key) to the
// wrong member. XXH64("") = 0xEF46DB3751D8E999 is the published empty-input
// value (≡ 171 mod 271).
func TestPartitionOfGolden(t *testing.T) {
	tests := []struct {
		dmap, key string
		count     uint32
		want      uint32
	}{
		{"default", "foo", 271, 80},
		{"users", "user:42", 271, 94},
		{"", "", 271, 171},
		{"default", "foo", 65536, 22480},
		{"a", "b\x00c", 7, 0},
		{"default", "foo", 1, 0},
		{"default", "foo", 0, 0},
	}
	for _, tt := range tests {
		if got := PartitionOf(tt.dmap, tt.key, tt.count); got != tt.want {
			t.Errorf("PartitionOf(%q, %q, %d) = %d, want %d", tt.dmap, tt.key, tt.count, got, tt.want)
		}
	}
	// As in Olric, the name and the key are concatenated: pairs that
	// concatenate alike share a partition (each DMap still keeps its own
	// keys apart inside it).
	if PartitionOf("ab", "c", 65536) != PartitionOf("a", "bc", 65536) {
		t.Error(`("ab","c") and ("a","bc") differ: not Olric's XXH64(dmap+key)`)
	}
}

func TestPartitionOfDistribution(t *testing.T) {
	const parts, keys = DefaultPartitionCount, 100_000
	counts := make([]int, parts)
	for i := range keys {
		p := PartitionOf("default", fmt.Sprintf("key-%d", i), parts)
		if p >= parts {
			t.Fatalf("PartitionOf = %d, out of range", p)
		}
		counts[p]++
	}
	mean := float64(keys) / parts
	lo, hi := slices.Min(counts), slices.Max(counts)
	if float64(hi) > 2*mean || float64(lo) < mean/2 {
		t.Fatalf("partition sizes from %d to %d, mean %.0f: not within 2x", lo, hi, mean)
	}
}
