package httpapitest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Cluster is a fake httpapi.Cluster with a fixed routing table. Configure it
// with Set; read what it was asked with Calls. Safe for concurrent use.
type Cluster struct {
	mu sync.Mutex
	// s holds the configuration and records; guarded by mu.
	s State
	// data is the fake data plane's store (dataplane.go); guarded by mu.
	data dataState
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

	// Errors returned by the methods that can fail (nil: success). With
	// ForceAssignErr nil, ForceAssign simulates the node on Table (see
	// Cluster.ForceAssign).
	ReadyErr, JoinErr, LeaveErr, RemoveErr, ForceAssignErr error
	// JoinCount is what Join returns on success; negative means
	// len(gossipAddrs).
	JoinCount int
	// Hook, if set, runs first in every method that takes a context, with
	// the method's name ("Ready", "Join", "Leave", "RemoveMember",
	// "ForceAssign", "Do", "Scan", "Destroy"); a non-nil result is returned
	// as the method's error. Tests use it to block until the context ends,
	// or to panic.
	Hook func(ctx context.Context, method string) error

	// The data plane. With DataErr nil, Do, Scan and Destroy simulate an
	// in-memory store (see Cluster.Do); otherwise all three return
	// DataErr.
	DataErr error
	// MaxValueBytes: Do refuses longer values with ErrTooLarge; zero
	// means dataplane.DefaultMaxValueLen.
	MaxValueBytes int
	// ScanPage, if positive, caps the keys of a scan page below the limit
	// asked for, as the real scan does when a page ends with a partition.
	ScanPage int
	// Now, if set, is the data plane's clock (TTLs and lock leases); nil
	// means time.Now.
	Now func() time.Time

	// Records.
	Joins        [][]string
	Leaves       int
	Removed      []metadata.NodeID
	ForceAssigns []ForceAssignCall
	// DataCalls counts the calls of Do, Scan and Destroy.
	DataCalls int
	// LastRequest is a copy of the last request Do received.
	LastRequest *dataplane.Request
	// LastScan is the last Scan call.
	LastScan ScanCall
	// Destroyed lists the DMaps Destroy was called for.
	Destroyed []string
}

// ForceAssignCall records the arguments of one ForceAssign call.
type ForceAssignCall struct {
	Partitions []uint32
	Owner      metadata.NodeID
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
	s.ForceAssigns = slices.Clone(s.ForceAssigns)
	s.Destroyed = slices.Clone(s.Destroyed)
	if s.LastRequest != nil {
		r := *s.LastRequest
		s.LastRequest = &r
	}
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

// ForceAssign implements httpapi.Cluster. Unless ForceAssignErr is set, it
// behaves like the node on Table: it checks the owner (a valid id of an
// alive member) and every partition (in range, unavailable), then commits
// a new table (version + 1) in which the partitions are active with the
// owner, or alive members round-robin when owner is empty, and refreshes
// Members' and Status' counts. No partition given means every unavailable
// one; when there is none it changes nothing and returns the current
// version with nil Partitions.
func (c *Cluster) ForceAssign(ctx context.Context, partitions []uint32, owner metadata.NodeID) (node.ForceAssignResult, error) {
	if err := c.hook(ctx, "ForceAssign"); err != nil {
		return node.ForceAssignResult{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.ForceAssigns = append(c.s.ForceAssigns, ForceAssignCall{Partitions: slices.Clone(partitions), Owner: owner})
	if c.s.ForceAssignErr != nil {
		return node.ForceAssignResult{}, c.s.ForceAssignErr
	}
	t := c.s.Table
	if !t.Initialized() {
		return node.ForceAssignResult{}, fmt.Errorf("%w: routing is not initialized", node.ErrNotReady)
	}
	if owner != "" {
		if err := metadata.ValidateNodeID(owner); err != nil {
			return node.ForceAssignResult{}, fmt.Errorf("%w: %v", node.ErrInvalidArgument, err)
		}
		if m, ok := t.Member(owner); !ok || m.State != metadata.MemberAlive {
			return node.ForceAssignResult{}, fmt.Errorf("%w: %s is not an alive member", node.ErrUnknownMember, owner)
		}
	}
	alive := t.AliveMembers()
	if len(alive) == 0 {
		return node.ForceAssignResult{}, fmt.Errorf("%w: no alive member to own partitions", node.ErrNotReady)
	}
	targets := partitions
	if len(targets) == 0 {
		for _, p := range t.Partitions {
			if p.State == metadata.PartitionUnavailable {
				targets = append(targets, p.ID)
			}
		}
		if len(targets) == 0 {
			return node.ForceAssignResult{RoutingVersion: t.Version}, nil
		}
	}
	next := t.Clone()
	var assigned []uint32
	for i, id := range targets {
		p, ok := next.Partition(id)
		if !ok {
			return node.ForceAssignResult{}, fmt.Errorf("%w: partition %d does not exist (0 to %d)", node.ErrInvalidArgument, id, t.PartitionCount-1)
		}
		if p.State != metadata.PartitionUnavailable {
			return node.ForceAssignResult{}, fmt.Errorf("%w: partition %d is %s with primary %q", node.ErrPartitionAvailable, id, p.State, p.Primary)
		}
		o := owner
		if o == "" {
			o = alive[i%len(alive)]
		}
		next.Partitions[id] = metadata.Partition{ID: id, Primary: o, State: metadata.PartitionActive, LeaderEpoch: p.LeaderEpoch + 1}
		assigned = append(assigned, id)
	}
	next.Version++
	c.setTable(next)
	return node.ForceAssignResult{RoutingVersion: next.Version, Partitions: assigned}, nil
}

// LosePartitions makes the given partitions unavailable (no replica left),
// as the node does when every member holding one fails: it commits a new
// table (version + 1) and refreshes Members' and Status' counts. It panics
// on a partition out of range or an uninitialized table.
func (c *Cluster) LosePartitions(ids ...uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.s.Table.Clone()
	for _, id := range ids {
		p, ok := next.Partition(id)
		if !ok {
			panic(fmt.Sprintf("httpapitest: LosePartitions: no partition %d", id))
		}
		next.Partitions[id] = metadata.Partition{ID: id, State: metadata.PartitionUnavailable, LeaderEpoch: p.LeaderEpoch}
	}
	next.Version++
	c.setTable(next)
}

// setTable installs t and recomputes what derives from it: the members'
// primaries and backups, and Status' routing version, unavailable count and
// this node's primaries and backups. c.mu must be held.
func (c *Cluster) setTable(t *metadata.RoutingTable) {
	if err := t.Validate(); err != nil {
		panic(fmt.Sprintf("httpapitest: invalid table: %v", err))
	}
	c.s.Table = t
	loads := t.Loads()
	// A new slice: copies handed out by Calls share the old one.
	c.s.Members = slices.Clone(c.s.Members)
	for i := range c.s.Members {
		l := loads[c.s.Members[i].ID]
		c.s.Members[i].Primaries, c.s.Members[i].Backups = l.Primaries, l.Backups
	}
	unavailable := 0
	for _, p := range t.Partitions {
		if p.State == metadata.PartitionUnavailable {
			unavailable++
		}
	}
	self := loads[c.s.Self]
	c.s.Status.RoutingVersion = t.Version
	c.s.Status.Unavailable = unavailable
	c.s.Status.Primaries, c.s.Status.Backups = self.Primaries, self.Backups
}
