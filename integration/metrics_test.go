package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/metrics"
)

// gather reads a registry into "name{k=v,...}" → value (labels sorted by
// name); histograms give name_count and name_sum.
func gather(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Prometheus().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%s", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := func(name string) string {
				if len(labels) == 0 {
					return name
				}
				return name + "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key(f.GetName())] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key(f.GetName())] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key(f.GetName()+"_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key(f.GetName()+"_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// TestMetricsFollowTrafficAndFailover scrapes every member of 3 (replicas
// 2) while writes run and a member dies: forwarding, replication, in-sync
// copies, failover and refill all show in the series an operator watches.
func TestMetricsFollowTrafficAndFailover(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	parts := float64(len(tbl.Partitions))
	inSync := func(m *testcluster.Member) error {
		for _, p := range m.Node().Routing().Partitions {
			if len(p.Syncing) > 0 || len(p.Backups) != 1 || p.State != metadata.PartitionActive {
				return fmt.Errorf("partition %d: backups %v syncing %v, %s", p.ID, p.Backups, p.Syncing, p.State)
			}
		}
		return nil
	}
	c.WaitFor(convergeTimeout, "backups in sync", func() error { return inSync(c.Members[0]) })
	leader := c.Leader(convergeTimeout)
	victim := c.Members[(leader.Index+1)%3]
	via := c.Members[(leader.Index+2)%3] // neither the leader nor the victim
	regs := map[metadata.NodeID]*metrics.Registry{}
	before := map[metadata.NodeID]map[string]float64{}
	for _, m := range c.Members {
		regs[m.Name] = metrics.ForNode(m.Node())
		before[m.Name] = gather(t, regs[m.Name])
	}
	for _, m := range c.Members {
		if got := before[m.Name]["olric_raft_routing_partitions_by_in_sync_replicas{replicas=2}"]; got != parts {
			t.Errorf("%s: %v partitions with 2 copies in sync, want %v", m.Name, got, parts)
		}
	}

	// Traffic through one member: about two thirds of the keys are led
	// elsewhere and forwarded; every write waits for its backup.
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	const writes = 150
	for i := range writes {
		if _, err := put(ctx, via, "metrics", fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	var sentBefore, sentAfter, waits float64
	for _, m := range c.Members {
		after := gather(t, regs[m.Name])
		sentBefore += before[m.Name]["olric_raft_replication_sent_bytes_total{lane=stream}"]
		sentAfter += after["olric_raft_replication_sent_bytes_total{lane=stream}"]
		waits += after["olric_raft_replication_wait_duration_seconds_count"] - before[m.Name]["olric_raft_replication_wait_duration_seconds_count"]
		if m == via {
			if fw := after["olric_raft_dataplane_forwarded_total"] - before[m.Name]["olric_raft_dataplane_forwarded_total"]; fw < writes/4 || fw > writes {
				t.Errorf("%s forwarded %v of %d writes, want about two thirds", m.Name, fw, writes)
			}
		}
	}
	if sentAfter <= sentBefore {
		t.Errorf("bytes streamed to backups %v -> %v, want an increase", sentBefore, sentAfter)
	}
	if waits < writes {
		t.Errorf("%v replication waits for %d writes, want at least one each", waits, writes)
	}

	// Kill a follower: the leader counts one member failed over, the
	// survivors see it failed with nothing placed on it, then refill the
	// lost backups (backfill bytes move) until every partition again has
	// 2 copies in sync, and no backup lags.
	c.Kill(victim.Index)
	survivors := []*testcluster.Member{leader, via}
	c.WaitFor(convergeTimeout, "failover and refill visible in the metrics", func() error {
		for _, m := range survivors {
			g := gather(t, regs[m.Name])
			checks := map[string]float64{
				"olric_raft_routing_members{state=failed}":                      1,
				"olric_raft_routing_partitions_by_in_sync_replicas{replicas=2}": parts,
				"olric_raft_routing_partitions{state=unavailable}":              0,
				"olric_raft_handoffs_in_flight":                                 0,
			}
			for _, role := range []string{"primary", "backup", "syncing"} {
				checks[fmt.Sprintf("olric_raft_routing_member_partitions{member=%s,role=%s}", victim.Name, role)] = 0
			}
			if m == leader {
				checks["olric_raft_members_failed_total"] = before[m.Name]["olric_raft_members_failed_total"] + 1
			}
			for k, want := range checks {
				if got, ok := g[k]; !ok || got != want {
					return fmt.Errorf("%s: %s = %v (present %v), want %v", m.Name, k, got, ok, want)
				}
			}
			for k, v := range g {
				if strings.HasPrefix(k, "olric_raft_replication_lag_seconds{") && v != 0 && !strings.Contains(k, string(victim.Name)) {
					return fmt.Errorf("%s: %s = %v, want 0", m.Name, k, v)
				}
			}
		}
		return nil
	})
	var backfill float64
	for _, m := range survivors {
		g := gather(t, regs[m.Name])
		backfill += g["olric_raft_replication_sent_bytes_total{lane=backfill}"] - before[m.Name]["olric_raft_replication_sent_bytes_total{lane=backfill}"]
	}
	if backfill <= 0 {
		t.Errorf("no backfill bytes sent to refill the victim's backups")
	}
	// The survivors took over the victim's written partitions: each
	// takeover's pause is observed once.
	var takeovers float64
	for _, m := range survivors {
		g := gather(t, regs[m.Name])
		takeovers += g["olric_raft_handoff_pause_duration_seconds_count"] - before[m.Name]["olric_raft_handoff_pause_duration_seconds_count"]
	}
	if takeovers < 1 {
		t.Errorf("no handoff pause observed for the victim's partitions")
	}
}
