package node

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/latency"
)

// RaftStats is this member's Raft view, for metrics. Every field is read
// without a lock on the request path; together they are not one atomic
// snapshot.
type RaftStats struct {
	// State is Leader, Follower, Candidate or Shutdown.
	State string
	// Leader reports State == Leader.
	Leader       bool
	Term         uint64
	LastLogIndex uint64
	CommitIndex  uint64
	// AppliedIndex is the last index the FSM applied.
	AppliedIndex uint64
	// LastContact is how long ago a follower last heard from its leader;
	// HasContact is false on the leader and before any contact.
	LastContact time.Duration
	HasContact  bool
}

// RaftStats returns this member's Raft view. Read-only; safe for
// concurrent use, also after Close.
func (n *Node) RaftStats() RaftStats {
	st := n.raft.State()
	rs := RaftStats{
		State:        st.String(),
		Leader:       st == raft.Leader,
		Term:         n.raft.CurrentTerm(),
		LastLogIndex: n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
	}
	if !rs.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			rs.LastContact, rs.HasContact = time.Since(lc), true
		}
	}
	return rs
}

// EngineStats returns the storage engine's statistics, or false while the
// data plane is not open (routing not initialized yet). Read-only; safe
// for concurrent use.
func (n *Node) EngineStats() (dataplane.Stats, bool) {
	// n.engine is written before n.dmaps is stored (openDataPlane) and
	// never reset, so a non-nil load orders the read after the write.
	if n.dmaps.Load() == nil || n.engine == nil {
		return dataplane.Stats{}, false
	}
	return n.engine.Stats(), true
}

// GossipMembers returns how many members memberlist knows (alive or
// suspect, this one included).
func (n *Node) GossipMembers() int {
	if n.gossip == nil {
		return 0
	}
	return n.gossip.NumMembers()
}

// nodeStats are the node's counters; every field is updated atomically.
type nodeStats struct {
	proposals        latency.Histogram
	leaseRenewed     atomic.Uint64
	leaseRenewFailed atomic.Uint64
	leaseExpired     atomic.Uint64
	leaseGranted     atomic.Uint64
	membersFailed    atomic.Uint64
}

// timedApply is raft.Apply that waits for the entry (futureError) and
// records, for successful proposals, the time until the entry was
// committed and applied here (the leader). f.Response is valid when err is
// nil.
func (n *Node) timedApply(cmd []byte, timeout time.Duration) (f raft.ApplyFuture, err error) {
	start := time.Now()
	f = n.raft.Apply(cmd, timeout)
	if err = n.futureError(f); err == nil {
		n.stats.proposals.Since(start)
	}
	return f, err
}

// ControlStats are this member's control-plane counters since it started,
// for metrics.
type ControlStats struct {
	// Proposals: time from proposing a routing entry (on the leader) to
	// its commit and apply, successful proposals only.
	Proposals latency.Snapshot
	// FSMApply: time the FSM took to apply each entry (every member).
	FSMApply latency.Snapshot
	// LeaseRenewals and LeaseRenewalFailures count this member's lease
	// renewals with the leader; LeaseExpiries counts the times its lease
	// ran out while it held one.
	LeaseRenewals, LeaseRenewalFailures, LeaseExpiries uint64
	// LeaseGrants counts the grants this member made as leader;
	// MembersFailed the members it failed over because their lease ran out.
	LeaseGrants, MembersFailed uint64
}

// ControlStats returns the control-plane counters. Safe for concurrent use.
func (n *Node) ControlStats() ControlStats {
	return ControlStats{
		Proposals:            n.stats.proposals.Snapshot(),
		FSMApply:             n.fsm.ApplyLatency(),
		LeaseRenewals:        n.stats.leaseRenewed.Load(),
		LeaseRenewalFailures: n.stats.leaseRenewFailed.Load(),
		LeaseExpiries:        n.stats.leaseExpired.Load(),
		LeaseGrants:          n.stats.leaseGranted.Load(),
		MembersFailed:        n.stats.membersFailed.Load(),
	}
}

// ServiceStats returns the data plane's routing and replication counters,
// or false while it is not open. Safe for concurrent use.
func (n *Node) ServiceStats() (dataplane.ServiceStats, bool) {
	svc := n.dmaps.Load()
	if svc == nil {
		return dataplane.ServiceStats{}, false
	}
	return svc.Stats(), true
}
