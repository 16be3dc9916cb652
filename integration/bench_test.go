package integration

import (
	"context"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// BenchmarkFiveMembersConverge measures how long five in-process members,
// started at once with --bootstrap-expect 5 (dev timing), take until every
// member is ready on one identical, balanced routing version.
//
//	go test ./integration -run '^$' -bench FiveMembersConverge -benchtime 10x
func BenchmarkFiveMembersConverge(b *testing.B) {
	for b.Loop() {
		c := testcluster.New(b, 5, testcluster.Options{})
		start := time.Now()
		c.StartAll()
		c.WaitConverged(convergeTimeout)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-converge")
		b.StopTimer()
		c.CloseAll()
		b.StartTimer()
	}
}

// BenchmarkRoutingProposalApplied measures the time from the leader
// proposing a routing change to that version being applied on all five
// members.
//
//	go test ./integration -run '^$' -bench RoutingProposalApplied -benchtime 200x
func BenchmarkRoutingProposalApplied(b *testing.B) {
	c := testcluster.New(b, 5, testcluster.Options{})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	leader := c.Leader(convergeTimeout).Node()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		v, err := leader.ProposeChange(ctx, fsm.CommandRebalance, fsm.Change{
			ExpectVersion: leader.Routing().Version, Reason: "benchmark",
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range c.Running() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := m.Node().WaitRouting(wctx, v)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
