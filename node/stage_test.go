package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// TestPromotionWaitsForTheNewPrimarysCopies: a staged move whose new
// primary is in sync is promoted only once that member holds no syncing
// replica anywhere (while copies fill it, a promotion's fence call waits
// for a CPU: the partition pauses for it); a promotion to a member with
// nothing left to fill, and a failover away from an ineligible primary, go
// at once.
func TestPromotionWaitsForTheNewPrimarysCopies(t *testing.T) {
	part := func(id uint32, primary metadata.NodeID, backups, syncing []metadata.NodeID) metadata.Partition {
		return metadata.Partition{ID: id, Primary: primary, Backups: backups, Syncing: syncing,
			State: metadata.PartitionActive, LeaderEpoch: 1, Written: true}
	}
	ids := func(s ...metadata.NodeID) []metadata.NodeID { return s }
	table := func(p1Syncing []metadata.NodeID) *metadata.RoutingTable {
		return &metadata.RoutingTable{Version: 10, PartitionCount: 3, Replicas: 2, Partitions: []metadata.Partition{
			part(0, "a", ids("d", "b"), nil),       // d in sync: ready to be promoted
			part(1, "b", ids("d", "c"), p1Syncing), // d maybe still filling
			part(2, "c", ids("d", "a"), nil),       // c is leaving: d takes over
		}}
	}
	// What placement asks for: d leads 0 and 2.
	placed := func() []metadata.Partition {
		return []metadata.Partition{
			part(0, "d", ids("a"), nil),
			part(1, "b", ids("d"), nil),
			part(2, "d", ids("a"), nil),
		}
	}
	eligible := ids("a", "b", "d") // c is leaving

	busy := table(ids("d"))
	next := stageMoves(busy, placed(), eligible)
	if next[0].Primary != "a" || !slices.Equal(next[0].Backups, busy.Partitions[0].Backups) {
		t.Fatalf("partition 0 while d still fills partition 1: %+v, want it kept as it is (led by a)", next[0])
	}
	if next[2].Primary != "d" {
		t.Fatalf("partition 2, away from leaving c: %+v, want d at once", next[2])
	}

	idle := table(nil)
	next = stageMoves(idle, placed(), eligible)
	if next[0].Primary != "d" {
		t.Fatalf("partition 0 once d has nothing left to fill: %+v, want d promoted", next[0])
	}
}

// unanswered is a Raft future that is not answered until answer is
// closed (as Raft leaves one it took just before shutting down).
type unanswered struct{ answer chan struct{} }

func (u unanswered) Error() error {
	<-u.answer
	return ErrClosed
}

// TestFutureErrorEndsWhenTheNodeStops: waiting for a Raft future that is
// never answered ends once the node stops (Close waits for the goroutines
// that wait for Raft: one waiting for ever held up Close for ever).
func TestFutureErrorEndsWhenTheNodeStops(t *testing.T) {
	n := &Node{stop: make(chan struct{})}
	f := unanswered{answer: make(chan struct{})}
	defer close(f.answer) // its waiting goroutine ends (goleak)
	done := make(chan error, 1)
	go func() { done <- n.futureError(f) }()
	close(n.stop)
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("futureError = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("futureError still waiting after the node stopped")
	}
}
