package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/transport"
)

// leaseCluster is a few in-process members over a FaultNetwork (a small
// internal/testcluster: that package imports node, so node's own tests
// cannot use it).
type leaseCluster struct {
	t     *testing.T
	net   *transport.FaultNetwork
	nodes []*Node
}

type leaseLogWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *leaseLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func startLeaseCluster(t *testing.T, size int) *leaseCluster {
	t.Helper()
	c := &leaseCluster{t: t, net: transport.NewFaultNetwork()}
	var logger *slog.Logger
	if lvl := os.Getenv("OLRIC_RAFT_TEST_LOG"); lvl != "" {
		var l slog.Level
		_ = l.UnmarshalText([]byte(lvl))
		w := &leaseLogWriter{t: t}
		t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
		logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
	} else {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seen := map[string]bool{}
	addr := func() string {
		for {
			a := freeAddr(t)
			if !seen[a] {
				seen[a] = true
				return a
			}
		}
	}
	cfgs := make([]Config, size)
	for i := range cfgs {
		cfg := devConfig(t, metadata.NodeID(fmt.Sprintf("m%d", i+1)))
		cfg.ClusterAddr, cfg.GossipAddr = addr(), addr()
		cfg.Bootstrap = false
		cfg.BootstrapExpect = size
		cfg.Faults = c.net
		cfg.Logger = logger
		c.net.Register(string(cfg.NodeID), cfg.ClusterAddr, cfg.GossipAddr)
		cfgs[i] = cfg
	}
	for i := range cfgs {
		for j := range cfgs {
			if i != j {
				cfgs[i].Join = append(cfgs[i].Join, cfgs[j].GossipAddr)
			}
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Add(1)
			go func() { defer wg.Done(); _ = n.Close() }()
		}
		wg.Wait()
	})
	for _, cfg := range cfgs {
		n, err := New(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		c.nodes = append(c.nodes, n)
	}
	return c
}

// waitFor polls cond until it returns nil or timeout passes.
func (c *leaseCluster) waitFor(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// converged waits until every member is ready at one routing version with
// every member alive, and returns the leader.
func (c *leaseCluster) converged(timeout time.Duration) *Node {
	c.t.Helper()
	var leader *Node
	c.waitFor(timeout, "the cluster to converge", func() error {
		leader = nil
		var version uint64
		for i, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := n.Ready(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", n.ID(), err)
			}
			tbl := n.Routing()
			if i == 0 {
				version = tbl.Version
			} else if tbl.Version != version {
				return fmt.Errorf("%s at routing v%d, not v%d", n.ID(), tbl.Version, version)
			}
			if len(tbl.AliveMembers()) != len(c.nodes) {
				return fmt.Errorf("routing v%d has %d alive members", tbl.Version, len(tbl.AliveMembers()))
			}
			if n.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no ready leader")
		}
		return nil
	})
	return leader
}

func memberState(n *Node, id metadata.NodeID) metadata.MemberState {
	m, ok := n.Routing().Member(id)
	if !ok {
		return 0 // not in the table
	}
	return m.State
}

func TestLeaseTimingValidate(t *testing.T) {
	for _, tm := range []Timing{LANTiming(), DevTiming()} {
		if tm.LeaseRenewInterval <= 0 || tm.LeaseRenewInterval >= tm.LeaseDuration/2 {
			t.Fatalf("profile %+v: bad lease timing", tm)
		}
		if want := tm.LeaseDuration/10 + 50*time.Millisecond; tm.LeaseDriftMargin() != want {
			t.Fatalf("drift margin %v, want %v", tm.LeaseDriftMargin(), want)
		}
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir = "a", t.TempDir()
	cfg.Timing.LeaseRenewInterval = cfg.Timing.LeaseDuration / 2
	err := cfg.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "lease_renew_interval") || !strings.Contains(err.Error(), "lease_duration") {
		t.Fatalf("renew interval of half the lease: %v", err)
	}
	cfg.Timing.LeaseRenewInterval = 0
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero renew interval: %v", err)
	}
}

// TestLeaseHeldAfterStart: every member of a 3-member cluster, the leader
// included, holds a lease shortly after start; the leader refuses a stale
// incarnation, grants an unknown member, and a follower refuses to grant.
func TestLeaseHeldAfterStart(t *testing.T) {
	c := startLeaseCluster(t, 3)
	leader := c.converged(20 * time.Second)
	c.waitFor(10*time.Second, "every member to hold a lease", func() error {
		for _, n := range c.nodes {
			if !n.LeaseValid() {
				return fmt.Errorf("%s holds no lease", n.ID())
			}
		}
		return nil
	})
	if rem := leader.LeaseRemaining(); rem > leader.cfg.Timing.LeaseDuration {
		t.Fatalf("lease remaining %v exceeds the lease duration", rem)
	}
	var follower *Node
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}
	resp, err := leader.leaderGrantLease(leaseRequest{ID: follower.ID(), Incarnation: "stale"})
	if err != nil || resp.Granted || !strings.Contains(resp.Reason, "incarnation") {
		t.Fatalf("grant to a stale incarnation: %+v, %v", resp, err)
	}
	resp, err = leader.leaderGrantLease(leaseRequest{ID: "newcomer", Incarnation: "x"})
	if err != nil || !resp.Granted || resp.Index == 0 {
		t.Fatalf("grant to an unknown member: %+v, %v", resp, err)
	}
	if _, err := follower.leaderGrantLease(leaseRequest{ID: follower.ID(), Incarnation: follower.Incarnation()}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("grant by a follower: %v", err)
	}
	// Over the wire: a follower asked directly answers not_leader.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = leader.rpc.Call(ctx, follower.ClusterAddr(), methodLease, &leaseRequest{ID: leader.ID(), Incarnation: leader.Incarnation()}, &leaseResponse{})
	if !errors.Is(fromRemote(err), ErrNotLeader) {
		t.Fatalf("lease RPC to a follower: %v", err)
	}
}

// TestLeaseIsolatedMemberFailover isolates a non-leader member: its lease
// lapses, the leader marks it failed only after its lease surely expired
// (and by then the member itself no longer holds it), and after Heal it
// rejoins and holds a lease again.
func TestLeaseIsolatedMemberFailover(t *testing.T) {
	c := startLeaseCluster(t, 3)
	leader := c.converged(20 * time.Second)
	tm := leader.cfg.Timing
	var victim *Node
	for _, n := range c.nodes {
		if n != leader {
			victim = n
			break
		}
	}
	c.waitFor(10*time.Second, "the victim to hold a lease", func() error {
		if !victim.LeaseValid() {
			return errors.New("no lease")
		}
		return nil
	})
	// Isolate right after a renewal, so "since isolation" is close to
	// "since the last grant".
	before := victim.leaseUntil.Load()
	c.waitFor(5*time.Second, "a lease renewal", func() error {
		if victim.leaseUntil.Load() == before {
			return errors.New("not renewed yet")
		}
		return nil
	})
	c.net.Isolate(string(victim.ID()))
	isolatedAt := time.Now()
	term := leader.raft.CurrentTerm()

	c.waitFor(5*time.Second, "the isolated member's lease to lapse", func() error {
		if victim.LeaseValid() {
			return fmt.Errorf("still valid for %v", victim.LeaseRemaining())
		}
		return nil
	})
	var failedAt time.Time
	c.waitFor(10*time.Second, "the leader to mark the isolated member failed", func() error {
		if memberState(leader, victim.ID()) != metadata.MemberFailed {
			return fmt.Errorf("%s is %v", victim.ID(), memberState(leader, victim.ID()))
		}
		failedAt = time.Now()
		return nil
	})
	if victim.LeaseValid() {
		t.Fatalf("leader failed %s over while it still holds its lease (%v left)", victim.ID(), victim.LeaseRemaining())
	}
	if d := failedAt.Sub(isolatedAt); d < tm.LeaseDuration {
		t.Fatalf("failed over %v after isolation, before the lease duration %v", d, tm.LeaseDuration)
	}
	if leader.IsLeader() && leader.raft.CurrentTerm() == term {
		last := leader.leases.last(victim.ID())
		if d := failedAt.Sub(last); d <= tm.LeaseDuration+tm.LeaseDriftMargin() {
			t.Fatalf("failed over %v after the last grant, want > %v", d, tm.LeaseDuration+tm.LeaseDriftMargin())
		}
	}
	t.Logf("failed over %v after isolation", failedAt.Sub(isolatedAt))

	c.net.Heal()
	c.waitFor(20*time.Second, "the healed member to rejoin with a lease", func() error {
		var ld *Node
		for _, n := range c.nodes {
			if n.IsLeader() {
				ld = n
			}
		}
		if ld == nil {
			return errors.New("no leader")
		}
		m, ok := ld.Routing().Member(victim.ID())
		if !ok || m.State != metadata.MemberAlive || m.Incarnation != victim.Incarnation() {
			return fmt.Errorf("%s in the leader's table: %+v", victim.ID(), m)
		}
		if !victim.LeaseValid() {
			return errors.New("no lease yet")
		}
		return nil
	})
}
