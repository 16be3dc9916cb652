package transport

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// FaultNetwork is a Faults for tests: it maps addresses to node names
// (Register) and cuts, delays or thins out traffic between nodes. It is safe
// for concurrent use. Give the same FaultNetwork to every node's Mux
// (Config.Faults) and gossip transport.
//
// Rules, in the order Link applies them:
//
//  1. An address nobody registered is always delivered, without delay.
//     Traffic of a node to itself too.
//  2. A link is down when either end is isolated (Isolate), when a
//     partition is in force and the two nodes are not in the same group
//     (Partition), or when the directed pair was cut (Cut, CutOneWay).
//  3. A link that is up gets the delay of the most specific SetDelay rule:
//     (from, to), then (from, any), then (any, to), then (any, any).
//  4. PacketLink (datagrams only) then drops the packet with the
//     probability of the most specific SetDrop rule, in the same order.
//
// A stream needs both directions: a conn dialed through a Mux or gossip
// transport using this network breaks (is closed) as soon as either
// direction between its two nodes goes down, and new dials between them
// fail at once with ErrUnreachable.
type FaultNetwork struct {
	mu struct {
		sync.RWMutex
		nodeOf   map[string]string          // normalized address -> node; guarded by mu
		isolated map[string]bool            // guarded by mu
		groups   map[string]int             // node -> partition group; nil = no partition; guarded by mu
		cut      map[nodePair]bool          // directed cuts; guarded by mu
		delay    map[nodePair]time.Duration // "" = any; guarded by mu
		drop     map[nodePair]float64       // "" = any; guarded by mu
		conns    map[*faultConn]struct{}    // open streams dialed through this network; guarded by mu
	}
}

type nodePair struct{ from, to string }

var (
	_ Faults       = (*FaultNetwork)(nil)
	_ PacketFaults = (*FaultNetwork)(nil)
	_ connTracker  = (*FaultNetwork)(nil)
)

// NewFaultNetwork returns a network that delivers everything.
func NewFaultNetwork() *FaultNetwork {
	n := &FaultNetwork{}
	n.mu.nodeOf = make(map[string]string)
	n.mu.isolated = make(map[string]bool)
	n.mu.cut = make(map[nodePair]bool)
	n.mu.delay = make(map[nodePair]time.Duration)
	n.mu.drop = make(map[nodePair]float64)
	n.mu.conns = make(map[*faultConn]struct{})
	return n
}

// normalizeAddr spells IP:port addresses one way ("[::ffff:1.2.3.4]:5" and
// "1.2.3.4:5" match); anything else is kept as given.
func normalizeAddr(a string) string {
	if ap, err := netip.ParseAddrPort(a); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return a
}

// Register names the node listening on addrs (its cluster address, its
// gossip address, ...). Registering an address again moves it to node.
func (n *FaultNetwork) Register(node string, addrs ...string) {
	n.update(func() {
		for _, a := range addrs {
			n.mu.nodeOf[normalizeAddr(a)] = node
		}
	})
}

// Partition splits the registered nodes into groups: nodes in different
// groups cannot talk, in either direction. A registered node named in no
// group is isolated from every other node (so a forgotten node cannot
// bridge two sides); a node named twice belongs to the last group naming
// it. Partition replaces any earlier partition and adds to the cuts and
// isolations in force. Heal undoes it.
func (n *FaultNetwork) Partition(groups ...[]string) {
	n.update(func() {
		n.mu.groups = make(map[string]int)
		for i, g := range groups {
			for _, node := range g {
				n.mu.groups[node] = i
			}
		}
	})
}

// Cut stops traffic between a and b in both directions.
func (n *FaultNetwork) Cut(a, b string) {
	n.update(func() {
		n.mu.cut[nodePair{a, b}] = true
		n.mu.cut[nodePair{b, a}] = true
	})
}

// CutOneWay stops traffic from one node to another. Datagrams the other way
// still arrive; streams between the two break, as they need both ways.
func (n *FaultNetwork) CutOneWay(from, to string) {
	n.update(func() { n.mu.cut[nodePair{from, to}] = true })
}

// Isolate cuts node off from every other node, both directions, including
// nodes registered later.
func (n *FaultNetwork) Isolate(node string) {
	n.update(func() { n.mu.isolated[node] = true })
}

// Heal restores the network fully: no partition, cuts, isolation, delays
// or drops. Registrations stay.
func (n *FaultNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.groups = nil
	clear(n.mu.isolated)
	clear(n.mu.cut)
	clear(n.mu.delay)
	clear(n.mu.drop)
}

// SetDelay delays traffic from one node to another by d (each write of a
// stream, each packet); "" for either node means any node. d <= 0 removes
// the rule.
func (n *FaultNetwork) SetDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.mu.delay, nodePair{from, to})
		return
	}
	n.mu.delay[nodePair{from, to}] = d
}

// SetDrop drops packets (datagrams only: streams are delivered whole or
// broken) from one node to another with the given probability, clamped to
// [0, 1]; "" for either node means any node. A probability <= 0 removes the
// rule.
func (n *FaultNetwork) SetDrop(from, to string, probability float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if probability <= 0 {
		delete(n.mu.drop, nodePair{from, to})
		return
	}
	n.mu.drop[nodePair{from, to}] = min(probability, 1)
}

// Link implements Faults for the members listening on fromAddr and toAddr.
func (n *FaultNetwork) Link(fromAddr, toAddr string) (bool, time.Duration) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	from, to, known := n.nodesLocked(fromAddr, toAddr)
	if !known {
		return true, 0
	}
	if !n.upLocked(from, to) {
		return false, 0
	}
	d, _ := lookupRule(n.mu.delay, from, to)
	return true, d
}

// PacketLink implements PacketFaults: Link, then the SetDrop rules.
func (n *FaultNetwork) PacketLink(fromAddr, toAddr string) (bool, time.Duration) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	from, to, known := n.nodesLocked(fromAddr, toAddr)
	if !known {
		return true, 0
	}
	if !n.upLocked(from, to) {
		return false, 0
	}
	if p, ok := lookupRule(n.mu.drop, from, to); ok && rand.Float64() < p {
		return false, 0
	}
	d, _ := lookupRule(n.mu.delay, from, to)
	return true, d
}

// nodesLocked maps both addresses to nodes; known is false when either is
// unregistered or both are the same node.
func (n *FaultNetwork) nodesLocked(fromAddr, toAddr string) (from, to string, known bool) {
	from, okf := n.mu.nodeOf[normalizeAddr(fromAddr)]
	to, okt := n.mu.nodeOf[normalizeAddr(toAddr)]
	return from, to, okf && okt && from != to
}

// upLocked applies rule 2 to two distinct registered nodes.
func (n *FaultNetwork) upLocked(from, to string) bool {
	if n.mu.isolated[from] || n.mu.isolated[to] {
		return false
	}
	if n.mu.groups != nil {
		gf, okf := n.mu.groups[from]
		gt, okt := n.mu.groups[to]
		if !okf || !okt || gf != gt {
			return false
		}
	}
	return !n.mu.cut[nodePair{from, to}]
}

// streamUpLocked reports whether a stream between the members listening
// on a and b may live: both directions up.
func (n *FaultNetwork) streamUpLocked(a, b string) bool {
	from, to, known := n.nodesLocked(a, b)
	return !known || (n.upLocked(from, to) && n.upLocked(to, from))
}

func lookupRule[V any](rules map[nodePair]V, from, to string) (V, bool) {
	for _, k := range [...]nodePair{{from, to}, {from, ""}, {"", to}, {"", ""}} {
		if v, ok := rules[k]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// update applies a change that may take links down, then closes the
// tracked streams whose link is no longer up (outside the lock: closing
// calls back into untrack).
func (n *FaultNetwork) update(change func()) {
	n.mu.Lock()
	change()
	var broken []*faultConn
	for c := range n.mu.conns {
		if !n.streamUpLocked(c.local, c.remote) {
			broken = append(broken, c)
		}
	}
	n.mu.Unlock()
	for _, c := range broken {
		_ = c.Close()
	}
}

// track implements connTracker.
func (n *FaultNetwork) track(c *faultConn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.streamUpLocked(c.local, c.remote) {
		return false
	}
	n.mu.conns[c] = struct{}{}
	return true
}

// untrack implements connTracker.
func (n *FaultNetwork) untrack(c *faultConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.mu.conns, c)
}

// OpenStreams returns how many streams dialed through this network are
// open, for tests checking that cuts break them.
func (n *FaultNetwork) OpenStreams() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.mu.conns)
}
