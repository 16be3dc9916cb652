package metadata

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Defaults for a new cluster.
const (
	// DefaultPartitionCount is the number of partitions of a new cluster. It
	// is fixed for the cluster's life. 271 is prime, like Hazelcast's and
	// Olric's default.
	DefaultPartitionCount = 271
	// DefaultReplicas is the number of copies of each partition: one primary
	// and Replicas-1 backups.
	DefaultReplicas = 2
	// MaxPartitionCount bounds PartitionCount so a hostile or mistaken value
	// cannot make a member allocate without limit.
	MaxPartitionCount = 65536
	// MaxReplicas bounds Replicas.
	MaxReplicas = 7
	// MaxNodeIDLen bounds the length of a NodeID.
	MaxNodeIDLen = 128
)

// Sentinel errors. Messages are prefixed with the package name; test with
// errors.Is.
var (
	// ErrInvalidTable reports a routing table that breaks an invariant
	// (see RoutingTable.Validate). It wraps a message naming every problem.
	ErrInvalidTable = errors.New("metadata: invalid routing table")
	// ErrInvalidNodeID reports a node id that is empty, too long or holds
	// characters other than letters, digits, '-', '_' and '.'.
	ErrInvalidNodeID = errors.New("metadata: invalid node id")
	// ErrUnknownMember reports a node id that is not in the table.
	ErrUnknownMember = errors.New("metadata: unknown member")
	// ErrNoMembers reports a placement asked for with no eligible member.
	ErrNoMembers = errors.New("metadata: no eligible members")
	// ErrDuplicateMember reports a member id listed twice where ids must be
	// unique (the eligible members given to Place).
	ErrDuplicateMember = errors.New("metadata: duplicate member")
	// ErrInvalidSettings reports a partition count or replica count out of
	// range.
	ErrInvalidSettings = errors.New("metadata: invalid cluster settings")
)

// NodeID names a member. It is chosen by the operator (--node-id), stable
// across restarts of that member.
type NodeID string

// ValidateNodeID reports whether id is usable as a member name.
func ValidateNodeID(id NodeID) error {
	if id == "" || len(id) > MaxNodeIDLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrInvalidNodeID, id, MaxNodeIDLen)
	}
	for _, r := range string(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("%w: %q may hold only letters, digits, '-', '_' and '.'", ErrInvalidNodeID, id)
		}
	}
	return nil
}

// MemberState is the lifecycle state of a member in the routing table.
type MemberState uint8

// Member states.
const (
	// MemberAlive members take partitions.
	MemberAlive MemberState = iota + 1
	// MemberLeaving members are handing their partitions over before they go.
	MemberLeaving
	// MemberFailed members were declared dead by failure detection. They hold
	// no partitions and stay listed until they rejoin (with a new
	// incarnation) or an operator removes them.
	MemberFailed
)

// String returns "alive", "leaving" or "failed".
func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberLeaving:
		return "leaving"
	case MemberFailed:
		return "failed"
	default:
		return fmt.Sprintf("unknown(%d)", uint8(s))
	}
}

// Member is one member of the cluster as recorded in the routing table.
type Member struct {
	// ID is the operator-chosen member name.
	ID NodeID `msgpack:"id" json:"id"`
	// Incarnation is fresh on every process start of the member. Data lives
	// in memory, so a new incarnation holds nothing: a member whose
	// incarnation changes is removed from every partition in the same entry.
	Incarnation string `msgpack:"inc" json:"incarnation"`
	// ClusterAddr is the Raft + cluster RPC address (host:port).
	ClusterAddr string `msgpack:"ca" json:"cluster_addr"`
	// GossipAddr is the memberlist address (host:port).
	GossipAddr string `msgpack:"ga" json:"gossip_addr"`
	// HTTPAddr is the HTTP API address (host:port).
	HTTPAddr string `msgpack:"ha" json:"http_addr"`
	// RESPAddr is the Redis-protocol address (host:port).
	RESPAddr string `msgpack:"ra" json:"resp_addr"`
	// State is alive, leaving or failed.
	State MemberState `msgpack:"st" json:"state"`
	// Voter reports whether the member is a Raft voter (else a non-voter).
	Voter bool `msgpack:"v" json:"voter"`
}

// PartitionState is the serving state of a partition.
type PartitionState uint8

// Partition states.
const (
	// PartitionActive partitions are served by their primary.
	PartitionActive PartitionState = iota + 1
	// PartitionHandoff partitions are moving their primary from Primary to
	// HandoffTo; Primary still serves.
	PartitionHandoff
	// PartitionUnavailable partitions have no in-sync replica alive. They are
	// not served (503) until an operator force-assigns them.
	PartitionUnavailable
)

// String returns "active", "handoff" or "unavailable".
func (s PartitionState) String() string {
	switch s {
	case PartitionActive:
		return "active"
	case PartitionHandoff:
		return "handoff"
	case PartitionUnavailable:
		return "unavailable"
	default:
		return fmt.Sprintf("unknown(%d)", uint8(s))
	}
}

// Partition is the placement of one partition.
type Partition struct {
	// ID is the partition number, 0 <= ID < PartitionCount.
	ID uint32 `msgpack:"id" json:"id"`
	// Primary serves reads and writes. Empty only when State is
	// PartitionUnavailable.
	Primary NodeID `msgpack:"p" json:"primary"`
	// Backups hold copies; never the primary, never twice the same member.
	Backups []NodeID `msgpack:"b" json:"backups"`
	// State is active, handoff or unavailable.
	State PartitionState `msgpack:"st" json:"state"`
	// HandoffTo is the member taking over as primary; set only in
	// PartitionHandoff.
	HandoffTo NodeID `msgpack:"ht,omitempty" json:"handoff_to,omitempty"`
	// LeaderEpoch increases every time Primary changes. Requests and
	// replication carry it so that an old primary is fenced.
	LeaderEpoch uint64 `msgpack:"le" json:"leader_epoch"`
	// PrevPrimary and PrevEpoch record the primary (and its epoch) before
	// the last primary change: where a new primary finds the partition's
	// data. Set by the FSM when it applies a primary change (never by
	// placement); empty for a partition that has had one primary only, or
	// that was force-assigned from unavailable (it starts empty).
	PrevPrimary NodeID `msgpack:"pp,omitempty" json:"prev_primary,omitempty"`
	PrevEpoch   uint64 `msgpack:"pe,omitempty" json:"prev_epoch,omitempty"`
	// Written is set (by a committed entry) before the partition's first
	// acknowledged write; a partition never written holds no data worth
	// handing over, so losing its only holder loses nothing. Cleared when
	// the partition becomes unavailable or is force-assigned.
	Written bool `msgpack:"w,omitempty" json:"written,omitempty"`
	// Syncing lists the backups that are still being filled from the
	// primary (a subset of Backups): they may lack acknowledged writes, so
	// they are never promoted and the primary does not wait for them. The
	// others are the in-sync set: the primary acknowledges a write only
	// once every one of them applied it. Derived by the FSM: a new backup
	// of a written partition, and every backup after a change of primary,
	// starts syncing; a ReplicaInSync entry, proposed by the primary once
	// the backup caught up, takes it off the list.
	Syncing []NodeID `msgpack:"sy,omitempty" json:"syncing,omitempty"`
	// Promoted is set by the FSM on a change of primary when the new
	// primary was an in-sync backup of the previous one: it already holds
	// every acknowledged write and serves its own copy (once the previous
	// primary, if still alive, is fenced) instead of pulling one.
	Promoted bool `msgpack:"pr,omitempty" json:"promoted,omitempty"`
}

// InSync reports whether id is the primary or an in-sync backup of p.
func (p Partition) InSync(id NodeID) bool {
	if id == "" {
		return false
	}
	return p.Primary == id || (slices.Contains(p.Backups, id) && !slices.Contains(p.Syncing, id))
}

// InSyncBackups returns the backups that are not syncing. The slice is new.
func (p Partition) InSyncBackups() []NodeID {
	out := make([]NodeID, 0, len(p.Backups))
	for _, b := range p.Backups {
		if !slices.Contains(p.Syncing, b) {
			out = append(out, b)
		}
	}
	return out
}

// Replicas returns the primary followed by the backups (the primary is left
// out when empty). The slice is new.
func (p Partition) Replicas() []NodeID {
	out := make([]NodeID, 0, 1+len(p.Backups))
	if p.Primary != "" {
		out = append(out, p.Primary)
	}
	return append(out, p.Backups...)
}

// Holds reports whether id is the primary or a backup of p.
func (p Partition) Holds(id NodeID) bool {
	return p.Primary == id || slices.Contains(p.Backups, id)
}

// Clone returns a deep copy of p.
func (p Partition) Clone() Partition {
	p.Backups = slices.Clone(p.Backups)
	p.Syncing = slices.Clone(p.Syncing)
	return p
}

// Equal reports whether p and q are the same placement (the FSM-derived
// PrevPrimary history, Syncing and Promoted are not part of a placement).
func (p Partition) Equal(q Partition) bool {
	return p.ID == q.ID && p.Primary == q.Primary && p.State == q.State &&
		p.HandoffTo == q.HandoffTo && p.LeaderEpoch == q.LeaderEpoch && p.Written == q.Written &&
		slices.Equal(p.Backups, q.Backups)
}

// RoutingTable is one committed version of the cluster's routing state.
//
// A published table is immutable: readers share it without locks. To change
// it, Clone, modify the clone, Validate, then publish (only fsm does that).
type RoutingTable struct {
	// Version is the Raft log index of the entry that produced this table;
	// 0 before InitRouting. Unique and monotonic across the cluster.
	Version uint64 `msgpack:"ver" json:"routing_version"`
	// PartitionCount is fixed at cluster creation.
	PartitionCount uint32 `msgpack:"pc" json:"partition_count"`
	// Replicas is the target number of copies per partition.
	Replicas int `msgpack:"rep" json:"replicas"`
	// Members is sorted by ID, without duplicates.
	Members []Member `msgpack:"mem" json:"members"`
	// Partitions has PartitionCount entries, Partitions[i].ID == i; empty
	// before InitRouting.
	Partitions []Partition `msgpack:"parts" json:"partitions"`
	// Departed remembers the last MaxDeparted members removed (leave or
	// operator remove), oldest first, with the incarnation they had: that
	// incarnation never joins again (a stale gossip message about it must
	// not resurrect it); the member may rejoin after a restart, which gives
	// it a new incarnation.
	Departed []Departure `msgpack:"dep,omitempty" json:"-"`
}

// MaxDeparted bounds RoutingTable.Departed.
const MaxDeparted = 64

// Departure is a member that was removed, at one incarnation.
type Departure struct {
	ID          NodeID `msgpack:"id"`
	Incarnation string `msgpack:"inc"`
}

// HasDeparted reports whether member id at incarnation inc was removed.
func (t *RoutingTable) HasDeparted(id NodeID, inc string) bool {
	if t == nil {
		return false
	}
	return slices.Contains(t.Departed, Departure{ID: id, Incarnation: inc})
}

// Initialized reports whether InitRouting has been applied.
func (t *RoutingTable) Initialized() bool {
	return t != nil && t.PartitionCount > 0 && len(t.Partitions) == int(t.PartitionCount)
}

// Clone returns a deep copy of t that the caller may modify.
func (t *RoutingTable) Clone() *RoutingTable {
	if t == nil {
		return &RoutingTable{}
	}
	c := *t
	c.Members = slices.Clone(t.Members)
	c.Departed = slices.Clone(t.Departed)
	c.Partitions = make([]Partition, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = p.Clone()
	}
	return &c
}

// Member returns the member with the given id.
func (t *RoutingTable) Member(id NodeID) (Member, bool) {
	if t == nil {
		return Member{}, false
	}
	i, ok := slices.BinarySearchFunc(t.Members, id, func(m Member, id NodeID) int {
		return strings.Compare(string(m.ID), string(id))
	})
	if !ok {
		return Member{}, false
	}
	return t.Members[i], true
}

// UpsertMember inserts m or replaces the member with the same ID, keeping
// Members sorted. Only for tables being built (clones).
func (t *RoutingTable) UpsertMember(m Member) {
	i, ok := slices.BinarySearchFunc(t.Members, m.ID, func(x Member, id NodeID) int {
		return strings.Compare(string(x.ID), string(id))
	})
	if ok {
		t.Members[i] = m
		return
	}
	t.Members = slices.Insert(t.Members, i, m)
}

// RemoveMember deletes the member with the given id; it reports whether it
// was there. Only for tables being built (clones).
func (t *RoutingTable) RemoveMember(id NodeID) bool {
	i, ok := slices.BinarySearchFunc(t.Members, id, func(x Member, id NodeID) int {
		return strings.Compare(string(x.ID), string(id))
	})
	if ok {
		t.Members = slices.Delete(t.Members, i, i+1)
	}
	return ok
}

// AliveMembers returns the ids of members in state alive, sorted.
func (t *RoutingTable) AliveMembers() []NodeID {
	var out []NodeID
	for _, m := range t.Members {
		if m.State == MemberAlive {
			out = append(out, m.ID)
		}
	}
	return out
}

// Partition returns partition id, or false when out of range or the table is
// not initialized.
func (t *RoutingTable) Partition(id uint32) (Partition, bool) {
	if t == nil || int(id) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[id], true
}

// Locate returns the partition that holds key of dmap.
func (t *RoutingTable) Locate(dmap, key string) (Partition, bool) {
	if !t.Initialized() {
		return Partition{}, false
	}
	return t.Partition(PartitionOf(dmap, key, t.PartitionCount))
}

// Load counts, for one member, how many partitions it is primary and backup
// of.
type Load struct {
	Primaries int `json:"primaries"`
	Backups   int `json:"backups"`
}

// Loads returns the primary and backup counts of every member that holds a
// replica or is alive.
func (t *RoutingTable) Loads() map[NodeID]Load {
	out := make(map[NodeID]Load, len(t.Members))
	for _, m := range t.Members {
		if m.State == MemberAlive {
			out[m.ID] = Load{}
		}
	}
	for _, p := range t.Partitions {
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

// ValidateSettings checks a partition count and replica count.
func ValidateSettings(partitionCount uint32, replicas int) error {
	var errs []string
	if partitionCount == 0 || partitionCount > MaxPartitionCount {
		errs = append(errs, fmt.Sprintf("partition count %d must be 1 to %d", partitionCount, MaxPartitionCount))
	}
	if replicas < 1 || replicas > MaxReplicas {
		errs = append(errs, fmt.Sprintf("replicas %d must be 1 to %d", replicas, MaxReplicas))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(errs, "; "))
	}
	return nil
}

// Validate checks the invariants every committed table holds and reports
// every violation at once:
//
//   - members sorted by ID, unique, with valid ids and known states;
//   - an initialized table has PartitionCount partitions with Partitions[i].ID == i;
//   - every primary, backup and handoff target is a member that is not failed;
//   - no member holds two replicas of one partition;
//   - a partition has no primary exactly when it is unavailable, and then
//     no backups and is not marked written; HandoffTo is set exactly in
//     state handoff and is not a current replica's primary;
//   - no partition has more than Replicas+1 replicas (one extra backup
//     during a staged move: see node's reconcile);
//   - Syncing lists backups only, each once.
func (t *RoutingTable) Validate() error {
	var errs []string
	add := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	if t == nil {
		return fmt.Errorf("%w: nil table", ErrInvalidTable)
	}
	if len(t.Partitions) > 0 || t.PartitionCount > 0 {
		if err := ValidateSettings(t.PartitionCount, t.Replicas); err != nil {
			add("%v", err)
		}
		if len(t.Partitions) != int(t.PartitionCount) {
			add("%d partitions, want %d", len(t.Partitions), t.PartitionCount)
		}
	}
	state := make(map[NodeID]MemberState, len(t.Members))
	for i, m := range t.Members {
		if err := ValidateNodeID(m.ID); err != nil {
			add("member %d: %v", i, err)
		}
		if i > 0 && t.Members[i-1].ID >= m.ID {
			add("members not sorted or duplicated at %q", m.ID)
		}
		if m.State < MemberAlive || m.State > MemberFailed {
			add("member %q: unknown state %d", m.ID, m.State)
		}
		state[m.ID] = m.State
	}
	usable := func(id NodeID) bool {
		s, ok := state[id]
		return ok && s != MemberFailed
	}
	for i, p := range t.Partitions {
		if p.ID != uint32(i) {
			add("partition at index %d has id %d", i, p.ID)
		}
		switch p.State {
		case PartitionActive, PartitionHandoff:
			if p.Primary == "" {
				add("partition %d: %s without primary", p.ID, p.State)
			}
		case PartitionUnavailable:
			if p.Primary != "" || len(p.Backups) > 0 || p.Written {
				add("partition %d: unavailable but has replicas or is marked written", p.ID)
			}
		default:
			add("partition %d: unknown state %d", p.ID, p.State)
		}
		if (p.State == PartitionHandoff) != (p.HandoffTo != "") {
			add("partition %d: handoff target %q in state %s", p.ID, p.HandoffTo, p.State)
		}
		if p.HandoffTo != "" && (p.HandoffTo == p.Primary || !usable(p.HandoffTo)) {
			add("partition %d: bad handoff target %q", p.ID, p.HandoffTo)
		}
		for j, sy := range p.Syncing {
			if !slices.Contains(p.Backups, sy) || slices.Contains(p.Syncing[:j], sy) {
				add("partition %d: syncing member %q is not a backup or is listed twice", p.ID, sy)
			}
		}
		reps := p.Replicas()
		// One backup may be extra: a member filled before it takes over
		// from a replica (a staged move), so the partition never has fewer
		// in-sync copies while data moves; it is in sync for the short
		// time between its replica_in_sync entry and the switch.
		if limit := t.Replicas + 1; t.Replicas > 0 && len(reps) > limit {
			add("partition %d: %d replicas, more than %d", p.ID, len(reps), limit)
		}
		for j, r := range reps {
			if r == "" {
				add("partition %d: empty replica", p.ID)
				continue
			}
			if !usable(r) {
				add("partition %d: replica %q is not a live member", p.ID, r)
			}
			if slices.Contains(reps[:j], r) {
				add("partition %d: member %q holds two replicas", p.ID, r)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidTable, strings.Join(errs, "; "))
	}
	return nil
}
