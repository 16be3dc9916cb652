package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

func TestNewIsEmpty(t *testing.T) {
	f := fsm.New(nil)
	got := f.Routing()
	if got == nil || got.Version != 0 || got.Initialized() || len(got.Members) != 0 {
		t.Fatalf("new FSM routing %+v, want empty", got)
	}
	if f.AppliedIndex() != 0 {
		t.Fatalf("applied index %d", f.AppliedIndex())
	}
}

func TestInitRouting(t *testing.T) {
	f := fsm.New(testLogger(t))
	in := initRouting(metadata.DefaultPartitionCount, 3, 2)
	got := mustApply(t, f, 7, fsm.CommandInitRouting, in)
	if !got.Initialized() || got.PartitionCount != metadata.DefaultPartitionCount || got.Replicas != 2 || len(got.Members) != 3 {
		t.Fatalf("table %+v", got)
	}
	for i, p := range got.Partitions {
		if p.ID != uint32(i) {
			t.Fatalf("partition %d at index %d", p.ID, i)
		}
	}
	if f.AppliedIndex() != 7 {
		t.Fatalf("applied %d", f.AppliedIndex())
	}
}

// TestChanges walks a cluster through every command type, each computed
// from the current table like the leader would.
func TestChanges(t *testing.T) {
	var logs bytes.Buffer
	f := fsm.New(slog.New(slog.NewTextHandler(&logs, nil)))
	cur := mustApply(t, f, 1, fsm.CommandInitRouting, initRouting(6, 3, 2))

	// n4 joins, and takes partition 0 over by a completed handoff.
	join := fsm.Change{ExpectVersion: cur.Version, Upsert: []metadata.Member{member(4, "a")}, Reason: "n4 joined"}
	cur = mustApply(t, f, 2, fsm.CommandMemberJoin, join)
	cur = mustApply(t, f, 3, fsm.CommandRebalance, fsm.Change{ExpectVersion: 2,
		Partitions: []metadata.Partition{moveChange(cur, 0, "n4")}, Reason: "balance"})
	if p := cur.Partitions[0]; p.Primary != "n4" || p.LeaderEpoch != 2 {
		t.Fatalf("partition 0 after rebalance: %+v", p)
	}
	// Start a handoff of partition 1 (primary n2) to n4: same primary, same epoch.
	h := cur.Partitions[1].Clone()
	h.State, h.HandoffTo = metadata.PartitionHandoff, "n4"
	cur = mustApply(t, f, 4, fsm.CommandRebalance, fsm.Change{ExpectVersion: 3, Partitions: []metadata.Partition{h}})
	// n4 voter flag.
	m4, _ := cur.Member("n4")
	m4.Voter = true
	cur = mustApply(t, f, 5, fsm.CommandSetVoter, fsm.Change{ExpectVersion: 4, Upsert: []metadata.Member{m4}})
	if m, _ := cur.Member("n4"); !m.Voter {
		t.Fatalf("n4 not a voter")
	}
	// n4 leaves: state leaving, its partitions moved, the handoff cancelled.
	m4.State = metadata.MemberLeaving
	leave := fsm.Change{ExpectVersion: 5, Upsert: []metadata.Member{m4}, Reason: "n4 leaving"}
	p0 := moveChange(cur, 0, "n1")
	p0.Backups = []metadata.NodeID{"n2"}
	p1 := cur.Partitions[1].Clone()
	p1.State, p1.HandoffTo = metadata.PartitionActive, ""
	leave.Partitions = []metadata.Partition{p0, p1}
	cur = mustApply(t, f, 6, fsm.CommandMemberLeave, leave)
	// n4 gone.
	cur = mustApply(t, f, 7, fsm.CommandMemberRemove, fsm.Change{ExpectVersion: cur.Version, Remove: []metadata.NodeID{"n4"}})
	if _, ok := cur.Member("n4"); ok {
		t.Fatalf("n4 still a member")
	}
	// n2 and n3 fail together: partitions held only by them become unavailable.
	cur = mustApply(t, f, 8, fsm.CommandMemberFailed, failover(cur, "n2, n3 dead", "n2", "n3"))
	var lost []uint32
	for _, p := range cur.Partitions {
		if p.State == metadata.PartitionUnavailable {
			lost = append(lost, p.ID)
		}
		if p.Holds("n2") || p.Holds("n3") {
			t.Fatalf("failed member holds %+v", p)
		}
	}
	if len(lost) == 0 {
		t.Fatalf("no partition became unavailable: %+v", cur.Partitions)
	}
	// The operator forces the lost partitions onto n1.
	force := fsm.Change{ExpectVersion: 8, Reason: "operator force"}
	for _, pid := range lost {
		p := cur.Partitions[pid]
		force.Partitions = append(force.Partitions, metadata.Partition{
			ID: pid, Primary: "n1", State: metadata.PartitionActive, LeaderEpoch: p.LeaderEpoch + 1})
	}
	before := logs.Len()
	cur = mustApply(t, f, 9, fsm.CommandForceAssign, force)
	forceLog := logs.String()[before:]
	if !strings.Contains(forceLog, "level=WARN") || !strings.Contains(forceLog, "DATA LOSS") {
		t.Fatalf("force assign not logged as data loss at WARN: %q", forceLog)
	}
	// n2 comes back with a new incarnation (alive, holding nothing).
	cur = mustApply(t, f, 10, fsm.CommandMemberJoin, fsm.Change{ExpectVersion: cur.Version,
		Upsert: []metadata.Member{member(2, "b")}, Reason: "n2 restarted"})
	if m, _ := cur.Member("n2"); m.State != metadata.MemberAlive || m.Incarnation != "b" {
		t.Fatalf("n2 = %+v", m)
	}
	if !strings.Contains(logs.String(), `msg="routing changed" component=fsm version=10 command=member_join reason="n2 restarted"`) {
		t.Fatalf("no INFO line for the change in:\n%s", logs.String())
	}
}

func TestApplyRejects(t *testing.T) {
	const parts = 6
	base := initRouting(parts, 3, 2) // p: primary n(p%3+1), backup n((p+1)%3+1)
	baseTable := func() *metadata.RoutingTable {
		f := fsm.New(quietLogger())
		return mustApply(t, f, 1, fsm.CommandInitRouting, base)
	}()
	part := func(pid uint32, f func(*metadata.Partition)) metadata.Partition {
		p := baseTable.Partitions[pid].Clone()
		f(&p)
		return p
	}
	m := func(i int, f func(*metadata.Member)) metadata.Member {
		x := member(i, "a")
		f(&x)
		return x
	}
	enc := func(typ fsm.CommandType, body any) []byte { return mustEncode(t, typ, body) }
	rebalance := func(ps ...metadata.Partition) []byte {
		return enc(fsm.CommandRebalance, fsm.Change{ExpectVersion: 1, Partitions: ps})
	}
	good := enc(fsm.CommandRebalance, fsm.Change{ExpectVersion: 1})
	badInit := func(f func(*fsm.InitRouting)) []byte {
		in := initRouting(parts, 3, 2)
		f(&in)
		return enc(fsm.CommandInitRouting, in)
	}

	tests := []struct {
		name   string
		uninit bool // apply to an uninitialized FSM
		data   []byte
		want   error
		also   error
	}{
		{"init twice", false, enc(fsm.CommandInitRouting, base), fsm.ErrAlreadyInitialized, nil},
		{"change before init", true, good, fsm.ErrNotInitialized, nil},
		{"init zero partitions", true, badInit(func(in *fsm.InitRouting) { in.PartitionCount, in.Partitions = 0, nil }), fsm.ErrInvalidChange, metadata.ErrInvalidSettings},
		{"init too many replicas", true, badInit(func(in *fsm.InitRouting) { in.Replicas = 8 }), fsm.ErrInvalidChange, metadata.ErrInvalidSettings},
		{"init missing partition", true, badInit(func(in *fsm.InitRouting) { in.Partitions = in.Partitions[1:] }), fsm.ErrInvalidChange, nil},
		{"init duplicate partition", true, badInit(func(in *fsm.InitRouting) { in.Partitions[0] = in.Partitions[1] }), fsm.ErrInvalidChange, nil},
		{"init partition out of range", true, badInit(func(in *fsm.InitRouting) { in.Partitions[0].ID = parts }), fsm.ErrInvalidChange, nil},
		{"init duplicate member", true, badInit(func(in *fsm.InitRouting) { in.Members[2] = in.Members[0] }), fsm.ErrInvalidChange, nil},
		{"init invalid table", true, badInit(func(in *fsm.InitRouting) { in.Partitions[0].Backups = nil; in.Partitions[0].Primary = "ghost" }), fsm.ErrInvalidChange, metadata.ErrInvalidTable},
		{"version conflict old", false, enc(fsm.CommandRebalance, fsm.Change{ExpectVersion: 0}), fsm.ErrVersionConflict, nil},
		{"version conflict future", false, enc(fsm.CommandRebalance, fsm.Change{ExpectVersion: 2}), fsm.ErrVersionConflict, nil},
		{"unknown type", false, append([]byte{42}, good[1:]...), fsm.ErrUnknownCommand, nil},
		{"unknown format version", false, append([]byte{good[0], 9}, good[2:]...), fsm.ErrUnknownCommand, nil},
		{"unknown type before init", true, []byte{42, 1}, fsm.ErrUnknownCommand, nil},
		{"empty data", false, nil, fsm.ErrMalformedCommand, nil},
		{"bad msgpack", false, []byte{byte(fsm.CommandRebalance), 1, 0xc1}, fsm.ErrMalformedCommand, nil},
		{"new primary same epoch", false, rebalance(part(0, func(p *metadata.Partition) { p.Primary, p.Backups[0] = p.Backups[0], p.Primary })), fsm.ErrEpochRegression, nil},
		{"new primary lower epoch", false, rebalance(part(0, func(p *metadata.Partition) { p.Primary, p.Backups[0], p.LeaderEpoch = p.Backups[0], p.Primary, 0 })), fsm.ErrEpochRegression, nil},
		{"same primary new epoch", false, rebalance(part(0, func(p *metadata.Partition) { p.LeaderEpoch = 2 })), fsm.ErrEpochRegression, nil},
		{"unavailable without epoch bump", false, rebalance(part(0, func(p *metadata.Partition) {
			p.Primary, p.Backups, p.State = "", nil, metadata.PartitionUnavailable
		})), fsm.ErrEpochRegression, nil},
		{"new incarnation keeps replicas", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(1, "b")}}), fsm.ErrStaleReplica, nil},
		{"failed keeps replicas", false, enc(fsm.CommandMemberFailed, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{m(1, func(x *metadata.Member) { x.State = metadata.MemberFailed })}}), fsm.ErrStaleReplica, nil},
		{"removed keeps replicas", false, enc(fsm.CommandMemberRemove, fsm.Change{ExpectVersion: 1,
			Remove: []metadata.NodeID{"n1"}}), fsm.ErrStaleReplica, nil},
		{"join may not remove", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Remove: []metadata.NodeID{"n1"}, Upsert: []metadata.Member{member(1, "a")}}), fsm.ErrInvalidChange, nil},
		{"remove unknown member", false, enc(fsm.CommandMemberRemove, fsm.Change{ExpectVersion: 1,
			Remove: []metadata.NodeID{"n9"}}), fsm.ErrInvalidChange, metadata.ErrUnknownMember},
		{"remove twice", false, enc(fsm.CommandMemberRemove, fsm.Change{ExpectVersion: 1,
			Remove: []metadata.NodeID{"n9", "n9"}}), fsm.ErrInvalidChange, nil},
		{"upsert twice", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(4, "a"), member(4, "a")}}), fsm.ErrInvalidChange, nil},
		{"partition out of range", false, rebalance(part(0, func(p *metadata.Partition) { p.ID = parts })), fsm.ErrInvalidChange, nil},
		{"partition twice", false, rebalance(baseTable.Partitions[0], baseTable.Partitions[0]), fsm.ErrInvalidChange, nil},
		{"backup is primary", false, rebalance(part(0, func(p *metadata.Partition) { p.Backups[0] = p.Primary })), fsm.ErrInvalidChange, metadata.ErrInvalidTable},
		{"too many replicas", false, rebalance(part(0, func(p *metadata.Partition) { p.Backups = append(p.Backups, p.Backups[0]) })), fsm.ErrInvalidChange, metadata.ErrInvalidTable},
		{"unknown replica", false, rebalance(part(0, func(p *metadata.Partition) { p.Backups[0] = "n9" })), fsm.ErrInvalidChange, metadata.ErrInvalidTable},
		{"bad member id", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{m(4, func(x *metadata.Member) { x.ID = "bad id" })}}), fsm.ErrInvalidChange, metadata.ErrInvalidTable},
		{"join not alive", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{m(4, func(x *metadata.Member) { x.State = metadata.MemberLeaving })}}), fsm.ErrInvalidChange, nil},
		{"join nobody", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1}), fsm.ErrInvalidChange, nil},
		{"join with remove", false, enc(fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(4, "a")}, Remove: []metadata.NodeID{"n3"}}), fsm.ErrInvalidChange, nil},
		{"leave unknown", false, enc(fsm.CommandMemberLeave, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{m(4, func(x *metadata.Member) { x.State = metadata.MemberLeaving })}}), fsm.ErrInvalidChange, metadata.ErrUnknownMember},
		{"leave alive", false, enc(fsm.CommandMemberLeave, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(1, "a")}}), fsm.ErrInvalidChange, nil},
		{"failed alive", false, enc(fsm.CommandMemberFailed, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(1, "a")}}), fsm.ErrInvalidChange, nil},
		{"remove nobody", false, enc(fsm.CommandMemberRemove, fsm.Change{ExpectVersion: 1}), fsm.ErrInvalidChange, nil},
		{"rebalance with member", false, enc(fsm.CommandRebalance, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(4, "a")}}), fsm.ErrInvalidChange, nil},
		{"set voter changes address", false, enc(fsm.CommandSetVoter, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{m(1, func(x *metadata.Member) { x.Voter, x.HTTPAddr = false, "x:1" })}}), fsm.ErrInvalidChange, nil},
		{"set voter unknown", false, enc(fsm.CommandSetVoter, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(4, "a")}}), fsm.ErrInvalidChange, metadata.ErrUnknownMember},
		{"set voter with partitions", false, enc(fsm.CommandSetVoter, fsm.Change{ExpectVersion: 1,
			Upsert: []metadata.Member{member(1, "a")}, Partitions: baseTable.Partitions[:1]}), fsm.ErrInvalidChange, nil},
		{"force nothing", false, enc(fsm.CommandForceAssign, fsm.Change{ExpectVersion: 1}), fsm.ErrInvalidChange, nil},
		{"force with member", false, enc(fsm.CommandForceAssign, fsm.Change{ExpectVersion: 1,
			Partitions: baseTable.Partitions[:1], Upsert: []metadata.Member{member(4, "a")}}), fsm.ErrInvalidChange, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(testLogger(t))
			if !tt.uninit {
				mustApply(t, f, 1, fsm.CommandInitRouting, base)
			}
			before := f.Routing()
			updates, cancel := f.Subscribe()
			defer cancel()
			res, ok := f.Apply(cmdLog(5, tt.data)).(fsm.ApplyResult)
			if !ok {
				t.Fatalf("Apply returned %T", res)
			}
			if !errors.Is(res.Err, tt.want) || !errors.Is(res.Err, fsm.ErrRejected) {
				t.Fatalf("got %v, want %v in the ErrRejected family", res.Err, tt.want)
			}
			if tt.also != nil && !errors.Is(res.Err, tt.also) {
				t.Fatalf("got %v, want it to wrap %v", res.Err, tt.also)
			}
			if !strings.HasPrefix(res.Err.Error(), "fsm: ") {
				t.Fatalf("message %q lacks the package prefix", res.Err)
			}
			if f.Routing() != before || res.Version != before.Version {
				t.Fatalf("rejected command changed the table (version %d -> %d)", before.Version, res.Version)
			}
			if f.AppliedIndex() != 5 {
				t.Fatalf("applied index %d, want 5: rejected logs advance it too", f.AppliedIndex())
			}
			select {
			case tbl := <-updates:
				t.Fatalf("rejected command published version %d", tbl.Version)
			default:
			}
		})
	}
}

func TestApplyNonCommandAndIndexRules(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	before := f.Routing()
	for i, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogType(99)} {
		idx := uint64(2 + i)
		res := f.Apply(&raft.Log{Index: idx, Type: typ, Data: []byte("junk")}).(fsm.ApplyResult)
		if res.Err != nil || res.Version != 1 {
			t.Fatalf("%v: %+v", typ, res)
		}
		if f.AppliedIndex() != idx || f.Routing() != before {
			t.Fatalf("%v: applied %d, routing changed %v", typ, f.AppliedIndex(), f.Routing() != before)
		}
	}
	// Index regression: refused, nothing moves.
	for _, idx := range []uint64{0, 1, 5} {
		res := f.Apply(cmdLog(idx, mustEncode(t, fsm.CommandRebalance, fsm.Change{ExpectVersion: 1}))).(fsm.ApplyResult)
		if !errors.Is(res.Err, fsm.ErrIndexRegression) || !errors.Is(res.Err, fsm.ErrRejected) {
			t.Fatalf("index %d: got %v", idx, res.Err)
		}
		if f.AppliedIndex() != 5 || f.Routing() != before {
			t.Fatalf("index %d moved state", idx)
		}
	}
	res := f.Apply(nil).(fsm.ApplyResult)
	if !errors.Is(res.Err, fsm.ErrMalformedCommand) || res.Version != 1 {
		t.Fatalf("nil log: %+v", res)
	}
}

// randomLogs returns n logs: mostly changes computed from a shadow FSM (some
// made invalid on purpose), plus garbage, unknown commands and non-command
// logs. It starts at index 2 on a table initialized at index 1.
func randomLogs(t testing.TB, seed uint64, n int) []*raft.Log {
	rng := rand.New(rand.NewPCG(seed, 0))
	shadow := fsm.New(quietLogger())
	in := initRouting(16, 5, 3)
	shadow.Apply(cmdLog(1, mustEncode(t, fsm.CommandInitRouting, in)))
	logs := []*raft.Log{cmdLog(1, mustEncode(t, fsm.CommandInitRouting, in))}
	for i := range n {
		idx := uint64(i + 2)
		cur := shadow.Routing()
		var l *raft.Log
		switch k := rng.IntN(10); {
		case k < 6: // move a primary to one of its backups
			pid := uint32(rng.IntN(int(cur.PartitionCount)))
			p := cur.Partitions[pid]
			c := fsm.Change{ExpectVersion: cur.Version, Reason: fmt.Sprintf("move %d", pid)}
			if len(p.Backups) > 0 {
				q := moveChange(cur, pid, p.Backups[rng.IntN(len(p.Backups))])
				if rng.IntN(8) == 0 {
					q.LeaderEpoch-- // epoch regression
				}
				c.Partitions = append(c.Partitions, q)
			}
			if rng.IntN(8) == 0 {
				c.ExpectVersion-- // stale
			}
			l = cmdLog(idx, mustEncode(t, fsm.CommandRebalance, c))
		case k < 7: // voter flip
			m := cur.Members[rng.IntN(len(cur.Members))]
			m.Voter = !m.Voter
			l = cmdLog(idx, mustEncode(t, fsm.CommandSetVoter, fsm.Change{ExpectVersion: cur.Version, Upsert: []metadata.Member{m}}))
		case k < 8: // garbage or unknown
			b := make([]byte, rng.IntN(12))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			l = cmdLog(idx, b)
		case k < 9:
			l = &raft.Log{Index: idx, Type: raft.LogNoop}
		default: // a restart of a member holding replicas: stale
			m := cur.Members[rng.IntN(len(cur.Members))]
			m.Incarnation = fmt.Sprintf("r%d", i)
			m.State = metadata.MemberAlive
			l = cmdLog(idx, mustEncode(t, fsm.CommandMemberJoin, fsm.Change{ExpectVersion: cur.Version, Upsert: []metadata.Member{m}}))
		}
		shadow.Apply(l)
		logs = append(logs, l)
	}
	return logs
}

// TestDeterminism applies the same log to two FSMs: every result and every
// table must be identical, down to the snapshot bytes.
func TestDeterminism(t *testing.T) {
	logs := randomLogs(t, 42, 400)
	a, b := fsm.New(quietLogger()), fsm.New(quietLogger())
	var ok, rejected int
	for _, l := range logs {
		ra := a.Apply(l).(fsm.ApplyResult)
		rb := b.Apply(l).(fsm.ApplyResult)
		if ra.Version != rb.Version || fmt.Sprint(ra.Err) != fmt.Sprint(rb.Err) {
			t.Fatalf("index %d: %+v vs %+v", l.Index, ra, rb)
		}
		if !equalTables(a.Routing(), b.Routing()) {
			t.Fatalf("index %d: tables differ", l.Index)
		}
		if ra.Err == nil {
			ok++
		} else {
			rejected++
		}
	}
	if ok < 100 || rejected < 50 {
		t.Fatalf("weak log: %d applied, %d rejected", ok, rejected)
	}
	if !bytes.Equal(persist(t, a), persist(t, b)) {
		t.Fatalf("snapshots differ")
	}
}

// TestConcurrentReaders loads the table from many goroutines while Apply
// publishes hundreds of tables: every table a reader sees is valid, versions
// never go back, and a table loaded after AppliedIndex() includes that
// index.
func TestConcurrentReaders(t *testing.T) {
	f := newInitialized(t, 32, 4, 3)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			var last uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				applied := f.AppliedIndex()
				tbl := f.Routing()
				if err := tbl.Validate(); err != nil {
					errs <- err
					return
				}
				if tbl.Version < last || tbl.Version < applied {
					errs <- fmt.Errorf("version %d after %d, applied %d", tbl.Version, last, applied)
					return
				}
				last = tbl.Version
			}
		})
	}
	for i := range 500 {
		idx := uint64(i + 2)
		cur := f.Routing()
		pid := uint32(i % 32)
		p := cur.Partitions[pid]
		mustApplyQuiet(t, f, idx, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version,
			Partitions: []metadata.Partition{moveChange(cur, pid, p.Backups[i%len(p.Backups)])}})
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mustApplyQuiet(t testing.TB, f *fsm.FSM, index uint64, typ fsm.CommandType, body any) {
	t.Helper()
	res := f.Apply(cmdLog(index, mustEncode(t, typ, body))).(fsm.ApplyResult)
	if res.Err != nil {
		t.Fatalf("Apply(%s) at %d: %v", typ, index, res.Err)
	}
}

func TestRejectedChangeKeepsNoPartialState(t *testing.T) {
	// A change that passes every step but the last must leave no trace:
	// the members it upserted are not in the table.
	f := newInitialized(t, 4, 3, 2)
	before := f.Routing()
	c := fsm.Change{ExpectVersion: 1, Upsert: []metadata.Member{member(4, "a")},
		Partitions: []metadata.Partition{{ID: 0, Primary: "n4", Backups: []metadata.NodeID{"n4"}, State: metadata.PartitionActive, LeaderEpoch: 2}}}
	res := apply(t, f, 2, fsm.CommandMemberJoin, c)
	if !errors.Is(res.Err, fsm.ErrInvalidChange) {
		t.Fatalf("got %v", res.Err)
	}
	if _, ok := f.Routing().Member("n4"); ok || f.Routing() != before {
		t.Fatalf("partial change visible")
	}
	if !slices.EqualFunc(before.Partitions, initRoutingTable(t).Partitions, metadata.Partition.Equal) {
		t.Fatalf("published table was modified in place")
	}
}

func initRoutingTable(t testing.TB) *metadata.RoutingTable {
	return newInitialized(t, 4, 3, 2).Routing()
}

// BenchmarkApplyRebalance measures one Apply of a one-partition move on a
// default-size table (clone, check, validate, publish).
func BenchmarkApplyRebalance(b *testing.B) {
	f := fsm.New(quietLogger())
	f.Apply(cmdLog(1, mustEncode(b, fsm.CommandInitRouting, initRouting(metadata.DefaultPartitionCount, 5, 2))))
	idx := uint64(1)
	for b.Loop() {
		idx++
		cur := f.Routing()
		pid := uint32(idx % metadata.DefaultPartitionCount)
		data := mustEncode(b, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version,
			Partitions: []metadata.Partition{moveChange(cur, pid, cur.Partitions[pid].Backups[0])}})
		if res := f.Apply(cmdLog(idx, data)).(fsm.ApplyResult); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkRouting measures the readers' lock-free load under parallelism.
func BenchmarkRouting(b *testing.B) {
	f := fsm.New(quietLogger())
	f.Apply(cmdLog(1, mustEncode(b, fsm.CommandInitRouting, initRouting(metadata.DefaultPartitionCount, 5, 2))))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if f.Routing().Version != 1 {
				b.Fatal("bad version")
			}
		}
	})
}

// TestApplyRecordsPreviousPrimary: the FSM, not the proposer, records where
// a partition's data was before each primary change.
func TestApplyRecordsPreviousPrimary(t *testing.T) {
	f := newInitialized(t, 4, 3, 2)
	cur := f.Routing()
	if p := cur.Partitions[0]; p.PrevPrimary != "" || p.PrevEpoch != 0 {
		t.Fatalf("fresh partition has history: %+v", p)
	}
	old := cur.Partitions[0]
	var target metadata.NodeID
	for _, m := range cur.Members {
		if m.ID != old.Primary && !old.Holds(m.ID) {
			target = m.ID
		}
	}
	moved := moveChange(cur, 0, target)
	moved.PrevPrimary, moved.PrevEpoch = "liar", 99 // ignored
	next := mustApply(t, f, 10, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version, Partitions: []metadata.Partition{moved}})
	got := next.Partitions[0]
	if got.PrevPrimary != old.Primary || got.PrevEpoch != old.LeaderEpoch {
		t.Fatalf("after move: prev %q@%d, want %q@%d", got.PrevPrimary, got.PrevEpoch, old.Primary, old.LeaderEpoch)
	}
	// A change that keeps the primary keeps the history.
	same := got.Clone()
	same.PrevPrimary = "liar"
	next = mustApply(t, f, 11, fsm.CommandRebalance, fsm.Change{ExpectVersion: next.Version, Partitions: []metadata.Partition{same}})
	if p := next.Partitions[0]; p.PrevPrimary != old.Primary {
		t.Fatalf("unchanged primary lost its history: %+v", p)
	}
}

// TestApplyMarkWritten: a mark may only set Written; anything else is
// refused; unavailable partitions cannot be marked.
func TestApplyMarkWritten(t *testing.T) {
	f := newInitialized(t, 4, 3, 2)
	cur := f.Routing()
	p := cur.Partitions[2].Clone()
	p.Written = true
	next := mustApply(t, f, 10, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: cur.Version, Partitions: []metadata.Partition{p}})
	if !next.Partitions[2].Written || next.Partitions[1].Written {
		t.Fatalf("after mark: %+v / %+v", next.Partitions[2], next.Partitions[1])
	}
	q := next.Partitions[1].Clone()
	q.Written = true
	q.LeaderEpoch++
	res := apply(t, f, 11, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: next.Version, Partitions: []metadata.Partition{q}})
	if !errors.Is(res.Err, fsm.ErrInvalidChange) {
		t.Fatalf("mark that changes the epoch: %v", res.Err)
	}
}

// TestApplyRemembersDeparted: a removed member's incarnation is recorded
// (bounded), so a stale gossip view of it cannot make it join again.
func TestApplyRemembersDeparted(t *testing.T) {
	f := newInitialized(t, 4, 3, 2)
	cur := f.Routing()
	gone := cur.Members[2]
	ch := failover(cur, "test: n2 failed", gone.ID)
	next := mustApply(t, f, 10, fsm.CommandMemberFailed, ch)
	next = mustApply(t, f, 11, fsm.CommandMemberRemove, fsm.Change{ExpectVersion: next.Version, Remove: []metadata.NodeID{gone.ID}})
	if !next.HasDeparted(gone.ID, gone.Incarnation) || next.HasDeparted(gone.ID, "another") {
		t.Fatalf("departed = %+v", next.Departed)
	}
}

// TestApplyDerivesSyncingAndPromoted: a new backup of a written partition
// starts syncing, ReplicaInSync takes it off the list (and may do nothing
// else), a change of primary to an in-sync backup is Promoted with every
// backup syncing, and one to a syncing backup is not.
func TestApplyDerivesSyncingAndPromoted(t *testing.T) {
	f := newInitialized(t, 4, 3, 2)
	cur := f.Routing()
	p := cur.Partitions[0].Clone()
	if len(p.Syncing) != 0 || p.Promoted {
		t.Fatalf("fresh partition: %+v", p)
	}
	p.Written = true
	cur = mustApply(t, f, 10, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: cur.Version, Partitions: []metadata.Partition{p}})
	if got := cur.Partitions[0]; len(got.Syncing) != 0 {
		t.Fatalf("marking written made backups syncing: %+v", got)
	}
	// Replace the backup with the third member: it must be filled.
	old := cur.Partitions[0]
	var third metadata.NodeID
	for _, m := range cur.Members {
		if !old.Holds(m.ID) {
			third = m.ID
		}
	}
	nb := old.Clone()
	nb.Backups = []metadata.NodeID{third}
	nb.Syncing = nil // a proposal cannot declare a backup in sync
	cur = mustApply(t, f, 11, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version, Partitions: []metadata.Partition{nb}})
	if got := cur.Partitions[0]; !slices.Equal(got.Syncing, []metadata.NodeID{third}) || got.InSync(third) {
		t.Fatalf("new backup not syncing: %+v", got)
	}
	// Promoting the syncing backup: not Promoted (it must pull).
	swap := cur.Partitions[0].Clone()
	swap.Primary, swap.Backups = third, []metadata.NodeID{old.Primary}
	swap.LeaderEpoch++
	after := mustApply(t, f, 12, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version, Partitions: []metadata.Partition{swap}})
	if got := after.Partitions[0]; got.Promoted || !slices.Equal(got.Syncing, []metadata.NodeID{old.Primary}) {
		t.Fatalf("promoting a syncing backup: %+v", got)
	}
	// Instead on a fresh FSM: mark it in sync first, then promote.
	f2 := newInitialized(t, 4, 3, 2)
	c2 := f2.Routing()
	w := c2.Partitions[0].Clone()
	w.Written = true
	c2 = mustApply(t, f2, 10, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{w}})
	nb2 := c2.Partitions[0].Clone()
	nb2.Backups = []metadata.NodeID{third}
	c2 = mustApply(t, f2, 11, fsm.CommandRebalance, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{nb2}})
	// A ReplicaInSync that changes anything else is refused.
	bad := c2.Partitions[0].Clone()
	bad.Syncing = nil
	bad.LeaderEpoch++
	if res := apply(t, f2, 12, fsm.CommandReplicaInSync, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{bad}}); !errors.Is(res.Err, fsm.ErrInvalidChange) {
		t.Fatalf("in-sync that changes the epoch: %v", res.Err)
	}
	same := c2.Partitions[0].Clone()
	if res := apply(t, f2, 13, fsm.CommandReplicaInSync, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{same}}); !errors.Is(res.Err, fsm.ErrInvalidChange) {
		t.Fatalf("in-sync that changes nothing: %v", res.Err)
	}
	in := c2.Partitions[0].Clone()
	in.Syncing = nil
	c2 = mustApply(t, f2, 14, fsm.CommandReplicaInSync, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{in}})
	if got := c2.Partitions[0]; len(got.Syncing) != 0 || !got.InSync(third) {
		t.Fatalf("after in-sync: %+v", got)
	}
	prom := c2.Partitions[0].Clone()
	prom.Primary, prom.Backups = third, []metadata.NodeID{old.Primary}
	prom.LeaderEpoch++
	c2 = mustApply(t, f2, 15, fsm.CommandRebalance, fsm.Change{ExpectVersion: c2.Version, Partitions: []metadata.Partition{prom}})
	if got := c2.Partitions[0]; !got.Promoted || !slices.Equal(got.Syncing, []metadata.NodeID{old.Primary}) || got.PrevPrimary != old.Primary {
		t.Fatalf("promoting an in-sync backup: %+v", got)
	}
}

// TestApplyMarkWrittenCommutes: a mark computed from an older version still
// applies when its partition did not change since, and is refused when it
// did; other commands still need the current version.
func TestApplyMarkWrittenCommutes(t *testing.T) {
	f := newInitialized(t, 4, 3, 2)
	base := f.Routing()
	// An unrelated change moves the version on.
	other := base.Partitions[1].Clone()
	other.Written = true
	cur := mustApply(t, f, 10, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: base.Version, Partitions: []metadata.Partition{other}})
	p := base.Partitions[2].Clone()
	p.Written = true
	next := mustApply(t, f, 11, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: base.Version, Partitions: []metadata.Partition{p}})
	if !next.Partitions[2].Written || next.Version == cur.Version {
		t.Fatalf("stale-version mark not applied: %+v", next.Partitions[2])
	}
	// The partition changes (new primary): a mark of the old one is refused.
	moved := next.Partitions[3].Clone()
	stale := moved.Clone()
	stale.Written = true
	for _, m := range next.Members {
		if !moved.Holds(m.ID) {
			moved.Backups = []metadata.NodeID{m.ID}
		}
	}
	next = mustApply(t, f, 12, fsm.CommandRebalance, fsm.Change{ExpectVersion: next.Version, Partitions: []metadata.Partition{moved}})
	if res := apply(t, f, 13, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: base.Version, Partitions: []metadata.Partition{stale}}); !errors.Is(res.Err, fsm.ErrInvalidChange) {
		t.Fatalf("mark of a partition that changed since: %v", res.Err)
	}
	// A future version is refused; a rebalance still needs the current one.
	if res := apply(t, f, 14, fsm.CommandMarkWritten, fsm.Change{ExpectVersion: next.Version + 100, Partitions: []metadata.Partition{stale}}); !errors.Is(res.Err, fsm.ErrVersionConflict) {
		t.Fatalf("mark from the future: %v", res.Err)
	}
	if res := apply(t, f, 15, fsm.CommandRebalance, fsm.Change{ExpectVersion: base.Version, Partitions: []metadata.Partition{moved}}); !errors.Is(res.Err, fsm.ErrVersionConflict) {
		t.Fatalf("stale rebalance: %v", res.Err)
	}
}
