package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// followerVoters returns the running voters that are not the leader.
func followerVoters(c *testcluster.Cluster, tbl *metadata.RoutingTable, leader *testcluster.Member) []*testcluster.Member {
	var out []*testcluster.Member
	for _, m := range c.Running() {
		if mem, _ := tbl.Member(m.Name); mem.Voter && m != leader {
			out = append(out, m)
		}
	}
	return out
}

// canCommit checks that the leader still commits routing changes.
func canCommit(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	c.WaitFor(convergeTimeout, "a leader that commits", func() error {
		for _, m := range c.Running() {
			n := m.Node()
			if !n.IsLeader() {
				continue
			}
			_, err := n.ProposeChange(context.Background(), fsm.CommandRebalance, fsmRebalanceNoop(n.Routing().Version))
			return err
		}
		return fmt.Errorf("no leader")
	})
}

// TestVoterLeavesWhileAnotherVoterIsDownPromotesFirst: of three voters one
// has just died (not yet detected) when a second one leaves. Removing the
// leaver outright would leave {leader, dead}: no quorum. The leader first
// promotes the healthy non-voter, so the leave succeeds and the cluster
// keeps committing.
func TestVoterLeavesWhileAnotherVoterIsDownPromotesFirst(t *testing.T) {
	c := testcluster.New(t, 4, testcluster.Options{})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	leader := c.Leader(convergeTimeout)
	fv := followerVoters(c, tbl, leader)
	if len(fv) != 2 {
		t.Fatalf("want 2 follower voters, got %d", len(fv))
	}
	dead, leaver := fv[0], fv[1]
	c.Kill(dead.Index)
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := leaver.Node().Leave(ctx); err != nil {
		t.Fatalf("leave with a voter down and a non-voter available: %v", err)
	}
	c.Kill(leaver.Index) // already closed by Leave; drop the handle
	canCommit(t, c)
	c.WaitFor(convergeTimeout, "dead voter marked failed", func() error {
		_, err := convergedWithFailed(c, dead.Name)
		return err
	})
}

// TestVoterLeaveRefusedWhenItWouldLoseQuorum: three voters, no non-voter;
// one has just died when a second one asks to leave. The leave is refused
// with ErrQuorumAtRisk instead of leaving Raft with {leader, dead}, and
// the cluster keeps committing.
func TestVoterLeaveRefusedWhenItWouldLoseQuorum(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	leader := c.Leader(convergeTimeout)
	fv := followerVoters(c, tbl, leader)
	dead, leaver := fv[0], fv[1]
	c.Kill(dead.Index)
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	err := leaver.Node().Leave(ctx)
	if !errors.Is(err, node.ErrQuorumAtRisk) {
		t.Fatalf("leave = %v, want ErrQuorumAtRisk", err)
	}
	if st := leaver.Node().Status(); st.State != "running" {
		t.Fatalf("refused leaver is %s, want running", st.State)
	}
	canCommit(t, c)
	// Once the dead member is back, the leave goes through.
	c.Start(dead.Index)
	c.WaitConverged(convergeTimeout)
	if err := leaver.Node().Leave(ctx); err != nil {
		t.Fatalf("leave after the voter came back: %v", err)
	}
	c.Kill(leaver.Index)
	tbl = c.WaitConverged(convergeTimeout)
	if _, ok := tbl.Member(leaver.Name); ok {
		t.Fatalf("%s still listed after leave", leaver.Name)
	}
}
