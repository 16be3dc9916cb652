package fsm_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

// tWriter routes log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func id(i int) metadata.NodeID { return metadata.NodeID(fmt.Sprintf("n%d", i)) }

func member(i int, inc string) metadata.Member {
	return metadata.Member{
		ID:          id(i),
		Incarnation: inc,
		ClusterAddr: fmt.Sprintf("127.0.0.1:%d", 4000+i),
		GossipAddr:  fmt.Sprintf("127.0.0.1:%d", 5000+i),
		HTTPAddr:    fmt.Sprintf("127.0.0.1:%d", 6000+i),
		RESPAddr:    fmt.Sprintf("127.0.0.1:%d", 7000+i),
		State:       metadata.MemberAlive,
		Voter:       i <= 3,
	}
}

// initRouting is a valid InitRouting: members n1..nM (alive, incarnation
// "a"), partition p with primary n(p mod M + 1) and the next replicas-1
// members as backups, leader epoch 1. Partitions are listed in reverse order
// to show that order does not matter.
func initRouting(partitions uint32, members, replicas int) fsm.InitRouting {
	in := fsm.InitRouting{PartitionCount: partitions, Replicas: replicas}
	for i := range members {
		in.Members = append(in.Members, member(i+1, "a"))
	}
	for p := int(partitions) - 1; p >= 0; p-- {
		part := metadata.Partition{ID: uint32(p), State: metadata.PartitionActive, LeaderEpoch: 1}
		for r := range replicas {
			n := id((p+r)%members + 1)
			if r == 0 {
				part.Primary = n
			} else {
				part.Backups = append(part.Backups, n)
			}
		}
		in.Partitions = append(in.Partitions, part)
	}
	return in
}

func mustEncode(t testing.TB, typ fsm.CommandType, body any) []byte {
	t.Helper()
	b, err := fsm.Encode(typ, body)
	if err != nil {
		t.Fatalf("Encode(%s): %v", typ, err)
	}
	return b
}

func cmdLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// apply applies a command at index and returns the result.
func apply(t testing.TB, f *fsm.FSM, index uint64, typ fsm.CommandType, body any) fsm.ApplyResult {
	t.Helper()
	res, ok := f.Apply(cmdLog(index, mustEncode(t, typ, body))).(fsm.ApplyResult)
	if !ok {
		t.Fatalf("Apply returned %T", res)
	}
	return res
}

// mustApply applies a command that must succeed.
func mustApply(t testing.TB, f *fsm.FSM, index uint64, typ fsm.CommandType, body any) *metadata.RoutingTable {
	t.Helper()
	res := apply(t, f, index, typ, body)
	if res.Err != nil {
		t.Fatalf("Apply(%s) at %d: %v", typ, index, res.Err)
	}
	if res.Version != index {
		t.Fatalf("Apply(%s) at %d: version %d", typ, index, res.Version)
	}
	got := f.Routing()
	if got.Version != index {
		t.Fatalf("published version %d, want %d", got.Version, index)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("published invalid table: %v", err)
	}
	return got
}

// newInitialized returns an FSM with initRouting(partitions, members,
// replicas) applied at index 1.
func newInitialized(t testing.TB, partitions uint32, members, replicas int) *fsm.FSM {
	t.Helper()
	f := fsm.New(testLogger(t))
	mustApply(t, f, 1, fsm.CommandInitRouting, initRouting(partitions, members, replicas))
	return f
}

func equalTables(a, b *metadata.RoutingTable) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Version == b.Version && a.PartitionCount == b.PartitionCount && a.Replicas == b.Replicas &&
		slices.Equal(a.Members, b.Members) &&
		slices.EqualFunc(a.Partitions, b.Partitions, metadata.Partition.Equal)
}

// The helpers below compute changes the way the leader would: results from
// the table at its version.

// moveChange makes newPrimary the primary of partition pid (its old primary
// becomes a backup in newPrimary's place, or the first backup), bumping the
// leader epoch.
func moveChange(cur *metadata.RoutingTable, pid uint32, newPrimary metadata.NodeID) metadata.Partition {
	p := cur.Partitions[pid].Clone()
	old := p.Primary
	p.Primary = newPrimary
	p.LeaderEpoch++
	if i := slices.Index(p.Backups, newPrimary); i >= 0 {
		p.Backups[i] = old
	} else if len(p.Backups) > 0 {
		p.Backups[0] = old
	}
	return p
}

// failover marks the given members failed: their replicas are dropped, a
// surviving backup is promoted where the primary failed (new leader
// epoch), and a partition with no survivor becomes unavailable.
func failover(cur *metadata.RoutingTable, reason string, failed ...metadata.NodeID) fsm.Change {
	c := fsm.Change{ExpectVersion: cur.Version, Reason: reason}
	for _, n := range failed {
		m, _ := cur.Member(n)
		m.State = metadata.MemberFailed
		c.Upsert = append(c.Upsert, m)
	}
	for _, p := range cur.Partitions {
		if !slices.ContainsFunc(failed, p.Holds) {
			continue
		}
		q := p.Clone()
		q.Backups = slices.DeleteFunc(q.Backups, func(b metadata.NodeID) bool { return slices.Contains(failed, b) })
		if slices.Contains(failed, q.Primary) {
			q.LeaderEpoch++
			if len(q.Backups) > 0 {
				q.Primary, q.Backups = q.Backups[0], q.Backups[1:]
			} else {
				q.Primary, q.Backups, q.State, q.HandoffTo = "", nil, metadata.PartitionUnavailable, ""
			}
		}
		if q.HandoffTo != "" && slices.Contains(failed, q.HandoffTo) {
			q.HandoffTo, q.State = "", metadata.PartitionActive
		}
		c.Partitions = append(c.Partitions, q)
	}
	return c
}
