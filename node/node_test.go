package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/olric-raft/olric-raft/metadata"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// raft-boltdb's metrics emitter and hclog's writers are not ours;
		// memberlist leaves no goroutine after Shutdown, Raft neither.
		goleak.IgnoreTopFunction("github.com/hashicorp/raft-boltdb/v2.(*BoltStore).runMetrics"),
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID = "bad id"
	cfg.DataDir = ""
	cfg.ClusterAddr = "nope"
	cfg.Bootstrap = true
	cfg.BootstrapExpect = 3
	cfg.RaftVoters = 4
	cfg.Replicas = 0
	cfg.Join = []string{"x"}
	cfg.Timing.RaftLeaderLeaseTimeout = 2 * cfg.Timing.RaftHeartbeatTimeout
	err := cfg.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"node_id", "data_dir", "cluster_addr", "join", "exclusive", "raft_voters", "replicas", "raft_leader_lease_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	good := DefaultConfig()
	good.NodeID, good.DataDir = "a", t.TempDir()
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with id and dir: %v", err)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(Config{}) = %v, want ErrInvalidConfig", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

func devConfig(t *testing.T, id metadata.NodeID) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = t.TempDir()
	cfg.ClusterAddr = freeAddr(t)
	cfg.GossipAddr = freeAddr(t)
	cfg.Bootstrap = true
	cfg.Timing = DevTiming()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

func waitReady(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.Ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSingleNodeLifecycle: a bootstrapped member becomes ready with an
// initialized table it fully owns; Close is idempotent and leaks nothing;
// restarted on the same data dir it comes back with a new incarnation and
// the table restored from its Raft log.
func TestSingleNodeLifecycle(t *testing.T) {
	cfg := devConfig(t, "solo")
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	tbl := n.Routing()
	if !tbl.Initialized() || len(tbl.AliveMembers()) != 1 {
		t.Fatalf("table: %+v", tbl)
	}
	if l := tbl.Loads()["solo"]; l.Primaries != metadata.DefaultPartitionCount {
		t.Fatalf("solo holds %d primaries", l.Primaries)
	}
	st := n.Status()
	if !st.Ready || st.RaftState != "Leader" || st.RoutingVersion != tbl.Version || st.Leader == nil || st.Leader.ID != "solo" {
		t.Fatalf("status: %+v", st)
	}
	if err := n.RemoveMember(context.Background(), "solo"); !errors.Is(err, ErrMemberAlive) {
		t.Fatalf("remove self: %v", err)
	}
	firstInc := n.Incarnation()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := n.Ready(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after close = %v", err)
	}

	n2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	waitReady(t, n2)
	if n2.Incarnation() == firstInc {
		t.Fatalf("restart kept incarnation %s", firstInc)
	}
	after := n2.Routing()
	m, _ := after.Member("solo")
	if m.Incarnation != n2.Incarnation() || after.Version <= tbl.Version {
		t.Fatalf("after restart: member %+v, version %d (before %d)", m, after.Version, tbl.Version)
	}
	// The only replica of every partition restarted empty: the data is
	// gone, so every partition is unavailable (not silently re-created).
	for _, p := range after.Partitions {
		if p.State != metadata.PartitionUnavailable || p.LeaderEpoch <= tbl.Partitions[p.ID].LeaderEpoch {
			t.Fatalf("partition %d after restart: %+v", p.ID, p)
		}
	}
	if st := n2.Status(); st.Unavailable != metadata.DefaultPartitionCount {
		t.Fatalf("status reports %d unavailable", st.Unavailable)
	}
	ctx := context.Background()
	if _, err := n2.ForceAssign(ctx, []uint32{999}, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("force-assign out of range: %v", err)
	}
	if _, err := n2.ForceAssign(ctx, []uint32{0}, "ghost"); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("force-assign to unknown member: %v", err)
	}
	res, err := n2.ForceAssign(ctx, []uint32{7}, "solo")
	if err != nil || len(res.Partitions) != 1 || res.Partitions[0] != 7 {
		t.Fatalf("force-assign 7: %+v %v", res, err)
	}
	if p, _ := n2.Routing().Partition(7); p.Primary != "solo" || p.State != metadata.PartitionActive {
		t.Fatalf("partition 7 after force-assign: %+v", p)
	}
	if _, err := n2.ForceAssign(ctx, []uint32{7}, ""); !errors.Is(err, ErrPartitionAvailable) {
		t.Fatalf("force-assign of an available partition: %v", err)
	}
	res, err = n2.ForceAssign(ctx, nil, "")
	if err != nil || len(res.Partitions) != metadata.DefaultPartitionCount-1 {
		t.Fatalf("force-assign all: %d partitions, %v", len(res.Partitions), err)
	}
	if st := n2.Status(); st.Unavailable != 0 || st.Primaries != metadata.DefaultPartitionCount {
		t.Fatalf("after force-assign all: %+v", st)
	}
}

func TestLeaveSingleNode(t *testing.T) {
	n, err := New(devConfig(t, "solo"))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	if err := n.Leave(context.Background()); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := n.Leave(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second leave: %v", err)
	}
	if _, err := n.Join(context.Background(), []string{"127.0.0.1:1"}); !errors.Is(err, ErrLeaving) {
		t.Fatalf("join after leave: %v", err)
	}
	_ = n.Close()
}

func TestJoinBadAddresses(t *testing.T) {
	n, err := New(devConfig(t, "solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Join(context.Background(), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("join nothing: %v", err)
	}
	if _, err := n.Join(context.Background(), []string{freeAddr(t)}); !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("join unreachable: %v", err)
	}
}
