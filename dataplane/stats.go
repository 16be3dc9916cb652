package dataplane

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olric-raft/olric-raft/internal/latency"
	"github.com/olric-raft/olric-raft/metadata"
)

// RetryReason is why Service.Do tried a request again.
type RetryReason int

// Retry reasons, in ServiceStats.Retries order.
const (
	// RetryStaleRouting: the member asked was not the primary at the
	// request's routing version (the table moved on).
	RetryStaleRouting RetryReason = iota
	// RetryNotReady: the primary was still filling or fencing the
	// partition (a handover or failover in progress).
	RetryNotReady
	// RetryUnreachable: the primary could not be reached.
	RetryUnreachable
	// RetryNoLease: the primary held no lease (cut off from the leader).
	RetryNoLease
	// RetryConnection: a read's connection failed mid-call.
	RetryConnection
	retryReasons
)

// String returns the reason's metric label.
func (r RetryReason) String() string {
	switch r {
	case RetryStaleRouting:
		return "stale_routing"
	case RetryNotReady:
		return "not_ready"
	case RetryUnreachable:
		return "unreachable"
	case RetryNoLease:
		return "no_lease"
	case RetryConnection:
		return "connection"
	}
	return "unknown"
}

// Replication lanes, in ServiceStats.SentBytes order.
const (
	LaneStream   = 0 // mutations of attached backups
	LaneBackfill = 1 // copies of partitions and the mutations behind them
)

// ServiceStats are a member's routing and replication counters since it
// started (Service.Stats).
type ServiceStats struct {
	// Forwarded counts requests sent to another member, the primary.
	Forwarded uint64
	// Retries counts Do's retries by RetryReason.
	Retries [retryReasons]uint64
	// ReplicationWait is the time requests served here as primary waited
	// for their in-sync backups.
	ReplicationWait latency.Snapshot
	// SentBytes and SentBatches count what this member sent to its
	// backups, by lane (LaneStream, LaneBackfill), acknowledged or not.
	SentBytes, SentBatches [2]uint64
	// BackupsFailed counts backups reported out of sync (they refused or
	// did not answer); BackupsInSync counts syncing backups reported
	// filled.
	BackupsFailed, BackupsInSync uint64
	// PromotedBehind counts partitions this member was promoted to lead
	// with a copy behind the highest sequence number the previous primary
	// acknowledged: acknowledged writes missing. Always 0 unless there is
	// a bug; it is logged at error level.
	PromotedBehind uint64
	// TransferredBytes counts partition data pulled from a previous
	// primary (handover without a backup in sync).
	TransferredBytes uint64
	// Backups has one entry per member this member replicates to, by id.
	Backups []BackupStats
	// HandoffPause is the handoff pause of every written partition this
	// member took over from a previous primary (a move or a failover;
	// fresh and never-written partitions, served at once, do not count):
	// the time from applying (OnRouting) the routing table that made it
	// the partition's primary at a new leader epoch until it could serve
	// the partition at that epoch — fencing the previous primary, or
	// pulling the partition from it. No member serves the partition
	// meanwhile (the previous primary fences when it applies the same
	// table, possibly a little earlier than this member), so this is the
	// write pause the handoff itself causes, client retries aside. After a
	// failover it is short: the previous primary is failed, not fenced,
	// and the outage before the failover entry is not counted.
	HandoffPause latency.Snapshot
	// Handoffs are the most recent of those takeovers (at most
	// MaxRecentHandoffs), oldest first.
	Handoffs []Handoff
}

// MaxRecentHandoffs bounds ServiceStats.Handoffs.
const MaxRecentHandoffs = 1024

// Handoff is one partition this member took over from a previous primary
// (see ServiceStats.HandoffPause).
type Handoff struct {
	Partition uint32
	// Epoch is the leader epoch it serves the partition at.
	Epoch uint64
	// At is when this member applied the routing table that made it the
	// partition's primary at Epoch; Pause is how long after that it could
	// serve it.
	At    time.Time
	Pause time.Duration
	// Promoted: it had an in-sync copy and only fenced the previous
	// primary; otherwise it pulled the partition from it.
	Promoted bool
}

// BackupStats is the state of the sender to one backup member.
type BackupStats struct {
	Member metadata.NodeID
	// Queued and Backfill are the items waiting in the stream and
	// backfill lanes.
	Queued, Backfill int
	// Lag is the age of the oldest item sent or queued and not yet
	// acknowledged (0: the backup has everything).
	Lag time.Duration
}

// serviceStats are Service's counters; every field is updated atomically,
// but for handoffs, under handoffMu (a leaf lock: nothing is taken while
// holding it).
type serviceStats struct {
	forwarded       atomic.Uint64
	retries         [retryReasons]atomic.Uint64
	replicationWait latency.Histogram
	sentBytes       [2]atomic.Uint64
	sentBatches     [2]atomic.Uint64
	backupsFailed   atomic.Uint64
	backupsInSync   atomic.Uint64
	promotedBehind  atomic.Uint64
	transferred     atomic.Uint64
	handoffPause    latency.Histogram
	handoffMu       sync.Mutex
	handoffs        []Handoff // the newest MaxRecentHandoffs, oldest first
}

// handedOff records one takeover (see ServiceStats.HandoffPause).
func (st *serviceStats) handedOff(h Handoff) {
	st.handoffPause.Observe(h.Pause)
	st.handoffMu.Lock()
	if len(st.handoffs) == MaxRecentHandoffs {
		n := copy(st.handoffs, st.handoffs[1:])
		st.handoffs = st.handoffs[:n]
	}
	st.handoffs = append(st.handoffs, h)
	st.handoffMu.Unlock()
}

// Stats returns the member's routing and replication counters. Safe for
// concurrent use; it takes the replication lock briefly.
func (s *Service) Stats() ServiceStats {
	st := ServiceStats{
		Forwarded:        s.stats.forwarded.Load(),
		ReplicationWait:  s.stats.replicationWait.Snapshot(),
		BackupsFailed:    s.stats.backupsFailed.Load(),
		BackupsInSync:    s.stats.backupsInSync.Load(),
		PromotedBehind:   s.stats.promotedBehind.Load(),
		TransferredBytes: s.stats.transferred.Load(),
		HandoffPause:     s.stats.handoffPause.Snapshot(),
	}
	s.stats.handoffMu.Lock()
	st.Handoffs = slices.Clone(s.stats.handoffs)
	s.stats.handoffMu.Unlock()
	for i := range st.Retries {
		st.Retries[i] = s.stats.retries[i].Load()
	}
	for i := range st.SentBytes {
		st.SentBytes[i] = s.stats.sentBytes[i].Load()
		st.SentBatches[i] = s.stats.sentBatches[i].Load()
	}
	now := time.Now()
	r := &s.rep
	r.mu.Lock()
	for id, l := range r.links {
		b := BackupStats{Member: id, Queued: len(l.queue), Backfill: len(l.bulk)}
		oldest := l.inflightSince
		for _, lane := range [][]repItem{l.queue, l.bulk} {
			if len(lane) > 0 && (oldest.IsZero() || lane[0].at.Before(oldest)) {
				oldest = lane[0].at
			}
		}
		if !oldest.IsZero() {
			b.Lag = max(now.Sub(oldest), 0)
		}
		st.Backups = append(st.Backups, b)
	}
	r.mu.Unlock()
	slices.SortFunc(st.Backups, func(a, b BackupStats) int {
		switch {
		case a.Member < b.Member:
			return -1
		case a.Member > b.Member:
			return 1
		}
		return 0
	})
	return st
}
