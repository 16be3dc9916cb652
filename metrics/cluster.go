package metrics

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/latency"
	"github.com/olric-raft/olric-raft/metadata"
)

// Family names of the control-plane, per-member routing and replication
// series (see doc.go).
const (
	nameProposal      = "olric_raft_raft_proposal_duration_seconds"
	nameFSMApply      = "olric_raft_fsm_apply_duration_seconds"
	nameLeaseRenewals = "olric_raft_lease_renewals_total"
	nameLeaseExpiries = "olric_raft_lease_expiries_total"
	nameLeaseGrants   = "olric_raft_lease_grants_total"
	nameMembersFailed = "olric_raft_members_failed_total"

	nameMemberParts = "olric_raft_routing_member_partitions"
	nameInSync      = "olric_raft_routing_partitions_by_in_sync_replicas"

	nameForwarded      = "olric_raft_dataplane_forwarded_total"
	nameRetries        = "olric_raft_dataplane_retries_total"
	nameReplWait       = "olric_raft_replication_wait_duration_seconds"
	nameHandoffPause   = "olric_raft_handoff_pause_duration_seconds"
	nameReplBytes      = "olric_raft_replication_sent_bytes_total"
	nameReplBatches    = "olric_raft_replication_batches_total"
	nameReplFailed     = "olric_raft_replication_backups_failed_total"
	nameReplInSync     = "olric_raft_replication_backups_in_sync_total"
	namePromotedBehind = "olric_raft_promoted_behind_total"
	nameTransferred    = "olric_raft_handoff_transferred_bytes_total"
	nameReplLag        = "olric_raft_replication_lag_seconds"
	nameReplQueued     = "olric_raft_replication_queued_items"
	nameSyncingHandoff = "olric_raft_handoffs_in_flight"
)

var (
	descProposal      = family(nameProposal, "Time from proposing a routing entry on the leader to its commit and apply (successful proposals).")
	descFSMApply      = family(nameFSMApply, "Time the FSM took to apply one Raft entry on this member.")
	descLeaseRenewals = family(nameLeaseRenewals, "Lease renewals this member asked the leader for, by result (ok, failed).", "result")
	descLeaseExpiries = family(nameLeaseExpiries, "Times this member's primary lease ran out while it held one.")
	descLeaseGrants   = family(nameLeaseGrants, "Lease grants this member made as Raft leader.")
	descMembersFailed = family(nameMembersFailed, "Members this member, as leader, failed over because their lease ran out.")

	descMemberParts = family(nameMemberParts, "Partitions of the committed routing table by member and role (primary, backup, syncing: a backup still being filled).", "member", "role")
	descInSync      = family(nameInSync, "Partitions by their number of in-sync copies (primary plus backups not syncing; 0: unavailable).", "replicas")

	descForwarded      = family(nameForwarded, "Requests this member forwarded to another member, the partition's primary.")
	descRetries        = family(nameRetries, "Times a request was tried again, by reason (stale_routing, not_ready, unreachable, no_lease, connection).", "reason")
	descReplWait       = family(nameReplWait, "Time requests served here as primary waited for their in-sync backups.")
	descReplBytes      = family(nameReplBytes, "Bytes sent to backups, by lane (stream: mutations; backfill: copies of partitions).", "lane")
	descReplBatches    = family(nameReplBatches, "Replication batches sent to backups, by lane.", "lane")
	descReplFailed     = family(nameReplFailed, "Backups this member reported out of sync (refused or did not answer in time).")
	descReplInSync     = family(nameReplInSync, "Syncing backups this member reported filled (in sync).")
	descPromotedBehind = family(namePromotedBehind, "Partitions this member was promoted to lead with a copy behind what the previous primary acknowledged (acknowledged writes missing; 0 unless there is a bug).")
	descTransferred    = family(nameTransferred, "Bytes of partition data pulled from a previous primary (handover without a backup in sync).")
	descReplLag        = family(nameReplLag, "Age of the oldest mutation or copy sent or queued to a backup and not yet acknowledged (0: caught up).", "backup")
	descReplQueued     = family(nameReplQueued, "Items waiting to be sent to a backup, by lane.", "backup", "lane")
	descHandoffPause   = family(nameHandoffPause, "For each partition this member took over from a previous primary (a move or a failover), the time from applying the routing entry that gave it here to serving it: the partition's write pause.")
	descSyncingHandoff = family(nameSyncingHandoff, "Partition moves in flight in the committed routing table: backup slots being filled plus partitions in handoff.")
)

var clusterDescs = []*prometheus.Desc{
	descProposal, descFSMApply, descLeaseRenewals, descLeaseExpiries, descLeaseGrants, descMembersFailed,
	descMemberParts, descInSync,
	descForwarded, descRetries, descReplWait, descReplBytes, descReplBatches, descReplFailed, descReplInSync, descPromotedBehind,
	descTransferred, descReplLag, descReplQueued, descSyncingHandoff, descHandoffPause,
}

var laneNames = [2]string{dataplane.LaneStream: "stream", dataplane.LaneBackfill: "backfill"}

// histogram turns a latency snapshot into a constant Prometheus histogram.
func histogram(d *prometheus.Desc, s latency.Snapshot, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latency.Buckets))
	for i, b := range latency.Buckets {
		if i < len(s.Cumulative) { // the zero Snapshot has none
			buckets[b] = s.Cumulative[i]
		} else {
			buckets[b] = s.Count
		}
	}
	return prometheus.MustNewConstHistogram(d, s.Count, s.Sum.Seconds(), buckets, labels...)
}

func (c nodeCollector) collectControl(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	cs := c.src.ControlStats()
	ch <- histogram(descProposal, cs.Proposals)
	ch <- histogram(descFSMApply, cs.FSMApply)
	counter(descLeaseRenewals, cs.LeaseRenewals, "ok")
	counter(descLeaseRenewals, cs.LeaseRenewalFailures, "failed")
	counter(descLeaseExpiries, cs.LeaseExpiries)
	counter(descLeaseGrants, cs.LeaseGrants)
	counter(descMembersFailed, cs.MembersFailed)
}

// collectMemberRouting emits partitions per member and role, and the
// in-sync copy counts, from the committed table.
func collectMemberRouting(t *metadata.RoutingTable, g func(*prometheus.Desc, float64, ...string)) {
	type roles struct{ primary, backup, syncing int }
	per := make(map[metadata.NodeID]*roles, len(t.Members))
	for _, m := range t.Members {
		per[m.ID] = &roles{}
	}
	get := func(id metadata.NodeID) *roles {
		r := per[id]
		if r == nil { // not in Members: keep the counts, never drop them
			r = &roles{}
			per[id] = r
		}
		return r
	}
	inSync := make([]int, int(t.Replicas)+2)
	moves := 0
	for _, p := range t.Partitions {
		if p.Primary != "" {
			get(p.Primary).primary++
		}
		for _, b := range p.Backups {
			if slices.Contains(p.Syncing, b) {
				get(b).syncing++
			} else {
				get(b).backup++
			}
		}
		moves += len(p.Syncing)
		if p.State == metadata.PartitionHandoff {
			moves++
		}
		n := 0
		if p.State != metadata.PartitionUnavailable && p.Primary != "" {
			n = 1 + len(p.Backups) - len(p.Syncing)
		}
		n = max(n, 0)
		if n >= len(inSync) {
			inSync = append(inSync, make([]int, n-len(inSync)+1)...)
		}
		inSync[n]++
	}
	ids := make([]metadata.NodeID, 0, len(per))
	for id := range per {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := per[id]
		g(descMemberParts, float64(r.primary), string(id), "primary")
		g(descMemberParts, float64(r.backup), string(id), "backup")
		g(descMemberParts, float64(r.syncing), string(id), "syncing")
	}
	for n, count := range inSync {
		g(descInSync, float64(count), strconv.Itoa(n))
	}
	g(descSyncingHandoff, float64(moves))
}

func (c nodeCollector) collectReplication(ch chan<- prometheus.Metric, g func(*prometheus.Desc, float64, ...string)) {
	s, ok := c.src.ServiceStats()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descForwarded, s.Forwarded)
	for r, v := range s.Retries {
		counter(descRetries, v, dataplane.RetryReason(r).String())
	}
	ch <- histogram(descReplWait, s.ReplicationWait)
	ch <- histogram(descHandoffPause, s.HandoffPause)
	for lane, name := range laneNames {
		counter(descReplBytes, s.SentBytes[lane], name)
		counter(descReplBatches, s.SentBatches[lane], name)
	}
	counter(descReplFailed, s.BackupsFailed)
	counter(descReplInSync, s.BackupsInSync)
	counter(descPromotedBehind, s.PromotedBehind)
	counter(descTransferred, s.TransferredBytes)
	for _, b := range s.Backups {
		id := string(b.Member)
		g(descReplLag, b.Lag.Seconds(), id)
		g(descReplQueued, float64(b.Queued), id, "stream")
		g(descReplQueued, float64(b.Backfill), id, "backfill")
	}
}
