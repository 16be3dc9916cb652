package fsm_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

// cluster is a Raft cluster over raft's in-memory transport, each node with
// its own FSM.
type cluster struct {
	t      *testing.T
	rafts  []*raft.Raft
	fsms   []*fsm.FSM
	trans  []*raft.InmemTransport
	config raft.Configuration
}

func nodeConfig(t *testing.T, i int) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(fmt.Sprintf("n%d", i))
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 20 // snapshots only when the test asks
	c.TrailingLogs = 1            // so a new member must be sent a snapshot
	c.LogLevel = "WARN"
	c.LogOutput = tWriter{t}
	return c
}

// newCluster starts n voters and bootstraps them.
func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t}
	for i := 1; i <= n; i++ {
		c.add(i)
	}
	for _, a := range c.trans {
		c.config.Servers = append(c.config.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(a.LocalAddr()), Address: a.LocalAddr()})
	}
	if err := c.rafts[0].BootstrapCluster(c.config).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return c
}

// add starts node i, connected to every existing node, without adding it to
// the Raft configuration.
func (c *cluster) add(i int) int {
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("n%d", i)))
	for _, other := range c.trans {
		other.Connect(addr, trans)
		trans.Connect(other.LocalAddr(), other)
	}
	f := fsm.New(testLogger(c.t).With("node", i))
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(nodeConfig(c.t, i), f, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		c.t.Fatalf("NewRaft: %v", err)
	}
	c.t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			c.t.Errorf("shutdown n%d: %v", i, err)
		}
		_ = trans.Close()
	})
	c.rafts = append(c.rafts, r)
	c.fsms = append(c.fsms, f)
	c.trans = append(c.trans, trans)
	return len(c.rafts) - 1
}

// leader waits for a leader among the nodes.
func (c *cluster) leader(ctx context.Context) *raft.Raft {
	c.t.Helper()
	for {
		for _, r := range c.rafts {
			if r.State() == raft.Leader {
				return r
			}
		}
		// Leadership changes are announced on each node's LeaderCh.
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		for _, r := range c.rafts {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.LeaderCh())})
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			c.t.Fatalf("no leader: %v", ctx.Err())
		}
	}
}

// propose applies a command through the current leader, retrying when
// leadership moves, and returns the log index and result.
func (c *cluster) propose(ctx context.Context, typ fsm.CommandType, body any) (uint64, fsm.ApplyResult) {
	c.t.Helper()
	data := mustEncode(c.t, typ, body)
	for {
		fut := c.leader(ctx).Apply(data, 5*time.Second)
		err := fut.Error()
		switch {
		case err == nil:
			return fut.Index(), fut.Response().(fsm.ApplyResult)
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			if ctx.Err() != nil {
				c.t.Fatalf("propose %s: %v", typ, ctx.Err())
			}
			continue
		default:
			c.t.Fatalf("propose %s: %v", typ, err)
		}
	}
}

// waitSame waits until every FSM applied index and checks that they all
// hold equal tables.
func (c *cluster) waitSame(ctx context.Context, index uint64) *metadata.RoutingTable {
	c.t.Helper()
	var first *metadata.RoutingTable
	for i, f := range c.fsms {
		tbl, err := f.WaitApplied(ctx, index)
		if err != nil {
			c.t.Fatalf("n%d: %v", i+1, err)
		}
		// Only the entries up to index have been proposed, so every FSM is
		// at exactly that table.
		if err := tbl.Validate(); err != nil {
			c.t.Fatalf("n%d: invalid table: %v", i+1, err)
		}
		if first == nil {
			first = tbl
		} else if !equalTables(first, tbl) {
			c.t.Fatalf("n%d has version %d, n1 version %d: tables differ", i+1, tbl.Version, first.Version)
		}
	}
	return first
}

func TestRaftCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, 3)

	idx, res := c.propose(ctx, fsm.CommandInitRouting, initRouting(metadata.DefaultPartitionCount, 3, 2))
	if res.Err != nil || res.Version != idx {
		t.Fatalf("init: %+v at %d", res, idx)
	}
	cur := c.waitSame(ctx, idx)
	if cur.Version != idx || !cur.Initialized() {
		t.Fatalf("init table version %d", cur.Version)
	}

	// A join, then moves onto the new member.
	idx, res = c.propose(ctx, fsm.CommandMemberJoin, fsm.Change{ExpectVersion: cur.Version,
		Upsert: []metadata.Member{member(4, "a")}, Reason: "n4 joined"})
	if res.Err != nil {
		t.Fatalf("join: %v", res.Err)
	}
	cur = c.waitSame(ctx, idx)
	for pid := uint32(0); pid < 10; pid++ {
		idx, res = c.propose(ctx, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version,
			Partitions: []metadata.Partition{moveChange(cur, pid, "n4")}, Reason: fmt.Sprintf("move %d", pid)})
		if res.Err != nil {
			t.Fatalf("rebalance %d: %v", pid, res.Err)
		}
		cur = c.waitSame(ctx, idx)
	}

	// A change computed from an old table is rejected everywhere alike.
	stale := cur.Version
	idx, res = c.propose(ctx, fsm.CommandMemberFailed, failover(cur, "n2 dead", "n2"))
	if res.Err != nil {
		t.Fatalf("failover: %v", res.Err)
	}
	cur = c.waitSame(ctx, idx)
	idx, res = c.propose(ctx, fsm.CommandRebalance, fsm.Change{ExpectVersion: stale})
	if !errors.Is(res.Err, fsm.ErrVersionConflict) || res.Version != cur.Version {
		t.Fatalf("stale change: %+v", res)
	}
	if got := c.waitSame(ctx, idx); got.Version != cur.Version {
		t.Fatalf("rejected change moved the version to %d", got.Version)
	}

	// A snapshot, then a fifth node that can only catch up by installing it
	// (the log before the snapshot is compacted): its FSM is Restored.
	leader := c.leader(ctx)
	if err := leader.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	n := c.add(5)
	if err := leader.AddNonvoter(raft.ServerID("n5"), c.trans[n].LocalAddr(), 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("add nonvoter: %v", err)
	}
	idx, res = c.propose(ctx, fsm.CommandMemberRemove, fsm.Change{ExpectVersion: cur.Version,
		Remove: []metadata.NodeID{"n2"}, Reason: "n2 removed"})
	if res.Err != nil {
		t.Fatalf("remove: %v", res.Err)
	}
	cur = c.waitSame(ctx, idx)
	if _, ok := cur.Member("n2"); ok || len(cur.Members) != 3 {
		t.Fatalf("members after remove: %+v", cur.Members)
	}
}
