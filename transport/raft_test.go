package transport

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM counts applied entries.
type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type countSnapshot struct{}

func (countSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (countSnapshot) Release()                             {}

type raftNode struct {
	id    string
	mux   *Mux
	trans *raft.NetworkTransport
	raft  *raft.Raft
	fsm   *countFSM
}

// raftCluster starts n raft servers over Muxes sharing a FaultNetwork, each
// registered under its server ID, and bootstraps them together.
func raftCluster(t *testing.T, n int) (*FaultNetwork, []*raftNode) {
	t.Helper()
	net := NewFaultNetwork()
	logOut := newTestWriter(t)
	nodes := make([]*raftNode, n)
	var servers []raft.Server
	for i := range nodes {
		id := fmt.Sprintf("n%d", i)
		mux := newMux(t, Config{Faults: net, Logger: testLogger(t, slog.LevelError)})
		net.Register(id, mux.Addr().String())
		nodes[i] = &raftNode{id: id, mux: mux, fsm: &countFSM{}}
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(mux.Addr().String())})
	}
	for _, nd := range nodes {
		logger := hclog.New(&hclog.LoggerOptions{Name: nd.id, Output: logOut, Level: hclog.Error})
		nd.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  nd.mux.RaftLayer(),
			MaxPool: 3,
			Timeout: time.Second,
			Logger:  logger,
		})
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(nd.id)
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = logger
		r, err := raft.NewRaft(conf, nd.fsm, raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore(), nd.trans)
		if err != nil {
			t.Fatalf("NewRaft %s: %v", nd.id, err)
		}
		nd.raft = r
		// Shut raft down before its transport and Mux (cleanups run in
		// reverse): raft stops using the transport, the transport stops
		// accepting, the Mux closes the remaining conns.
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("raft shutdown %s: %v", nd.id, err)
			}
			_ = nd.trans.Close()
		})
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("bootstrap %s: %v", nd.id, err)
		}
	}
	return net, nodes
}

// leaders returns the nodes among ns that believe they lead.
func leaders(ns []*raftNode) []*raftNode {
	var out []*raftNode
	for _, nd := range ns {
		if nd.raft.State() == raft.Leader {
			out = append(out, nd)
		}
	}
	return out
}

// settledLeader reports the one leader all of ns follow, if there is one.
func settledLeader(ns []*raftNode) *raftNode {
	ls := leaders(ns)
	if len(ls) != 1 {
		return nil
	}
	_, id := ls[0].raft.LeaderWithID()
	for _, nd := range ns {
		if _, got := nd.raft.LeaderWithID(); got != id || id != raft.ServerID(ls[0].id) {
			return nil
		}
	}
	return ls[0]
}

func apply(t *testing.T, nd *raftNode) {
	t.Helper()
	if err := nd.raft.Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply on %s: %v", nd.id, err)
	}
}

func TestRaftOverMuxPartitionLeader(t *testing.T) {
	net, nodes := raftCluster(t, 3)

	var leader *raftNode
	waitFor(t, 15*time.Second, "a leader all three follow", func() bool {
		leader = settledLeader(nodes)
		return leader != nil
	})
	apply(t, leader)

	var others []*raftNode
	var otherIDs []string
	for _, nd := range nodes {
		if nd != leader {
			others = append(others, nd)
			otherIDs = append(otherIDs, nd.id)
		}
	}
	net.Partition([]string{leader.id}, otherIDs)

	var newLeader *raftNode
	waitFor(t, 15*time.Second, "a new leader among the majority", func() bool {
		newLeader = settledLeader(others)
		return newLeader != nil
	})
	apply(t, newLeader) // commits with two of three
	waitFor(t, 15*time.Second, "the old leader to step down", func() bool {
		return leader.raft.State() != raft.Leader
	})

	net.Heal()
	var final *raftNode
	waitFor(t, 15*time.Second, "one leader after heal", func() bool {
		final = settledLeader(nodes)
		return final != nil
	})
	apply(t, final)
	want := final.fsm.count()
	waitFor(t, 15*time.Second, "every FSM to apply every entry", func() bool {
		for _, nd := range nodes {
			if nd.fsm.count() != want {
				return false
			}
		}
		return true
	})
}
