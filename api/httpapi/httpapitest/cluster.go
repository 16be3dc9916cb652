package httpapitest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Cluster is a fake httpapi.Cluster with a fixed routing table. Configure it
// with Set; read what it was asked with Calls. Safe for concurrent use.
type Cluster struct {
	mu sync.Mutex
	// s holds the configuration and records; guarded by mu.
	s State
}

var _ httpapi.Cluster = (*Cluster)(nil)

// State is the configuration of a Cluster and the calls it recorded.
type State struct {
	Self      metadata.NodeID
	Table     *metadata.RoutingTable
	Members   []node.MemberInfo
	Leader    node.LeaderInfo
	HasLeader bool
	Status    node.Status

	// Errors returned by the methods that can fail (nil: success).
	ReadyErr, JoinErr, LeaveErr, RemoveErr error
	// JoinCount is what Join returns on success; negative means
	// len(gossipAddrs).
	JoinCount int
	// Hook, if set, runs first in every method that takes a context, with
	// the method's name ("Ready", "Join", "Leave", "RemoveMember"); a
	// non-nil result is returned as the method's error. Tests use it to
	// block until the context ends, or to panic.
	Hook func(ctx context.Context, method string) error

	// Records.
	Joins   [][]string
	Leaves  int
	Removed []metadata.NodeID
}

// NewCluster returns a healthy fake: members node-1..node-<members> (all
// alive, the first three voters), partitions spread round-robin with
// replicas-1 backups each, routing version 42, node-1 the leader and this
// node. It panics on nonsensical arguments.
func NewCluster(members, partitions, replicas int) *Cluster {
	if members < 1 || partitions < 1 || replicas < 1 {
		panic("httpapitest: NewCluster needs at least one member, partition and replica")
	}
	t := &metadata.RoutingTable{Version: 42, PartitionCount: uint32(partitions), Replicas: replicas}
	for i := 1; i <= members; i++ {
		t.Members = append(t.Members, metadata.Member{
			ID:          metadata.NodeID(fmt.Sprintf("node-%d", i)),
			Incarnation: fmt.Sprintf("inc%d", i),
			ClusterAddr: fmt.Sprintf("127.0.0.1:%d", 13321+10*i),
			GossipAddr:  fmt.Sprintf("127.0.0.1:%d", 13322+10*i),
			HTTPAddr:    fmt.Sprintf("127.0.0.1:%d", 13380+10*i),
			RESPAddr:    fmt.Sprintf("127.0.0.1:%d", 13320+10*i),
			State:       metadata.MemberAlive,
			Voter:       i <= 3,
		})
	}
	slices.SortFunc(t.Members, func(a, b metadata.Member) int { return cmp.Compare(a.ID, b.ID) })
	for p := 0; p < partitions; p++ {
		part := metadata.Partition{ID: uint32(p), State: metadata.PartitionActive, LeaderEpoch: 1}
		for r := 0; r < replicas && r < members; r++ {
			id := t.Members[(p+r)%members].ID
			if r == 0 {
				part.Primary = id
			} else {
				part.Backups = append(part.Backups, id)
			}
		}
		t.Partitions = append(t.Partitions, part)
	}
	if err := t.Validate(); err != nil {
		panic(err)
	}
	loads := t.Loads()
	var infos []node.MemberInfo
	for _, m := range t.Members {
		suffrage := "nonvoter"
		if m.Voter {
			suffrage = "voter"
		}
		l := loads[m.ID]
		infos = append(infos, node.MemberInfo{
			Member: m, StateName: m.State.String(), Gossip: "alive", RaftSuffrage: suffrage,
			Leader: m.ID == "node-1", Primaries: l.Primaries, Backups: l.Backups,
		})
	}
	leader := node.LeaderInfo{ID: "node-1", ClusterAddr: t.Members[0].ClusterAddr, HTTPAddr: t.Members[0].HTTPAddr, Term: 3}
	self := loads["node-1"]
	return &Cluster{s: State{
		Self:      "node-1",
		Table:     t,
		Members:   infos,
		Leader:    leader,
		HasLeader: true,
		Status: node.Status{
			NodeID: "node-1", Incarnation: "inc1", State: "running", Ready: true, RaftState: "Leader",
			Voter: true, Leader: &leader, Term: 3, LastLogIndex: 50, CommitIndex: 50, AppliedIndex: 50,
			RoutingVersion: t.Version, Members: members, AliveMembers: members, Voters: min(members, 3),
			Partitions: partitions, Primaries: self.Primaries, Backups: self.Backups, GossipMembers: members,
			UptimeSeconds: 12.5,
		},
		JoinCount: -1,
	}}
}

// Set changes the configuration under the lock.
func (c *Cluster) Set(f func(s *State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.s)
}

// Calls returns a copy of the state, records included.
func (c *Cluster) Calls() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Joins = slices.Clone(s.Joins)
	s.Removed = slices.Clone(s.Removed)
	return s
}

func (c *Cluster) hook(ctx context.Context, method string) error {
	c.mu.Lock()
	h := c.s.Hook
	c.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(ctx, method)
}

// ID implements httpapi.Cluster.
func (c *Cluster) ID() metadata.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Self
}

// Routing implements httpapi.Cluster.
func (c *Cluster) Routing() *metadata.RoutingTable {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.Table == nil {
		return &metadata.RoutingTable{}
	}
	return c.s.Table
}

// Members implements httpapi.Cluster.
func (c *Cluster) Members() ([]node.MemberInfo, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v uint64
	if c.s.Table != nil {
		v = c.s.Table.Version
	}
	return slices.Clone(c.s.Members), v
}

// Leader implements httpapi.Cluster.
func (c *Cluster) Leader() (node.LeaderInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Leader, c.s.HasLeader
}

// Status implements httpapi.Cluster.
func (c *Cluster) Status() node.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Status
}

// Ready implements httpapi.Cluster.
func (c *Cluster) Ready(ctx context.Context) error {
	if err := c.hook(ctx, "Ready"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.ReadyErr
}

// Join implements httpapi.Cluster.
func (c *Cluster) Join(ctx context.Context, gossipAddrs []string) (int, error) {
	if err := c.hook(ctx, "Join"); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Joins = append(c.s.Joins, slices.Clone(gossipAddrs))
	if c.s.JoinErr != nil {
		return 0, c.s.JoinErr
	}
	if c.s.JoinCount < 0 {
		return len(gossipAddrs), nil
	}
	return c.s.JoinCount, nil
}

// Leave implements httpapi.Cluster.
func (c *Cluster) Leave(ctx context.Context) error {
	if err := c.hook(ctx, "Leave"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Leaves++
	return c.s.LeaveErr
}

// RemoveMember implements httpapi.Cluster.
func (c *Cluster) RemoveMember(ctx context.Context, id metadata.NodeID) error {
	if err := c.hook(ctx, "RemoveMember"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Removed = append(c.s.Removed, id)
	return c.s.RemoveErr
}
