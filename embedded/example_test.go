package embedded_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/olric-raft/olric-raft/embedded"
	"github.com/olric-raft/olric-raft/node"
)

// ExampleStart starts a single-member development cluster in a temporary
// directory, on free loopback ports, and puts and gets a key.
func ExampleStart() {
	dir, err := os.MkdirTemp("", "olric-raft-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := node.DefaultConfig()
	cfg.NodeID = "example"
	cfg.DataDir = dir
	cfg.Timing = node.DevTiming()
	cfg.Bootstrap = true
	cfg.ClusterAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)

	m, err := embedded.Start(cfg, embedded.WithReadyTimeout(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ctx := context.Background()
	users := m.DMap("users")
	if _, err := users.Put(ctx, "alice", []byte(`{"age":30}`)); err != nil {
		log.Fatal(err)
	}
	e, err := users.Get(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(e.Value))
	// Output: {"age":30}
}
