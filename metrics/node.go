package metrics

import (
	"cmp"
	"slices"
	"strings"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Source is what the node collector reads on each scrape; *node.Node
// implements it. Every method must be read-only and safe for concurrent
// use.
type Source interface {
	ID() metadata.NodeID
	Routing() *metadata.RoutingTable
	RaftStats() node.RaftStats
	EngineStats() (dataplane.Stats, bool)
	GossipMembers() int
}

var _ Source = (*node.Node)(nil)

// MaxDMapLabels bounds the dmap label values of the data-plane families:
// the first MaxDMapLabels DMaps by name keep their own series, the rest
// are summed into dmap="_other" (OtherDMap).
const MaxDMapLabels = 100

// OtherDMap is the dmap label value of the DMaps beyond MaxDMapLabels.
const OtherDMap = "_other"

// Family names of the node collector (see doc.go for their meaning).
const (
	nameRaftLeader      = "olric_raft_raft_leader"
	nameRaftState       = "olric_raft_raft_state"
	nameRaftTerm        = "olric_raft_raft_term"
	nameRaftLastIndex   = "olric_raft_raft_last_log_index"
	nameRaftCommitIndex = "olric_raft_raft_commit_index"
	nameRaftApplied     = "olric_raft_raft_applied_index"
	nameRaftLastContact = "olric_raft_raft_last_contact_seconds"

	nameRoutingVersion = "olric_raft_routing_version"
	nameMembers        = "olric_raft_routing_members"
	namePartitions     = "olric_raft_routing_partitions"
	nameWritten        = "olric_raft_routing_written_partitions"
	namePrimaries      = "olric_raft_member_primary_partitions"
	nameBackups        = "olric_raft_member_backup_partitions"
	nameGossipMembers  = "olric_raft_gossip_members"

	nameDPOpen        = "olric_raft_dataplane_open"
	nameDPPartitions  = "olric_raft_dataplane_partitions"
	nameDPKeys        = "olric_raft_dataplane_keys"
	nameDPBytes       = "olric_raft_dataplane_bytes"
	nameDPLocks       = "olric_raft_dataplane_locks"
	nameDPEvictions   = "olric_raft_dataplane_evictions_total"
	nameDPExpirations = "olric_raft_dataplane_expirations_total"
)

var nodeDescs = []Desc{
	{nameRaftLeader, "1 if this member is the Raft leader, else 0.", KindGauge},
	{nameRaftState, "1 for this member's current Raft state (label state), 0 for the others.", KindGauge},
	{nameRaftTerm, "Current Raft term.", KindGauge},
	{nameRaftLastIndex, "Index of the last entry in this member's Raft log.", KindGauge},
	{nameRaftCommitIndex, "Raft commit index known to this member.", KindGauge},
	{nameRaftApplied, "Last Raft index applied to this member's FSM.", KindGauge},
	{nameRaftLastContact, "Seconds since this follower last heard from the leader (absent on the leader).", KindGauge},
	{nameRoutingVersion, "Version (Raft index) of the committed routing table on this member.", KindGauge},
	{nameMembers, "Members of the committed routing table by state (alive, leaving, failed).", KindGauge},
	{namePartitions, "Partitions of the committed routing table by state (active, handoff, unavailable).", KindGauge},
	{nameWritten, "Partitions marked written (took at least one acknowledged write).", KindGauge},
	{namePrimaries, "Partitions this member is primary of.", KindGauge},
	{nameBackups, "Partitions this member is a backup of.", KindGauge},
	{nameGossipMembers, "Members memberlist knows (alive or suspect, this one included).", KindGauge},
	{nameDPOpen, "1 once this member's data plane is open (routing initialized), else 0.", KindGauge},
	{nameDPPartitions, "Partitions this member's storage engine holds.", KindGauge},
	{nameDPKeys, "Keys held on this member (primaries and backups) by DMap.", KindGauge},
	{nameDPBytes, "Bytes of keys plus values held on this member by DMap.", KindGauge},
	{nameDPLocks, "Locks held on this member by DMap.", KindGauge},
	{nameDPEvictions, "Keys evicted (LRU, max idle) on this member as primary, by DMap.", KindCounter},
	{nameDPExpirations, "Keys expired (TTL) on this member as primary, by DMap.", KindCounter},
}

// nodeCollector reads a Source on each scrape.
type nodeCollector struct{ src Source }

// NewNodeCollector returns a collector of src's Raft, routing, gossip and
// data-plane state, read on each scrape.
func NewNodeCollector(src Source) Collector { return nodeCollector{src: src} }

func (nodeCollector) Describe() []Desc { return nodeDescs }

func (c nodeCollector) Collect(emit func(Family)) {
	rs := c.src.RaftStats()
	emit(single(nameRaftLeader, b2f(rs.Leader)))
	st := Family{Name: nameRaftState}
	for _, s := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
		st.Samples = append(st.Samples, Sample{Labels: []Label{{"state", strings.ToLower(s)}}, Value: b2f(rs.State == s)})
	}
	emit(st)
	emit(single(nameRaftTerm, float64(rs.Term)))
	emit(single(nameRaftLastIndex, float64(rs.LastLogIndex)))
	emit(single(nameRaftCommitIndex, float64(rs.CommitIndex)))
	emit(single(nameRaftApplied, float64(rs.AppliedIndex)))
	if rs.HasContact {
		emit(single(nameRaftLastContact, rs.LastContact.Seconds()))
	}

	c.collectRouting(emit)
	emit(single(nameGossipMembers, float64(c.src.GossipMembers())))
	c.collectDataPlane(emit)
}

func (c nodeCollector) collectRouting(emit func(Family)) {
	t := c.src.Routing()
	if t == nil {
		t = &metadata.RoutingTable{}
	}
	self := c.src.ID()
	emit(single(nameRoutingVersion, float64(t.Version)))

	members := map[metadata.MemberState]int{}
	for _, m := range t.Members {
		members[m.State]++
	}
	emit(byState(nameMembers, []string{"alive", "leaving", "failed"},
		[]int{members[metadata.MemberAlive], members[metadata.MemberLeaving], members[metadata.MemberFailed]}))

	var parts [3]int
	var written, primaries, backups int
	for _, p := range t.Partitions {
		switch p.State {
		case metadata.PartitionActive:
			parts[0]++
		case metadata.PartitionHandoff:
			parts[1]++
		case metadata.PartitionUnavailable:
			parts[2]++
		}
		if p.Written {
			written++
		}
		if p.Primary == self {
			primaries++
		}
		if slices.Contains(p.Backups, self) {
			backups++
		}
	}
	emit(byState(namePartitions, []string{"active", "handoff", "unavailable"}, parts[:]))
	emit(single(nameWritten, float64(written)))
	emit(single(namePrimaries, float64(primaries)))
	emit(single(nameBackups, float64(backups)))
}

func byState(name string, states []string, counts []int) Family {
	f := Family{Name: name}
	for i, s := range states {
		f.Samples = append(f.Samples, Sample{Labels: []Label{{"state", s}}, Value: float64(counts[i])})
	}
	return f
}

func (c nodeCollector) collectDataPlane(emit func(Family)) {
	s, ok := c.src.EngineStats()
	emit(single(nameDPOpen, b2f(ok)))
	if !ok {
		return
	}
	emit(single(nameDPPartitions, float64(s.Partitions)))
	dmaps := capDMaps(s.DMaps, MaxDMapLabels)
	keys := Family{Name: nameDPKeys}
	bytes := Family{Name: nameDPBytes}
	locks := Family{Name: nameDPLocks}
	evictions := Family{Name: nameDPEvictions}
	expirations := Family{Name: nameDPExpirations}
	for _, d := range dmaps {
		l := []Label{{"dmap", d.name}}
		keys.Samples = append(keys.Samples, Sample{Labels: l, Value: float64(d.Keys)})
		bytes.Samples = append(bytes.Samples, Sample{Labels: l, Value: float64(d.Bytes)})
		locks.Samples = append(locks.Samples, Sample{Labels: l, Value: float64(d.Locks)})
		evictions.Samples = append(evictions.Samples, Sample{Labels: l, Value: float64(d.Evictions)})
		expirations.Samples = append(expirations.Samples, Sample{Labels: l, Value: float64(d.Expirations)})
	}
	for _, f := range []Family{keys, bytes, locks, evictions, expirations} {
		emit(f)
	}
}

type namedDMap struct {
	name string
	dataplane.DMapStats
}

// capDMaps returns the DMaps sorted by label value, the first max by name
// on their own and the rest summed into OtherDMap. Names are made valid
// UTF-8 first; names that then collide (or a DMap named OtherDMap) are
// summed, so no series is emitted twice.
func capDMaps(in map[string]dataplane.DMapStats, max int) []namedDMap {
	byLabel := make(map[string]dataplane.DMapStats, len(in))
	for name, d := range in {
		l := strings.ToValidUTF8(name, "\uFFFD")
		byLabel[l] = addStats(byLabel[l], d)
	}
	names := make([]string, 0, len(byLabel))
	for l := range byLabel {
		names = append(names, l)
	}
	slices.Sort(names)
	out := make([]namedDMap, 0, min(len(names), max+1))
	var other dataplane.DMapStats
	hasOther := false
	for i, l := range names {
		if i < max && l != OtherDMap {
			out = append(out, namedDMap{l, byLabel[l]})
			continue
		}
		other, hasOther = addStats(other, byLabel[l]), true
	}
	if hasOther {
		out = append(out, namedDMap{OtherDMap, other})
	}
	slices.SortFunc(out, func(a, b namedDMap) int { return cmp.Compare(a.name, b.name) })
	return out
}

func addStats(a, b dataplane.DMapStats) dataplane.DMapStats {
	return dataplane.DMapStats{
		Keys: a.Keys + b.Keys, Bytes: a.Bytes + b.Bytes, Locks: a.Locks + b.Locks,
		Evictions: a.Evictions + b.Evictions, Expirations: a.Expirations + b.Expirations,
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
