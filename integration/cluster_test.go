package integration

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// convergeTimeout bounds how long a cluster may take to settle in tests; the
// measured figures (README) are far below it.
const convergeTimeout = 30 * time.Second

// checkBalanced fails unless every alive member is within ±1 of the mean
// primaries and backups and no partition is unavailable.
func checkBalanced(t *testing.T, tbl *metadata.RoutingTable) {
	t.Helper()
	alive := tbl.AliveMembers()
	loads := tbl.Loads()
	var minP, maxP, minB, maxB = 1 << 30, -1, 1 << 30, -1
	for _, id := range alive {
		l := loads[id]
		minP, maxP = min(minP, l.Primaries), max(maxP, l.Primaries)
		minB, maxB = min(minB, l.Backups), max(maxB, l.Backups)
	}
	if maxP-minP > 1 || maxB-minB > 1 {
		t.Fatalf("routing v%d unbalanced: primaries %d..%d, backups %d..%d: %v", tbl.Version, minP, maxP, minB, maxB, loads)
	}
	for _, p := range tbl.Partitions {
		if p.State != metadata.PartitionActive {
			t.Fatalf("partition %d is %s", p.ID, p.State)
		}
		if want := min(tbl.Replicas, len(alive)); len(p.Replicas()) != want {
			t.Fatalf("partition %d has %d replicas, want %d", p.ID, len(p.Replicas()), want)
		}
	}
}

// checkIdentical fails unless every running member holds a deeply equal
// table at the same version.
func checkIdentical(t *testing.T, c *testcluster.Cluster) *metadata.RoutingTable {
	t.Helper()
	var first *metadata.RoutingTable
	for _, m := range c.Running() {
		tbl := m.Node().Routing()
		if first == nil {
			first = tbl
			continue
		}
		if !reflect.DeepEqual(first, tbl) {
			t.Fatalf("%s's table v%d differs from %s's v%d", m.Name, tbl.Version, c.Running()[0].Name, first.Version)
		}
	}
	return first
}

// TestFiveMembersStartedConcurrentlyConverge is the Olric v0.5.5 scenario:
// five members start at once. Here every routing change, the first one
// included, is a committed Raft entry, so the members converge on one
// version with identical, balanced tables (and -race finds nothing).
func TestFiveMembersStartedConcurrentlyConverge(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	got := checkIdentical(t, c)
	if got.Version != tbl.Version {
		t.Fatalf("version moved after convergence: %d -> %d", tbl.Version, got.Version)
	}
	checkBalanced(t, got)
	if len(got.Members) != 5 || len(got.AliveMembers()) != 5 {
		t.Fatalf("members = %d (alive %d), want 5", len(got.Members), len(got.AliveMembers()))
	}
	voters := 0
	for _, m := range got.Members {
		if m.Voter {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("voters = %d, want 3 (raft-voters default)", voters)
	}
	if got.PartitionCount != metadata.DefaultPartitionCount || got.Replicas != metadata.DefaultReplicas {
		t.Fatalf("settings = %d partitions, %d replicas", got.PartitionCount, got.Replicas)
	}
}

// TestSeedAndJoinConverge forms the cluster the other way: one member
// bootstraps, the others join it.
func TestSeedAndJoinConverge(t *testing.T) {
	c := testcluster.New(t, 4, testcluster.Options{SeedBootstrap: true})
	c.Start(0)
	c.WaitConverged(convergeTimeout)
	for i := 1; i < 4; i++ {
		c.Start(i)
	}
	checkBalanced(t, c.WaitConverged(convergeTimeout))
	checkIdentical(t, c)
}

// TestLeaderKilledFailoverAndRestart kills the Raft leader: a new leader
// reconciles, the dead member is marked failed and holds nothing, routing
// is rebalanced over the rest; restarted with its data dir, the member
// rejoins with a new incarnation and takes its share again.
func TestLeaderKilledFailoverAndRestart(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	c.StartAll()
	before := c.WaitConverged(convergeTimeout)
	old := c.Leader(convergeTimeout)
	oldInc := old.Node().Incarnation()
	start := time.Now()
	c.Kill(old.Index)

	var after *metadata.RoutingTable
	c.WaitFor(convergeTimeout, "failover", func() error {
		tbl, err := convergedWithFailed(c, old.Name)
		after = tbl
		return err
	})
	t.Logf("leader %s killed: failed over and rebalanced after %v", old.Name, time.Since(start))
	// The dead voter is replaced: a healthy non-voter is promoted so three
	// live voters remain.
	c.WaitFor(convergeTimeout, "a non-voter promoted in place of the dead voter", func() error {
		tbl := c.Running()[0].Node().Routing()
		live := 0
		for _, m := range tbl.Members {
			if m.Voter && m.State == metadata.MemberAlive {
				live++
			}
		}
		if live != 3 {
			return fmt.Errorf("routing v%d has %d live voters", tbl.Version, live)
		}
		return nil
	})
	if nl := c.Leader(convergeTimeout); nl.Name == old.Name {
		t.Fatalf("dead member still leader")
	}
	if after.Version <= before.Version {
		t.Fatalf("version did not advance: %d -> %d", before.Version, after.Version)
	}
	// Every partition the dead member was primary of is now led by a member
	// that was its backup before (failover, not a fresh empty copy), with a
	// higher leader epoch.
	for _, p := range before.Partitions {
		if p.Primary != old.Name {
			continue
		}
		q := after.Partitions[p.ID]
		if q.LeaderEpoch <= p.LeaderEpoch {
			t.Fatalf("partition %d: epoch %d -> %d", p.ID, p.LeaderEpoch, q.LeaderEpoch)
		}
		if q.Primary == old.Name || q.State != metadata.PartitionActive {
			t.Fatalf("partition %d not failed over: %+v", p.ID, q)
		}
	}

	start = time.Now()
	c.Start(old.Index)
	tbl := c.WaitConverged(convergeTimeout)
	t.Logf("%s restarted: rejoined and rebalanced after %v", old.Name, time.Since(start))
	m, _ := tbl.Member(old.Name)
	if m.Incarnation == oldInc || m.Incarnation != old.Node().Incarnation() {
		t.Fatalf("rejoined with incarnation %s, old %s, running %s", m.Incarnation, oldInc, old.Node().Incarnation())
	}
	checkBalanced(t, tbl)
	checkIdentical(t, c)
}

// convergedWithFailed checks that every running member agrees on a table in
// which id is failed, holds no replica, and the others are balanced.
func convergedWithFailed(c *testcluster.Cluster, id metadata.NodeID) (*metadata.RoutingTable, error) {
	var first *metadata.RoutingTable
	for _, m := range c.Running() {
		tbl := m.Node().Routing()
		if first == nil {
			first = tbl
		} else if tbl.Version != first.Version {
			return nil, fmt.Errorf("versions differ: %d vs %d", first.Version, tbl.Version)
		}
	}
	dead, ok := first.Member(id)
	if !ok || dead.State != metadata.MemberFailed {
		return nil, fmt.Errorf("%s is %v in v%d", id, dead.State, first.Version)
	}
	if l := first.Loads()[id]; l.Primaries+l.Backups > 0 {
		return nil, fmt.Errorf("%s still holds %+v", id, l)
	}
	want, err := metadata.Place(first.Partitions, first.PartitionCount, first.Replicas, first.AliveMembers())
	if err != nil {
		return nil, err
	}
	for i := range want {
		if !want[i].Equal(first.Partitions[i]) {
			return nil, fmt.Errorf("not rebalanced yet")
		}
	}
	return first, nil
}

// TestGracefulLeaveAndRemove: a follower leaves; the leader leaves (handing
// leadership over first); a killed member is removed by the operator.
func TestGracefulLeaveAndRemove(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()

	// A follower leaves.
	leader := c.Leader(convergeTimeout)
	follower := c.Members[(leader.Index+1)%5]
	if err := follower.Node().Leave(ctx); err != nil {
		t.Fatalf("leave %s: %v", follower.Name, err)
	}
	c.Kill(follower.Index) // already closed; drop the handle
	tbl := c.WaitConverged(convergeTimeout)
	if _, ok := tbl.Member(follower.Name); ok {
		t.Fatalf("%s still listed after leave", follower.Name)
	}
	checkBalanced(t, tbl)

	// The leader leaves: leadership moves first.
	leader = c.Leader(convergeTimeout)
	if err := leader.Node().Leave(ctx); err != nil {
		t.Fatalf("leave leader %s: %v", leader.Name, err)
	}
	c.Kill(leader.Index)
	tbl = c.WaitConverged(convergeTimeout)
	if _, ok := tbl.Member(leader.Name); ok {
		t.Fatalf("old leader %s still listed after leave", leader.Name)
	}
	if nl := c.Leader(convergeTimeout); nl.Name == leader.Name {
		t.Fatalf("leadership not handed over")
	}

	// Remove: refused for alive and unknown members; works for a dead one.
	running := c.Running()
	any := running[0].Node()
	if err := any.RemoveMember(ctx, running[1].Name); !errors.Is(err, node.ErrMemberAlive) {
		t.Fatalf("remove alive member: %v, want ErrMemberAlive", err)
	}
	if err := any.RemoveMember(ctx, "nobody"); !errors.Is(err, node.ErrUnknownMember) {
		t.Fatalf("remove unknown member: %v, want ErrUnknownMember", err)
	}
	if err := any.RemoveMember(ctx, "bad id!"); !errors.Is(err, node.ErrInvalidArgument) {
		t.Fatalf("remove bad id: %v, want ErrInvalidArgument", err)
	}
	victim := running[2]
	if victim.Node().IsLeader() {
		victim = running[1]
	}
	c.Kill(victim.Index)
	c.WaitFor(convergeTimeout, "victim marked failed", func() error {
		_, err := convergedWithFailed(c, victim.Name)
		return err
	})
	rest := c.Running()
	if err := rest[len(rest)-1].Node().RemoveMember(ctx, victim.Name); err != nil {
		t.Fatalf("remove dead %s: %v", victim.Name, err)
	}
	tbl = c.WaitConverged(convergeTimeout)
	if _, ok := tbl.Member(victim.Name); ok {
		t.Fatalf("%s still listed after remove", victim.Name)
	}
	if len(tbl.Members) != 2 {
		t.Fatalf("members after leave, leave, remove: %+v, want 2", tbl.Members)
	}
}

// TestIsolatedLeaderCannotChangeRouting cuts the leader off: the majority
// elects a new leader and fails the old one over; the isolated member
// commits nothing (its proposals time out); after healing everyone agrees.
func TestIsolatedLeaderCannotChangeRouting(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	old := c.Leader(convergeTimeout)
	versionBefore := old.Node().Routing().Version
	c.Net.Isolate(string(old.Name))

	// The isolated member's routing never moves while it is cut off.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := old.Node().ProposeChange(ctx, fsm.CommandRebalance, fsmRebalanceNoop(old.Node().Routing().Version))
	cancel()
	if err == nil {
		t.Fatalf("isolated old leader committed a change")
	}
	var majority []*testcluster.Member
	for _, m := range c.Running() {
		if m != old {
			majority = append(majority, m)
		}
	}
	c.WaitFor(convergeTimeout, "majority fails the isolated leader over", func() error {
		for _, m := range majority {
			tbl := m.Node().Routing()
			mem, _ := tbl.Member(old.Name)
			if mem.State != metadata.MemberFailed {
				return fmt.Errorf("%s sees %s as %s", m.Name, old.Name, mem.State)
			}
		}
		return nil
	})
	if v := old.Node().Routing().Version; v != versionBefore {
		t.Fatalf("isolated member applied routing v%d (was v%d) while cut off", v, versionBefore)
	}
	c.Net.Heal()
	tbl := c.WaitConverged(convergeTimeout)
	checkBalanced(t, tbl)
	checkIdentical(t, c)
}
