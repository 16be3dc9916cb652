// Command olric-raft is the single binary of olric-raft: the server
// ("olric-raft server") and the operator commands that talk to a member's
// HTTP API. The commands live in internal/cli; main only wires them to the
// node package.
package main

import (
	"context"
	"os"

	"github.com/olric-raft/olric-raft/cmd/olric-raft/internal/cli"
	"github.com/olric-raft/olric-raft/node"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// *node.Node is what the server command runs.
var _ cli.Node = (*node.Node)(nil)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Deps{
		NewNode: newNode,
		Version: version,
	}))
}

func newNode(cfg node.Config) (cli.Node, error) {
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	return n, nil
}
