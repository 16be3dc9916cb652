package client

import "sort"

// Member is one member of the routing table.
type Member struct {
	ID          string `json:"id"`
	State       string `json:"state"` // alive, leaving, failed
	Voter       bool   `json:"voter"`
	Incarnation string `json:"incarnation"`
	ClusterAddr string `json:"cluster_addr"`
	GossipAddr  string `json:"gossip_addr"`
	HTTPAddr    string `json:"http_addr"`
	RESPAddr    string `json:"resp_addr"`
}

// Partition is the placement of one partition.
type Partition struct {
	ID          uint32   `json:"id"`
	Primary     string   `json:"primary"` // empty when unavailable
	Backups     []string `json:"backups"`
	State       string   `json:"state"` // active, handoff, unavailable
	LeaderEpoch uint64   `json:"leader_epoch"`
	HandoffTo   string   `json:"handoff_to,omitempty"` // set in state handoff
	// Syncing lists the backups still being filled from the primary.
	Syncing []string `json:"syncing,omitempty"`
}

// Routing is a committed routing table (GET /v1/cluster/routing).
type Routing struct {
	RoutingVersion uint64      `json:"routing_version"`
	PartitionCount uint32      `json:"partition_count"`
	Replicas       int         `json:"replicas"`
	Members        []Member    `json:"members"`
	Partitions     []Partition `json:"partitions"`
}

// Load counts the partitions a member is primary and backup of.
type Load struct {
	Primaries int `json:"primaries"`
	Backups   int `json:"backups"`
}

// Loads counts, over r.Partitions, the primaries and backups of every
// member that is listed or holds a replica.
func (r *Routing) Loads() map[string]Load {
	out := make(map[string]Load, len(r.Members))
	for _, m := range r.Members {
		out[m.ID] = Load{}
	}
	for _, p := range r.Partitions {
		if p.Primary != "" {
			l := out[p.Primary]
			l.Primaries++
			out[p.Primary] = l
		}
		for _, b := range p.Backups {
			l := out[b]
			l.Backups++
			out[b] = l
		}
	}
	return out
}

// MemberIDs returns the ids of Loads' keys, sorted.
func (r *Routing) MemberIDs() []string {
	loads := r.Loads()
	ids := make([]string, 0, len(loads))
	for id := range loads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// MemberInfo is one member joined with the gossip and Raft views of the
// member that answered.
type MemberInfo struct {
	Member
	Gossip       string `json:"gossip"`        // alive, suspect, dead, left, unknown
	RaftSuffrage string `json:"raft_suffrage"` // voter, nonvoter, none
	Leader       bool   `json:"leader"`
	Primaries    int    `json:"primaries"`
	Backups      int    `json:"backups"`
}

// Members is GET /v1/cluster/members.
type Members struct {
	RoutingVersion uint64       `json:"routing_version"`
	Members        []MemberInfo `json:"members"`
}

// LeaderInfo names the Raft leader.
type LeaderInfo struct {
	ID          string `json:"id"`
	ClusterAddr string `json:"cluster_addr"`
	HTTPAddr    string `json:"http_addr"`
	Term        uint64 `json:"term"`
}

// Leader is GET /v1/cluster/leader.
type Leader struct {
	RoutingVersion uint64     `json:"routing_version"`
	Leader         LeaderInfo `json:"leader"`
}

// Location is GET /v1/cluster/locate: where a key lives.
type Location struct {
	Partition      uint32   `json:"partition"`
	Primary        string   `json:"primary"`
	Backups        []string `json:"backups"`
	RoutingVersion uint64   `json:"routing_version"`
	LeaderEpoch    uint64   `json:"leader_epoch"`
	State          string   `json:"state"`
}

// Status is GET /v1/status: a member's view of itself and the cluster.
type Status struct {
	NodeID         string      `json:"node_id"`
	Incarnation    string      `json:"incarnation"`
	State          string      `json:"state"` // starting, running, leaving, left, closed
	Ready          bool        `json:"ready"`
	RaftState      string      `json:"raft_state"` // Leader, Follower, Candidate, Shutdown
	Voter          bool        `json:"voter"`
	Leader         *LeaderInfo `json:"leader"`
	Term           uint64      `json:"term"`
	LastLogIndex   uint64      `json:"last_log_index"`
	CommitIndex    uint64      `json:"commit_index"`
	AppliedIndex   uint64      `json:"applied_index"`
	RoutingVersion uint64      `json:"routing_version"`
	Members        int         `json:"members"`
	AliveMembers   int         `json:"alive_members"`
	Voters         int         `json:"voters"`
	Partitions     int         `json:"partitions"`
	Unavailable    int         `json:"unavailable_partitions"`
	Handoffs       int         `json:"handoffs"`
	// SyncingBackups: backup slots being filled from their primary (moves
	// and refills in flight).
	SyncingBackups int `json:"syncing_backups"`
	Primaries      int `json:"primaries"`
	Backups        int `json:"backups"`
	// HandoverPending: partitions this member led that their new primaries
	// have not taken over yet (a leaving member waits for 0).
	HandoverPending int     `json:"handover_pending"`
	GossipMembers   int     `json:"gossip_members"`
	UptimeSeconds   float64 `json:"uptime_seconds"`
}

// ForceAssignResult is the answer of POST
// /v1/cluster/partitions/force-assign.
type ForceAssignResult struct {
	// RoutingVersion is the routing version that serves the partitions
	// again (the current one when nothing was forced).
	RoutingVersion uint64 `json:"routing_version"`
	// Partitions lists the partitions forced, now served empty; never nil.
	Partitions []uint32 `json:"partitions"`
}
