// Command olric-raft is the single binary of olric-raft: the server
// ("olric-raft server") and the operator commands that talk to a member's
// HTTP API. The commands live in internal/cli; main only wires them to the
// node package.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/olric-raft/olric-raft/cmd/olric-raft/internal/cli"
	"github.com/olric-raft/olric-raft/node"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// *node.Node is what the server command runs.
var _ cli.Node = (*node.Node)(nil)

func main() {
	os.Exit(run())
}

// run is main without os.Exit, so that deferred calls run.
//
// OLRIC_RAFT_CPUPROFILE=FILE writes a CPU profile of the whole process
// (go tool pprof FILE) from start to exit, for profiling a server under a
// real client (scripts/bench-compare.sh, redis-benchmark).
// OLRIC_RAFT_MEMPROFILE=FILE writes, at exit, a heap profile that also
// holds every allocation made since start (go tool pprof -sample_index
// alloc_space FILE), to find what allocates on a hot path.
func run() int {
	if path := os.Getenv("OLRIC_RAFT_MEMPROFILE"); path != "" {
		defer func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintf(os.Stderr, "OLRIC_RAFT_MEMPROFILE: %v\n", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(os.Stderr, "OLRIC_RAFT_MEMPROFILE: %v\n", err)
			}
		}()
	}
	if path := os.Getenv("OLRIC_RAFT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "OLRIC_RAFT_CPUPROFILE: %v\n", err)
			return cli.ExitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "OLRIC_RAFT_CPUPROFILE: %v\n", err)
			return cli.ExitUsage
		}
		defer pprof.StopCPUProfile()
	}
	return cli.Main(context.Background(), os.Args[1:], cli.Deps{
		NewNode: newNode,
		Version: version,
	})
}

func newNode(cfg node.Config) (cli.Node, error) {
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	return n, nil
}
