package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/node"
)

// reportPercentiles adds p50 and p99 of ds (in ms) to the benchmark.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

func timings() []struct {
	name string
	t    node.Timing
} {
	return []struct {
		name string
		t    node.Timing
	}{{"dev", node.DevTiming()}, {"lan", node.LANTiming()}}
}

// BenchmarkFiveMembersConverge measures how long five in-process members,
// started at once with --bootstrap-expect 5, take until every member is
// ready on one identical, balanced routing version.
//
//	go test ./integration -run '^$' -bench FiveMembersConverge -benchtime 20x
func BenchmarkFiveMembersConverge(b *testing.B) {
	for _, tm := range timings() {
		b.Run(tm.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				c := testcluster.New(b, 5, testcluster.Options{Timing: &tm.t})
				start := time.Now()
				c.StartAll()
				c.WaitConverged(convergeTimeout)
				ds = append(ds, time.Since(start))
				b.StopTimer()
				c.CloseAll()
				b.StartTimer()
			}
			reportPercentiles(b, ds)
		})
	}
}

// BenchmarkRoutingProposalApplied measures the time from the leader
// proposing a routing change to that version being applied on all five
// members.
//
//	go test ./integration -run '^$' -bench RoutingProposalApplied -benchtime 500x
func BenchmarkRoutingProposalApplied(b *testing.B) {
	for _, tm := range timings() {
		b.Run(tm.name, func(b *testing.B) {
			c := testcluster.New(b, 5, testcluster.Options{Timing: &tm.t})
			c.StartAll()
			c.WaitConverged(convergeTimeout)
			leader := c.Leader(convergeTimeout).Node()
			ctx := context.Background()
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
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
				ds = append(ds, time.Since(start))
			}
			reportPercentiles(b, ds)
		})
	}
}

// BenchmarkLeaderKilledFailover measures, on five members, the time from
// stopping the Raft leader abruptly to every surviving member agreeing on
// a routing version in which it is failed, holds nothing, and the rest is
// rebalanced (failure detection + election + reconcile + propagation).
//
//	go test ./integration -run '^$' -bench LeaderKilledFailover -benchtime 10x
func BenchmarkLeaderKilledFailover(b *testing.B) {
	for _, tm := range timings() {
		b.Run(tm.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				c := testcluster.New(b, 5, testcluster.Options{Timing: &tm.t})
				c.StartAll()
				c.WaitConverged(convergeTimeout)
				old := c.Leader(convergeTimeout)
				b.StartTimer()
				start := time.Now()
				c.Kill(old.Index)
				c.WaitFor(2*convergeTimeout, "failover", func() error {
					_, err := convergedWithFailed(c, old.Name)
					return err
				})
				ds = append(ds, time.Since(start))
				b.StopTimer()
				c.CloseAll()
				b.StartTimer()
			}
			reportPercentiles(b, ds)
		})
	}
}
