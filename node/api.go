package node

import (
	"errors"

	"github.com/olric-raft/olric-raft/metadata"
)

// Sentinel errors of package node. The HTTP and RESP layers map them to
// stable wire codes; test with errors.Is.
var (
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("node: closed")
	// ErrNotReady: the node has not yet applied up to the leader's commit
	// index, or routing is not initialized.
	ErrNotReady = errors.New("node: not ready")
	// ErrNoLeader: there is no known Raft leader (election in progress, or
	// this member is cut off from a quorum).
	ErrNoLeader = errors.New("node: no leader")
	// ErrNotLeader: the operation must run on the leader and this member
	// is not it (forwarding failed or was not possible).
	ErrNotLeader = errors.New("node: not the leader")
	// ErrUnknownMember: the named member is not in the cluster.
	ErrUnknownMember = errors.New("node: unknown member")
	// ErrMemberAlive: remove was asked for a member that is alive; use
	// leave on that member instead.
	ErrMemberAlive = errors.New("node: member is alive")
	// ErrLeaving: the node is leaving the cluster.
	ErrLeaving = errors.New("node: leaving")
	// ErrTimeout: the operation did not finish before its deadline; it may
	// still take effect.
	ErrTimeout = errors.New("node: timed out")
	// ErrJoinFailed: none of the join addresses could be reached.
	ErrJoinFailed = errors.New("node: join failed")
	// ErrInvalidArgument: a request argument is malformed.
	ErrInvalidArgument = errors.New("node: invalid argument")
	// ErrQuorumAtRisk: the change would leave Raft without a reachable
	// majority of voters (e.g. a voter leaving while another one is down).
	ErrQuorumAtRisk = errors.New("node: would leave raft without a quorum")
	// ErrPartitionAvailable: force-assign was asked for a partition that
	// still has a primary; only unavailable partitions can be forced.
	ErrPartitionAvailable = errors.New("node: partition is available")
)

// LeaderInfo names the current Raft leader.
type LeaderInfo struct {
	ID          metadata.NodeID `json:"id"`
	ClusterAddr string          `json:"cluster_addr"`
	HTTPAddr    string          `json:"http_addr"`
	Term        uint64          `json:"term"`
}

// Status is a node's own view of itself and of the cluster.
type Status struct {
	NodeID         metadata.NodeID `json:"node_id"`
	Incarnation    string          `json:"incarnation"`
	State          string          `json:"state"` // starting, ready, leaving, left, closed
	Ready          bool            `json:"ready"`
	RaftState      string          `json:"raft_state"` // Leader, Follower, Candidate, Shutdown
	Voter          bool            `json:"voter"`
	Leader         *LeaderInfo     `json:"leader"`
	Term           uint64          `json:"term"`
	LastLogIndex   uint64          `json:"last_log_index"`
	CommitIndex    uint64          `json:"commit_index"`
	AppliedIndex   uint64          `json:"applied_index"`
	RoutingVersion uint64          `json:"routing_version"`
	Members        int             `json:"members"`
	AliveMembers   int             `json:"alive_members"`
	Voters         int             `json:"voters"`
	Partitions     int             `json:"partitions"`
	Unavailable    int             `json:"unavailable_partitions"`
	Handoffs       int             `json:"handoffs"`
	// SyncingBackups counts backup slots being filled from their primary
	// (moves and refills in flight).
	SyncingBackups int `json:"syncing_backups"`
	Primaries      int `json:"primaries"`
	Backups        int `json:"backups"`
	// HandoverPending counts the partitions this member led that their new
	// primaries have not taken over yet (pulled, or fenced here after a
	// promotion): a leaving member waits for 0.
	HandoverPending int     `json:"handover_pending"`
	GossipMembers   int     `json:"gossip_members"`
	UptimeSeconds   float64 `json:"uptime_seconds"`
}

// MemberInfo is one member as seen by this node: its routing-table record
// joined with memberlist's and Raft's views.
type MemberInfo struct {
	metadata.Member
	// StateName is Member.State as text: alive, leaving, failed.
	StateName string `json:"state"`
	// Gossip is memberlist's view: alive, suspect, dead, left, or unknown.
	Gossip string `json:"gossip"`
	// RaftSuffrage is voter, nonvoter, or none (not in the Raft
	// configuration).
	RaftSuffrage string `json:"raft_suffrage"`
	// Leader reports whether this member is the Raft leader.
	Leader bool `json:"leader"`
	// Primaries and Backups count the partitions it holds.
	Primaries int `json:"primaries"`
	Backups   int `json:"backups"`
}

// The public methods of *Node, for front ends (the HTTP API, the CLI's
// server command) to call:
//
//	func New(cfg Config) (*Node, error)           // validate, open stores, start Raft and memberlist
//	func (n *Node) Close() error                  // stop now (idempotent); members see it fail
//	func (n *Node) Leave(ctx context.Context) error // graceful: hand over leadership, leave Raft and memberlist, then Close
//	func (n *Node) ID() metadata.NodeID
//	func (n *Node) Routing() *metadata.RoutingTable // committed table, never nil, immutable
//	func (n *Node) WaitRouting(ctx context.Context, version uint64) (*metadata.RoutingTable, error)
//	func (n *Node) Members() ([]MemberInfo, uint64)  // and the routing version they come from
//	func (n *Node) Leader() (LeaderInfo, bool)
//	func (n *Node) Status() Status
//	func (n *Node) Ready(ctx context.Context) error // nil once applied up to the leader's commit index
//	func (n *Node) Join(ctx context.Context, gossipAddrs []string) (int, error) // contact existing members
//	func (n *Node) RemoveMember(ctx context.Context, id metadata.NodeID) error // force out a dead member (forwarded to the leader)
//	func (n *Node) ForceAssign(ctx context.Context, partitions []uint32, owner metadata.NodeID) (ForceAssignResult, error) // data-loss escape hatch

// ForceAssignResult reports what ForceAssign did.
type ForceAssignResult struct {
	// RoutingVersion is the version that made the partitions available.
	RoutingVersion uint64 `json:"routing_version"`
	// Partitions lists the partitions now served again, empty.
	Partitions []uint32 `json:"partitions"`
}
