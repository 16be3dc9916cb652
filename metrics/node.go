package metrics

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	LeaseRemaining() time.Duration
	ControlStats() node.ControlStats
	ServiceStats() (dataplane.ServiceStats, bool)
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
	nameSyncing        = "olric_raft_routing_syncing_backups"
	nameLease          = "olric_raft_member_lease_remaining_seconds"

	nameDPOpen        = "olric_raft_dataplane_open"
	nameDPPartitions  = "olric_raft_dataplane_partitions"
	nameDPKeys        = "olric_raft_dataplane_keys"
	nameDPBytes       = "olric_raft_dataplane_bytes"
	nameDPLocks       = "olric_raft_dataplane_locks"
	nameDPEvictions   = "olric_raft_dataplane_evictions_total"
	nameDPExpirations = "olric_raft_dataplane_expirations_total"
)

// Descriptors of the node collector's families.
var (
	descRaftLeader      = family(nameRaftLeader, "1 if this member is the Raft leader, else 0.")
	descRaftState       = family(nameRaftState, "1 for this member's current Raft state (label state), 0 for the others.", "state")
	descRaftTerm        = family(nameRaftTerm, "Current Raft term.")
	descRaftLastIndex   = family(nameRaftLastIndex, "Index of the last entry in this member's Raft log.")
	descRaftCommitIndex = family(nameRaftCommitIndex, "Raft commit index known to this member.")
	descRaftApplied     = family(nameRaftApplied, "Last Raft index applied to this member's FSM.")
	descRaftLastContact = family(nameRaftLastContact, "Seconds since this follower last heard from the leader (absent on the leader).")

	descRoutingVersion = family(nameRoutingVersion, "Version (Raft index) of the committed routing table on this member.")
	descMembers        = family(nameMembers, "Members of the committed routing table by state (alive, leaving, failed).", "state")
	descPartitions     = family(namePartitions, "Partitions of the committed routing table by state (active, handoff, unavailable).", "state")
	descWritten        = family(nameWritten, "Partitions marked written (took at least one acknowledged write).")
	descPrimaries      = family(namePrimaries, "Partitions this member is primary of.")
	descBackups        = family(nameBackups, "Partitions this member is a backup of.")
	descGossipMembers  = family(nameGossipMembers, "Members memberlist knows (alive or suspect, this one included).")
	descSyncing        = family(nameSyncing, "Backup slots of the committed routing table still being filled from their primary (not yet in sync, not promotable).")
	descLease          = family(nameLease, "Time left on this member's primary lease (0: it serves nothing as primary).")

	descDPOpen        = family(nameDPOpen, "1 once this member's data plane is open (routing initialized), else 0.")
	descDPPartitions  = family(nameDPPartitions, "Partitions this member's storage engine holds.")
	descDPKeys        = family(nameDPKeys, "Keys held on this member (primaries and backups) by DMap.", "dmap")
	descDPBytes       = family(nameDPBytes, "Bytes of keys plus values held on this member by DMap.", "dmap")
	descDPLocks       = family(nameDPLocks, "Locks held on this member by DMap.", "dmap")
	descDPEvictions   = family(nameDPEvictions, "Keys evicted (LRU, max idle) on this member as primary, by DMap.", "dmap")
	descDPExpirations = family(nameDPExpirations, "Keys expired (TTL) on this member as primary, by DMap.", "dmap")
)

// nodeDescs lists every descriptor of the node collector.
var nodeDescs = []*prometheus.Desc{
	descRaftLeader, descRaftState, descRaftTerm, descRaftLastIndex, descRaftCommitIndex,
	descRaftApplied, descRaftLastContact,
	descRoutingVersion, descMembers, descPartitions, descWritten, descPrimaries, descBackups,
	descGossipMembers, descSyncing, descLease,
	descDPOpen, descDPPartitions, descDPKeys, descDPBytes, descDPLocks, descDPEvictions, descDPExpirations,
}

// family returns the descriptor of a family with variable labels (gauge or
// counter: the value type of each metric chooses).
func family(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// nodeCollector reads a Source on each scrape.
type nodeCollector struct{ src Source }

var _ prometheus.Collector = nodeCollector{}

// NewNodeCollector returns a collector of src's Raft, routing, gossip and
// data-plane state, read on each scrape.
func NewNodeCollector(src Source) prometheus.Collector { return nodeCollector{src: src} }

// Describe implements prometheus.Collector.
func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range nodeDescs {
		ch <- d
	}
	for _, d := range clusterDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It may run concurrently with
// itself; it only reads the Source.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	rs := c.src.RaftStats()
	g(descRaftLeader, b2f(rs.Leader))
	for _, s := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
		g(descRaftState, b2f(rs.State == s), strings.ToLower(s))
	}
	g(descRaftTerm, float64(rs.Term))
	g(descRaftLastIndex, float64(rs.LastLogIndex))
	g(descRaftCommitIndex, float64(rs.CommitIndex))
	g(descRaftApplied, float64(rs.AppliedIndex))
	if rs.HasContact {
		g(descRaftLastContact, rs.LastContact.Seconds())
	}

	c.collectRouting(g)
	g(descGossipMembers, float64(c.src.GossipMembers()))
	g(descLease, c.src.LeaseRemaining().Seconds())
	c.collectControl(ch)
	c.collectDataPlane(ch, g)
	c.collectReplication(ch, g)
}

func (c nodeCollector) collectRouting(g func(*prometheus.Desc, float64, ...string)) {
	t := c.src.Routing()
	if t == nil {
		t = &metadata.RoutingTable{}
	}
	self := c.src.ID()
	g(descRoutingVersion, float64(t.Version))

	members := map[metadata.MemberState]int{}
	for _, m := range t.Members {
		members[m.State]++
	}
	g(descMembers, float64(members[metadata.MemberAlive]), "alive")
	g(descMembers, float64(members[metadata.MemberLeaving]), "leaving")
	g(descMembers, float64(members[metadata.MemberFailed]), "failed")

	var active, handoff, unavailable, written, primaries, backups, syncing int
	for _, p := range t.Partitions {
		syncing += len(p.Syncing)
		switch p.State {
		case metadata.PartitionActive:
			active++
		case metadata.PartitionHandoff:
			handoff++
		case metadata.PartitionUnavailable:
			unavailable++
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
	g(descPartitions, float64(active), "active")
	g(descPartitions, float64(handoff), "handoff")
	g(descPartitions, float64(unavailable), "unavailable")
	g(descWritten, float64(written))
	g(descPrimaries, float64(primaries))
	g(descBackups, float64(backups))
	g(descSyncing, float64(syncing))
	collectMemberRouting(t, g)
}

func (c nodeCollector) collectDataPlane(ch chan<- prometheus.Metric, g func(*prometheus.Desc, float64, ...string)) {
	s, ok := c.src.EngineStats()
	g(descDPOpen, b2f(ok))
	if !ok {
		return
	}
	g(descDPPartitions, float64(s.Partitions))
	counter := func(d *prometheus.Desc, v float64, dmap string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, dmap)
	}
	for _, d := range capDMaps(s.DMaps, MaxDMapLabels) {
		g(descDPKeys, float64(d.Keys), d.name)
		g(descDPBytes, float64(d.Bytes), d.name)
		g(descDPLocks, float64(d.Locks), d.name)
		counter(descDPEvictions, float64(d.Evictions), d.name)
		counter(descDPExpirations, float64(d.Expirations), d.name)
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
