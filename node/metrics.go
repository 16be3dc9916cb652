package node

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/dataplane"
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
