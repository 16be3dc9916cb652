package resp

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

var dataplaneUnavailable = dataplane.ErrUnavailable

func newWriter(w io.Writer) *redcon.Writer { return redcon.NewWriter(w) }

// startRealNode starts a single-member node (bootstrap, dev timing) on
// free loopback ports and waits until it serves; it closes with tb.
func startRealNode(tb testing.TB, id string) *node.Node {
	tb.Helper()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	cfg := node.DefaultConfig()
	cfg.NodeID = metadata.NodeID(id)
	cfg.DataDir = tb.TempDir()
	cfg.ClusterAddr, cfg.GossipAddr = free(), free()
	cfg.Bootstrap = true
	cfg.Timing = node.DevTiming()
	cfg.Logger = quiet()
	n, err := node.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = n.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.Ready(ctx)
		cancel()
		if err == nil && n.DataPlaneReady() == nil {
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatal("not ready", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
