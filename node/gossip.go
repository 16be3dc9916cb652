package node

import (
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// gossipMeta is what each member advertises through memberlist's node
// metadata (at most 512 bytes).
type gossipMeta struct {
	Version         uint8  `msgpack:"v"`
	Incarnation     string `msgpack:"inc"`
	ClusterAddr     string `msgpack:"ca"`
	HTTPAddr        string `msgpack:"ha"`
	RESPAddr        string `msgpack:"ra"`
	BootstrapExpect int    `msgpack:"be,omitempty"`
}

const gossipMetaVersion = 1

func decodeGossipMeta(b []byte) (gossipMeta, bool) {
	var m gossipMeta
	if len(b) == 0 || msgpack.Unmarshal(b, &m) != nil || m.Version != gossipMetaVersion || m.Incarnation == "" || m.ClusterAddr == "" {
		return gossipMeta{}, false
	}
	return m, true
}

// gossipMember is one member as memberlist sees it.
type gossipMember struct {
	ID         metadata.NodeID
	GossipAddr string
	Meta       gossipMeta
	State      memberlist.NodeStateType
}

// gossipDelegate supplies our metadata to memberlist, keeps our own copy of
// its membership view, and turns its events into reconcile triggers.
//
// memberlist calls the event methods from its own goroutines while holding
// its node lock, so the *memberlist.Node they receive may be read there (and
// only there): we copy what we need. Reading memberlist.Members() instead
// would race with memberlist updating those nodes.
type gossipDelegate struct {
	meta    []byte
	trigger func()

	mu struct {
		sync.Mutex
		// live holds members memberlist considers alive or suspect.
		live map[metadata.NodeID]gossipMember
		// gone holds members memberlist reported dead or left, with the
		// incarnation they had; cleared when the member is seen alive.
		gone map[metadata.NodeID]gossipMember
	}
}

func newGossipDelegate(meta []byte, trigger func()) *gossipDelegate {
	d := &gossipDelegate{meta: meta, trigger: trigger}
	d.mu.live = make(map[metadata.NodeID]gossipMember)
	d.mu.gone = make(map[metadata.NodeID]gossipMember)
	return d
}

var (
	_ memberlist.Delegate      = (*gossipDelegate)(nil)
	_ memberlist.EventDelegate = (*gossipDelegate)(nil)
)

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// copyGossipNode copies what we need of n. memberlist does not keep
// n.State current (its own nodeState.State is), so the state is set by the
// event: alive for join/update, dead for leave (dead or left).
func copyGossipNode(n *memberlist.Node, state memberlist.NodeStateType) (gossipMember, bool) {
	meta, ok := decodeGossipMeta(n.Meta)
	return gossipMember{ID: metadata.NodeID(n.Name), GossipAddr: n.Address(), Meta: meta, State: state}, ok
}

func (d *gossipDelegate) NotifyJoin(n *memberlist.Node) { d.NotifyUpdate(n) }

func (d *gossipDelegate) NotifyUpdate(n *memberlist.Node) {
	g, ok := copyGossipNode(n, memberlist.StateAlive)
	d.mu.Lock()
	delete(d.mu.gone, g.ID)
	if ok {
		d.mu.live[g.ID] = g
	} else {
		delete(d.mu.live, g.ID) // not an olric-raft member (bad metadata)
	}
	d.mu.Unlock()
	d.trigger()
}

func (d *gossipDelegate) NotifyLeave(n *memberlist.Node) {
	g, _ := copyGossipNode(n, memberlist.StateDead)
	d.mu.Lock()
	delete(d.mu.live, g.ID)
	d.mu.gone[g.ID] = g
	d.mu.Unlock()
	d.trigger()
}

// members returns memberlist's live view (alive and suspect members with
// valid metadata), sorted by id.
func (d *gossipDelegate) members() []gossipMember {
	d.mu.Lock()
	out := make([]gossipMember, 0, len(d.mu.live))
	for _, g := range d.mu.live {
		out = append(out, g)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b gossipMember) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// gone returns the member memberlist last reported dead or left.
func (d *gossipDelegate) gone(id metadata.NodeID) (gossipMember, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.mu.gone[id]
	return g, ok
}

// gossipStateName names a memberlist state for status output.
func gossipStateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead, memberlist.StateLeft:
		return "gone"
	default:
		return "unknown"
	}
}
