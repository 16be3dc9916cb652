package integration

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
)

// TestRejoinedMemberIgnoresItsPredecessorsPartitions: a member is killed,
// removed by the operator and started again with an empty data dir under
// the same id (what `make jepsen` with the churn nemesis does). It replays
// the Raft log, whose old routing tables assign partitions to its id —
// to its previous incarnation, whose data died with it. The new process
// must not take them for its own: it must not count them as partitions it
// still has to hand over (a graceful leave then waited its whole 30 s
// budget for handovers that never come and logged "leaving before every
// partition was handed over"), nor act as their primary.
func TestRejoinedMemberIgnoresItsPredecessorsPartitions(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	victim := c.Members[(leader.Index+1)%len(c.Members)]
	// Writes mark the partitions written: only written partitions are
	// handed over.
	for i := range 400 {
		if _, err := put(ctx, leader, "rejoin", fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	before := leader.Node().Routing()
	led := 0
	for _, p := range before.Partitions {
		if p.Primary == victim.Name && p.Written {
			led++
		}
	}
	if led == 0 {
		t.Fatalf("%s leads no written partition", victim.Name)
	}

	c.Kill(victim.Index)
	c.WaitFor(convergeTimeout, "victim failed over", func() error {
		_, err := convergedWithFailed(c, victim.Name)
		return err
	})
	if err := leader.Node().RemoveMember(ctx, victim.Name); err != nil {
		t.Fatalf("remove %s: %v", victim.Name, err)
	}
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(victim.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Start(victim.Index)
	tbl := c.WaitConverged(convergeTimeout)
	m, ok := tbl.Member(victim.Name)
	if !ok || m.State != metadata.MemberAlive || m.Incarnation != victim.Node().Incarnation() {
		t.Fatalf("%s not rejoined as its new incarnation: %+v", victim.Name, m)
	}
	// The partitions its predecessor led before the failover still name
	// it as their previous primary unless they moved since.
	stale := 0
	for _, p := range tbl.Partitions {
		if p.PrevPrimary == victim.Name && p.Primary != victim.Name && p.Written {
			stale++
		}
	}
	t.Logf("%s led %d written partitions; %d still name it as previous primary", victim.Name, led, stale)
	c.WaitFor(convergeTimeout/3, "nothing to hand over on the rejoined member", func() error {
		if n := victim.Node().Status().HandoverPending; n != 0 {
			return fmt.Errorf("%s counts %d partitions not yet handed over", victim.Name, n)
		}
		return nil
	})
}
