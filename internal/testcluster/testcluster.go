// Package testcluster runs olric-raft members in-process, over real
// loopback sockets and a fault-injecting network, for tests.
//
// Typical use:
//
//	c := testcluster.New(t, 5, testcluster.Options{})
//	c.StartAll()                       // concurrently, --bootstrap-expect 5
//	tbl := c.WaitConverged(10 * time.Second)
//	c.Kill(c.Leader(t).Index)
//
// Every wait has a deadline and polls a condition; nothing sleeps and hopes.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
	"github.com/olric-raft/olric-raft/transport"
)

// Options shapes a test cluster.
type Options struct {
	// Replicas and PartitionCount of the cluster (defaults 2 and 271).
	Replicas       int
	PartitionCount uint32
	// RaftVoters (default 3).
	RaftVoters int
	// SeedBootstrap: member 0 bootstraps alone and the others join it,
	// instead of every member using --bootstrap-expect N.
	SeedBootstrap bool
	// LogLevel of member logs sent to t.Log (default warn).
	LogLevel slog.Level
	// Timing of every member (default node.DevTiming()).
	Timing *node.Timing
}

// Member is one member slot; Node is nil while it is stopped.
type Member struct {
	Index int
	Name  metadata.NodeID
	Dir   string
	Cfg   node.Config

	mu   sync.Mutex
	node *node.Node
}

// Node returns the running node, or nil.
func (m *Member) Node() *node.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// Cluster is a set of in-process members.
type Cluster struct {
	t       testing.TB
	Net     *transport.FaultNetwork
	Members []*Member
	opts    Options
	logw    *testWriter
}

// New prepares n members with free loopback ports; nothing starts yet.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = metadata.DefaultReplicas
	}
	if opts.PartitionCount == 0 {
		opts.PartitionCount = metadata.DefaultPartitionCount
	}
	if opts.RaftVoters == 0 {
		opts.RaftVoters = 3
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = slog.LevelWarn
		// OLRIC_RAFT_TEST_LOG=debug|info makes member logs verbose.
		_ = opts.LogLevel.UnmarshalText([]byte(os.Getenv("OLRIC_RAFT_TEST_LOG")))
	}
	c := &Cluster{t: t, Net: transport.NewFaultNetwork(), opts: opts, logw: &testWriter{t: t}}
	t.Cleanup(c.logw.stop) // registered first: runs after the members closed
	var gossipAddrs []string
	for i := range n {
		name := metadata.NodeID(fmt.Sprintf("m%d", i+1))
		clusterAddr := FreeAddr(t)
		gossipAddr := FreeAddr(t)
		gossipAddrs = append(gossipAddrs, gossipAddr)
		cfg := node.DefaultConfig()
		cfg.NodeID = name
		cfg.DataDir = t.TempDir()
		cfg.ClusterAddr = clusterAddr
		cfg.GossipAddr = gossipAddr
		cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(20000+i) // advertised only
		cfg.RESPAddr = "127.0.0.1:" + strconv.Itoa(21000+i)
		cfg.RaftVoters = opts.RaftVoters
		cfg.Replicas = opts.Replicas
		cfg.PartitionCount = opts.PartitionCount
		cfg.Timing = node.DevTiming()
		if opts.Timing != nil {
			cfg.Timing = *opts.Timing
		}
		cfg.Faults = c.Net
		cfg.Logger = slog.New(slog.NewTextHandler(c.logw, &slog.HandlerOptions{Level: opts.LogLevel}))
		c.Net.Register(string(name), clusterAddr, gossipAddr)
		c.Members = append(c.Members, &Member{Index: i, Name: name, Dir: cfg.DataDir, Cfg: cfg})
	}
	for i, m := range c.Members {
		switch {
		case opts.SeedBootstrap && i == 0:
			m.Cfg.Bootstrap = true
		case opts.SeedBootstrap:
			m.Cfg.Join = []string{gossipAddrs[0]}
		default:
			m.Cfg.BootstrapExpect = n
			for j, a := range gossipAddrs {
				if j != i {
					m.Cfg.Join = append(m.Cfg.Join, a)
				}
			}
		}
	}
	t.Cleanup(c.CloseAll)
	return c
}

// handedOut remembers every port FreeAddr returned in this process, so two
// members never get the same one even after the probe listener closed.
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: make(map[string]bool)}

// FreeAddr finds a loopback address whose port is free for both TCP and
// UDP (memberlist binds both on one port) and was not handed out before.
// Ports come from below Linux's ephemeral range (32768-60999 by default):
// a port the kernel picked for ":0" is also what it picks as the source
// port of outgoing connections, so another test process could take it
// between this probe and the member's bind (seen as "address already in
// use" when packages run in parallel).
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		addr := "127.0.0.1:" + strconv.Itoa(freePortLow+rand.IntN(freePortHigh-freePortLow))
		handedOut.Lock()
		dup := handedOut.ports[addr]
		handedOut.Unlock()
		if dup {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		handedOut.Lock()
		dup = handedOut.ports[addr]
		handedOut.ports[addr] = true
		handedOut.Unlock()
		if !dup {
			return addr
		}
	}
	t.Fatalf("no free port")
	return ""
}

// The ports FreeAddr picks from: above the ports tests advertise without
// binding (20000+, 21000+), below the ephemeral range.
const (
	freePortLow  = 22000
	freePortHigh = 32000
)

// StartAll starts every member concurrently and waits for all New calls.
func (c *Cluster) StartAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(c.Members))
	for i := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Fatalf("start %s: %v", c.Members[i].Name, err)
		}
	}
}

// Start starts (or restarts, with the same data dir and addresses, hence a
// new incarnation) member i.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.start(i); err != nil {
		c.t.Fatalf("start %s: %v", c.Members[i].Name, err)
	}
}

func (c *Cluster) start(i int) error {
	m := c.Members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node != nil {
		return fmt.Errorf("%s already running", m.Name)
	}
	var err error
	// A restarted member's ports may linger briefly in the kernel: retry.
	for attempt := 0; attempt < 50; attempt++ {
		var n *node.Node
		n, err = node.New(m.Cfg)
		if err == nil {
			m.node = n
			return nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Kill stops member i abruptly (no leave): the others see it fail.
func (c *Cluster) Kill(i int) {
	m := c.Members[i]
	m.mu.Lock()
	n := m.node
	m.node = nil
	m.mu.Unlock()
	if n != nil {
		_ = n.Close()
	}
}

// CloseAll stops every member.
func (c *Cluster) CloseAll() {
	var wg sync.WaitGroup
	for i := range c.Members {
		wg.Add(1)
		go func() { defer wg.Done(); c.Kill(i) }()
	}
	wg.Wait()
}

// Running returns the members that are running.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Node() != nil {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor polls cond until it returns nil or the timeout passes, then fails
// the test with cond's last error.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	if err := Poll(timeout, cond); err != nil {
		c.t.Fatalf("waiting %v for %s: %v", timeout, what, err)
	}
}

// Poll calls cond every few milliseconds until it returns nil or timeout.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader waits for one running member that is the ready Raft leader and
// that every other running member agrees on.
func (c *Cluster) Leader(timeout time.Duration) *Member {
	c.t.Helper()
	var leader *Member
	c.WaitFor(timeout, "a leader", func() error {
		leader = nil
		for _, m := range c.Running() {
			if m.Node().IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.Name, m.Name)
				}
				leader = m
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader")
		}
		for _, m := range c.Running() {
			li, ok := m.Node().Leader()
			if !ok || li.ID != leader.Name {
				return fmt.Errorf("%s thinks the leader is %q", m.Name, li.ID)
			}
		}
		return nil
	})
	return leader
}

// WaitConverged waits until every running member is ready and has the same
// routing version, in which exactly the running members are alive, the
// table validates, and the leader's reconcile loop has nothing left to do
// (balanced). It returns that table.
func (c *Cluster) WaitConverged(timeout time.Duration) *metadata.RoutingTable {
	c.t.Helper()
	var out *metadata.RoutingTable
	c.WaitFor(timeout, "routing to converge", func() error {
		t, err := c.converged()
		out = t
		return err
	})
	return out
}

func (c *Cluster) converged() (*metadata.RoutingTable, error) {
	running := c.Running()
	if len(running) == 0 {
		return nil, fmt.Errorf("no member running")
	}
	var first *metadata.RoutingTable
	for _, m := range running {
		n := m.Node()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.Ready(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s not ready: %w", m.Name, err)
		}
		t := n.Routing()
		if first == nil {
			first = t
		} else if t.Version != first.Version {
			return nil, fmt.Errorf("%s at version %d, %s at %d", running[0].Name, first.Version, m.Name, t.Version)
		}
	}
	if err := first.Validate(); err != nil {
		return nil, err
	}
	for _, m := range first.Members {
		if m.State == metadata.MemberLeaving {
			return nil, fmt.Errorf("routing v%d: %s is still leaving", first.Version, m.ID)
		}
	}
	alive := map[metadata.NodeID]bool{}
	for _, id := range first.AliveMembers() {
		alive[id] = true
	}
	for _, m := range running {
		if !alive[m.Name] {
			return nil, fmt.Errorf("%s is running but not alive in routing v%d", m.Name, first.Version)
		}
		mem, _ := first.Member(m.Name)
		if mem.Incarnation != m.Node().Incarnation() {
			return nil, fmt.Errorf("%s: routing has incarnation %s, running %s", m.Name, mem.Incarnation, m.Node().Incarnation())
		}
	}
	if len(alive) != len(running) {
		return nil, fmt.Errorf("routing v%d has %d alive members, %d running", first.Version, len(alive), len(running))
	}
	want, err := metadata.Place(first.Partitions, first.PartitionCount, first.Replicas, first.AliveMembers())
	if err != nil {
		return nil, err
	}
	for i := range want {
		if !want[i].Equal(first.Partitions[i]) {
			return nil, fmt.Errorf("routing v%d not balanced yet (partition %d: %+v, placement wants %+v)", first.Version, i, first.Partitions[i], want[i])
		}
	}
	return first, nil
}

// testWriter sends member logs to t.Log until the test ends.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
