package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/transport"
)

// Lifecycle states of a Node, as reported by Status.State.
const (
	stateStarting int32 = iota
	stateRunning
	stateLeaving
	stateLeft
	stateClosed
)

var stateNames = [...]string{"starting", "running", "leaving", "left", "closed"}

// Node is one olric-raft member: a Raft server holding the routing-table FSM,
// a memberlist member, and (on the leader) the reconcile loop that turns
// membership into routing changes.
type Node struct {
	cfg         Config
	log         *slog.Logger
	incarnation string
	startedAt   time.Time
	advertise   string // cluster address others dial
	// gossipAdvertise is memberlist's advertised address, set once in open.
	gossipAdvertise string

	fsm       *fsm.FSM
	mux       *transport.Mux
	rpc       *transport.Client
	raft      *raft.Raft
	raftTrans *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	gossip    *memberlist.Memberlist
	delegate  *gossipDelegate
	gossipTr  memberlist.Transport
	// tls is the cluster port's TLS material (nil: plain TCP), set once in
	// open.
	tls *transport.TLSProvider

	// dmaps is the data plane, created by watchRouting once routing is
	// initialized; engine is its storage (closed by shutdown).
	dmaps  atomic.Pointer[dataplane.Service]
	engine *dataplane.Engine

	state atomic.Int32
	// kick wakes the leader's reconcile loop (capacity 1: one pending wake
	// is enough, since reconcile is level-triggered).
	kick chan struct{}
	// leaderReadyTerm is the term in which this node, as leader, completed
	// its first Barrier; 0 when not leader.
	leaderReadyTerm atomic.Uint64

	// leaseUntil is when this member's primary lease ends, in nanoseconds
	// of the monotonic clock since startedAt (lease.go); 0: none yet.
	leaseUntil atomic.Int64
	// stats are counters for metrics (metrics.go).
	stats nodeStats
	// leases is the leader's lease grants of the current term (lease.go).
	leases leaderLeases

	stop      chan struct{} // closed by Close: every goroutine below exits
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the Raft stores under cfg.DataDir, starts the
// cluster port, Raft and memberlist, and returns a running node. It does not
// wait for the cluster to form: use Ready.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	inc, err := newIncarnation()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("node", string(cfg.NodeID)),
		incarnation: inc,
		startedAt:   time.Now(),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	if err := n.open(); err != nil {
		n.shutdown()
		return nil, err
	}
	n.state.Store(stateRunning)
	n.log.Info("node started", "incarnation", inc, "cluster_addr", n.advertise,
		"gossip_addr", n.gossipAddr(), "bootstrap", cfg.Bootstrap, "bootstrap_expect", cfg.BootstrapExpect)
	return n, nil
}

func newIncarnation() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("node: incarnation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// open starts everything in dependency order: state is restored (Raft
// restores the latest snapshot inside NewRaft) before any handler can read
// it; RPC handlers and goroutines start after; memberlist last, so peers
// only see us once we can answer.
func (n *Node) open() error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return fmt.Errorf("node: open raft store: %w", err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newRaftLogger(n.log))
	if err != nil {
		return fmt.Errorf("node: open snapshot store: %w", err)
	}

	if cfg.TLS.Enabled() {
		if n.tls = cfg.TLS.Provider; n.tls == nil {
			if n.tls, err = transport.NewTLSProvider(cfg.TLS.Files()); err != nil {
				return fmt.Errorf("node: %w", err)
			}
		}
	}
	n.mux, err = transport.Listen(transport.Config{
		BindAddr: cfg.ClusterAddr,
		Faults:   cfg.Faults,
		Logger:   n.log,
		TLS:      n.tls,
	})
	if err != nil {
		return fmt.Errorf("node: cluster port: %w", err)
	}
	n.advertise = n.mux.Addr().String()
	n.rpc = transport.NewClient(n.mux, transport.ClientOptions{})

	n.raftTrans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.mux.RaftLayer(),
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newRaftLogger(n.log),
	})

	n.fsm = fsm.New(n.log)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Timing.RaftHeartbeatTimeout
	rc.ElectionTimeout = cfg.Timing.RaftElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Timing.RaftLeaderLeaseTimeout
	rc.CommitTimeout = cfg.Timing.RaftCommitTimeout
	rc.SnapshotThreshold = 1024
	rc.SnapshotInterval = 30 * time.Second
	rc.Logger = newRaftLogger(n.log)
	leaderNotify := make(chan bool, 16)
	rc.NotifyCh = leaderNotify

	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("node: read raft state: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, store, store, snaps, n.raftTrans)
	if err != nil {
		return fmt.Errorf("node: start raft: %w", err)
	}
	if cfg.Bootstrap && !hasState {
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(n.advertise),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("node: bootstrap: %w", err)
		}
	}

	n.mux.ServeRPC(transport.HandlerFunc(n.serveRPC))

	if err := n.openGossip(); err != nil {
		return err
	}

	n.wg.Add(1)
	go n.watchLeadership(leaderNotify)
	if len(cfg.Join) > 0 {
		n.wg.Add(1)
		go n.retryJoin(cfg.Join)
	}
	n.wg.Add(1)
	go n.reconnect()
	n.wg.Add(1)
	go n.watchRouting()
	n.wg.Add(1)
	go n.leaseLoop()
	if cfg.BootstrapExpect > 0 && !hasState {
		n.wg.Add(1)
		go n.bootstrapExpect()
	}
	return nil
}

func (n *Node) openGossip() error {
	cfg := n.cfg
	meta, err := msgpack.Marshal(gossipMeta{
		Version:         gossipMetaVersion,
		Incarnation:     n.incarnation,
		ClusterAddr:     n.advertise,
		HTTPAddr:        cfg.HTTPAddr,
		RESPAddr:        cfg.RESPAddr,
		BootstrapExpect: cfg.BootstrapExpect,
	})
	if err != nil {
		return fmt.Errorf("node: gossip meta: %w", err)
	}
	n.delegate = newGossipDelegate(meta, n.triggerReconcile)
	tr, err := transport.NewGossipTransport(cfg.GossipAddr, cfg.Faults, n.log)
	if err != nil {
		return fmt.Errorf("node: gossip port: %w", err)
	}
	n.gossipTr = tr
	host, portStr, _ := net.SplitHostPort(cfg.GossipAddr)
	port, _ := strconv.Atoi(portStr)
	mc := memberlist.DefaultLANConfig()
	mc.Name = string(cfg.NodeID)
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertiseAddr = ""
	mc.AdvertisePort = 0
	mc.Transport = tr
	mc.Delegate = n.delegate
	mc.Events = n.delegate
	mc.Logger = newStdLogger(n.log, "memberlist")
	mc.ProbeInterval = cfg.Timing.GossipProbeInterval
	mc.ProbeTimeout = cfg.Timing.GossipProbeTimeout
	mc.GossipInterval = cfg.Timing.GossipInterval
	mc.SuspicionMult = cfg.Timing.GossipSuspicionMult
	mc.PushPullInterval = 10 * cfg.Timing.GossipProbeInterval
	if cfg.Timing.GossipProbeInterval < time.Second {
		mc.TCPTimeout = 2 * time.Second
		mc.IndirectChecks = 2
		mc.RetransmitMult = 2
		mc.GossipToTheDeadTime = 5 * cfg.Timing.GossipProbeInterval
	}
	if cfg.GossipKeyFile != "" {
		key, err := transport.LoadGossipKey(cfg.GossipKeyFile)
		if err != nil {
			_ = tr.Shutdown()
			n.gossipTr = nil
			return fmt.Errorf("node: %w", err)
		}
		mc.SecretKey = key
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		n.gossipTr = nil
		return fmt.Errorf("node: start memberlist: %w", err)
	}
	n.gossip = ml
	// Read once, right after Create: memberlist may update its local node
	// struct later under its own lock.
	ln := ml.LocalNode()
	n.gossipAdvertise = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	return nil
}

// ReloadTLS reads the cluster port's TLS files again: new connections use
// the new certificate, key and CA; established ones keep theirs. On failure
// the old material stays in use. Without TLS it does nothing.
func (n *Node) ReloadTLS() error {
	if n.tls == nil {
		return nil
	}
	return n.tls.Reload()
}

// gossipAddr is the address memberlist advertises.
func (n *Node) gossipAddr() string {
	if n.gossipAdvertise == "" {
		return n.cfg.GossipAddr
	}
	return n.gossipAdvertise
}

// retryJoin contacts the --join addresses until one answers or the node
// stops, so members may be started in any order.
func (n *Node) retryJoin(addrs []string) {
	defer n.wg.Done()
	wait := 100 * time.Millisecond
	for {
		if k, err := n.gossip.Join(addrs); err == nil && k > 0 {
			n.log.Info("joined gossip", "contacted", k)
			return
		} else if err != nil {
			n.log.Debug("join attempt failed", "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// reconnect periodically contacts members of the routing table that
// memberlist does not list as alive (Serf's reconnect): memberlist stops
// gossiping to members it declared dead, so without this the two sides of a
// healed partition would never find each other again. A member left alone
// also retries its --join addresses.
func (n *Node) reconnect() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Timing.GossipReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		live := make(map[metadata.NodeID]bool)
		for _, g := range n.gossipMembers() {
			live[g.ID] = true
		}
		var addrs []string
		for _, m := range n.fsm.Routing().Members {
			// Never a leaving member: it is on its way out, and contacting it
			// could make gossip see it alive again after it left.
			if m.ID != n.cfg.NodeID && !live[m.ID] && m.GossipAddr != "" && m.State != metadata.MemberLeaving {
				addrs = append(addrs, m.GossipAddr)
			}
		}
		if len(live) <= 1 {
			addrs = append(addrs, n.cfg.Join...)
		}
		for _, a := range addrs {
			if n.stopped() {
				return
			}
			if _, err := n.gossip.Join([]string{a}); err == nil {
				n.log.Info("reconnected to gossip member", "addr", a)
			}
		}
	}
}

// ID returns this member's node id.
func (n *Node) ID() metadata.NodeID { return n.cfg.NodeID }

// Incarnation returns the id of this process start.
func (n *Node) Incarnation() string { return n.incarnation }

// ClusterAddr returns the advertised cluster (Raft + RPC) address.
func (n *Node) ClusterAddr() string { return n.advertise }

// GossipAddr returns the advertised memberlist address.
func (n *Node) GossipAddr() string { return n.gossipAddr() }

// Routing returns the committed routing table; never nil; do not modify.
func (n *Node) Routing() *metadata.RoutingTable { return n.fsm.Routing() }

// WaitRouting waits until this node has applied Raft index version (so its
// routing version is at least version if version is a routing version).
func (n *Node) WaitRouting(ctx context.Context, version uint64) (*metadata.RoutingTable, error) {
	t, err := n.fsm.WaitApplied(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("%w: waiting for routing version %d: %w", ErrTimeout, version, err)
	}
	return t, nil
}

// Leader returns the current Raft leader as this node knows it.
func (n *Node) Leader() (LeaderInfo, bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return LeaderInfo{}, false
	}
	li := LeaderInfo{ID: metadata.NodeID(id), ClusterAddr: string(addr), Term: n.raft.CurrentTerm()}
	if m, ok := n.fsm.Routing().Member(li.ID); ok {
		li.HTTPAddr = m.HTTPAddr
	} else if g, ok := n.gossipMemberByID(li.ID); ok {
		li.HTTPAddr = g.Meta.HTTPAddr
	}
	return li, true
}

// IsLeader reports whether this node is the Raft leader and has committed
// its first Barrier of the term.
func (n *Node) IsLeader() bool {
	return n.raft.State() == raft.Leader && n.leaderReadyTerm.Load() == n.raft.CurrentTerm()
}

// gossipMembers returns memberlist's live view (alive and suspect members).
func (n *Node) gossipMembers() []gossipMember { return n.delegate.members() }

func (n *Node) gossipMemberByID(id metadata.NodeID) (gossipMember, bool) {
	for _, g := range n.gossipMembers() {
		if g.ID == id {
			return g, true
		}
	}
	return gossipMember{}, false
}

// raftServers returns the committed Raft configuration.
func (n *Node) raftServers() ([]raft.Server, uint64, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, 0, err
	}
	return f.Configuration().Servers, f.Index(), nil
}

// Members joins the routing table's members with memberlist's and Raft's
// views.
func (n *Node) Members() ([]MemberInfo, uint64) {
	t := n.fsm.Routing()
	loads := t.Loads()
	gossip := make(map[metadata.NodeID]gossipMember)
	for _, g := range n.gossipMembers() {
		gossip[g.ID] = g
	}
	suffrage := make(map[metadata.NodeID]string)
	if servers, _, err := n.raftServers(); err == nil {
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				suffrage[metadata.NodeID(s.ID)] = "voter"
			} else {
				suffrage[metadata.NodeID(s.ID)] = "nonvoter"
			}
		}
	}
	_, leaderID := n.raft.LeaderWithID()
	out := make([]MemberInfo, 0, len(t.Members))
	for _, m := range t.Members {
		mi := MemberInfo{Member: m, StateName: m.State.String(), Gossip: "unknown", RaftSuffrage: "none"}
		if g, ok := gossip[m.ID]; ok {
			mi.Gossip = gossipStateName(g.State)
			if g.Meta.Incarnation != m.Incarnation {
				mi.Gossip += " (new incarnation)"
			}
		} else if g, ok := n.delegate.gone(m.ID); ok {
			mi.Gossip = gossipStateName(g.State)
		}
		if s, ok := suffrage[m.ID]; ok {
			mi.RaftSuffrage = s
		}
		mi.Leader = string(leaderID) == string(m.ID)
		l := loads[m.ID]
		mi.Primaries, mi.Backups = l.Primaries, l.Backups
		out = append(out, mi)
	}
	return out, t.Version
}

// Status reports this node's view of itself and the cluster.
func (n *Node) Status() Status {
	t := n.fsm.Routing()
	st := Status{
		NodeID:         n.cfg.NodeID,
		Incarnation:    n.incarnation,
		State:          stateNames[n.state.Load()],
		RaftState:      n.raft.State().String(),
		Term:           n.raft.CurrentTerm(),
		LastLogIndex:   n.raft.LastIndex(),
		CommitIndex:    n.raft.CommitIndex(),
		AppliedIndex:   n.fsm.AppliedIndex(),
		RoutingVersion: t.Version,
		Members:        len(t.Members),
		Partitions:     len(t.Partitions),
		UptimeSeconds:  time.Since(n.startedAt).Seconds(),
	}
	if li, ok := n.Leader(); ok {
		st.Leader = &li
	}
	for _, m := range t.Members {
		if m.State == metadata.MemberAlive {
			st.AliveMembers++
		}
		if m.Voter {
			st.Voters++
		}
		if m.ID == n.cfg.NodeID {
			st.Voter = m.Voter
		}
	}
	for _, p := range t.Partitions {
		switch p.State {
		case metadata.PartitionUnavailable:
			st.Unavailable++
		case metadata.PartitionHandoff:
			st.Handoffs++
		}
		st.SyncingBackups += len(p.Syncing)
		if p.Primary == n.cfg.NodeID {
			st.Primaries++
		}
		for _, b := range p.Backups {
			if b == n.cfg.NodeID {
				st.Backups++
			}
		}
	}
	if n.gossip != nil {
		st.GossipMembers = n.gossip.NumMembers()
	}
	if svc := n.dmaps.Load(); svc != nil {
		st.HandoverPending = svc.PendingHandover()
	}
	st.Ready = n.readyLocal() == nil
	return st
}

// readyLocal checks what can be checked without asking the leader.
func (n *Node) readyLocal() error {
	switch n.state.Load() {
	case stateClosed, stateLeft:
		return ErrClosed
	case stateLeaving:
		return ErrLeaving
	}
	t := n.fsm.Routing()
	if !t.Initialized() {
		return fmt.Errorf("%w: routing table not initialized yet", ErrNotReady)
	}
	m, ok := t.Member(n.cfg.NodeID)
	if !ok || m.Incarnation != n.incarnation || m.State != metadata.MemberAlive {
		return fmt.Errorf("%w: this member (incarnation %s) is not yet an alive member of the routing table", ErrNotReady, n.incarnation)
	}
	if _, ok := n.Leader(); !ok {
		return ErrNoLeader
	}
	return nil
}

// Ready returns nil once this node is a live member of an initialized
// routing table and has applied every entry the leader had committed when
// Ready was called (rqlite's "readyz?sync"): a routing read here is then at
// least as new as the leader's at the time of the call.
func (n *Node) Ready(ctx context.Context) error {
	if err := n.readyLocal(); err != nil {
		return err
	}
	if n.raft.State() == raft.Leader {
		if !n.IsLeader() {
			return fmt.Errorf("%w: new leader has not committed its first barrier", ErrNotReady)
		}
		return nil
	}
	idx, err := n.leaderCommitIndex(ctx)
	if err != nil {
		return err
	}
	if err := n.waitAppliedThrough(ctx, idx); err != nil {
		return fmt.Errorf("%w: applied %d of leader's commit index %d: %w", ErrNotReady, n.raft.AppliedIndex(), idx, err)
	}
	return nil
}

// waitAppliedThrough waits until the FSM has applied every log entry up to
// and including index. Raft hands the FSM only command entries (no-ops,
// barriers and configuration changes never reach it), so it waits for Raft
// to have dispatched everything through index, then for the FSM to have
// applied the last command entry at or before index.
func (n *Node) waitAppliedThrough(ctx context.Context, index uint64) error {
	for n.raft.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop:
			return ErrClosed
		case <-time.After(2 * time.Millisecond):
		}
	}
	var l raft.Log
	for i := index; i > 0 && index-i < 4096; i-- {
		if err := n.store.GetLog(i, &l); err != nil {
			return nil // compacted into a snapshot the FSM restored
		}
		if l.Type == raft.LogCommand {
			_, err := n.fsm.WaitApplied(ctx, i)
			return err
		}
	}
	return nil
}

// Close stops the node at once, without leaving: other members see it fail.
// It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.state.Store(stateClosed)
		n.closeErr = n.shutdown()
		n.log.Info("node closed")
	})
	return n.closeErr
}

// shutdown stops in reverse dependency order: first our goroutines (they call
// Raft and memberlist), then memberlist (so peers stop routing to us), then
// Raft (flushes the log), then the cluster port Raft and RPC ran over, then
// the stores Raft wrote to.
func (n *Node) shutdown() error {
	var errs []error
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	if n.gossip != nil {
		if err := n.gossip.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	} else if n.gossipTr != nil {
		_ = n.gossipTr.Shutdown()
	}
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	n.wg.Wait()
	// The data plane after our goroutines (watchRouting owns it) and before
	// the RPC client its transfers use.
	n.closeDataPlane()
	if n.rpc != nil {
		_ = n.rpc.Close()
	}
	if n.raftTrans != nil {
		_ = n.raftTrans.Close()
	}
	if n.mux != nil {
		if err := n.mux.Close(); err != nil {
			errs = append(errs, err)
		}
		// A handler of Raft's transport may still be saving a term it
		// heard after Raft shut down (Raft panics if the store is gone):
		// the store outlives them. Closing the connections ended them.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.mux.WaitRaftConns(ctx); err != nil {
			n.log.Warn("closing the Raft store with Raft connections still open", "error", err)
		}
		cancel()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) stopped() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}
