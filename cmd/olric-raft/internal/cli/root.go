package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/node"
)

// Exit codes of the binary.
const (
	ExitOK    = 0 // success, including a graceful shutdown
	ExitError = 1 // the command failed (server error, unreachable member, ...)
	ExitUsage = 2 // bad command line, flags, environment or config file
)

// Node is what the server command needs of a node; *node.Node implements
// it (main asserts so).
type Node interface {
	httpapi.Cluster
	// Close stops the node at once (idempotent).
	Close() error
}

// Deps are the binary's connections to the outside world. Main fills in
// every nil field but NewNode with the process's own.
type Deps struct {
	// NewNode starts a node (node.New in main).
	NewNode func(node.Config) (Node, error)
	// Version is printed by the version command.
	Version string
	// Stdout receives command output; Stderr logs and errors.
	Stdout, Stderr io.Writer
	// LookupEnv reads the environment (os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Signals, if set, replaces SIGINT/SIGTERM delivery for the server
	// command (tests).
	Signals <-chan os.Signal
}

// Main runs the binary with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, d Deps) int {
	if d.Stdout == nil {
		d.Stdout = os.Stdout
	}
	if d.Stderr == nil {
		d.Stderr = os.Stderr
	}
	if d.LookupEnv == nil {
		d.LookupEnv = os.LookupEnv
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	root := newRootCmd(&d)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	return report(d.Stderr, cmd, err)
}

func newRootCmd(d *Deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "olric-raft",
		Short: "olric-raft: a distributed in-memory key/value store with a Raft-consistent routing table",
		Long: `olric-raft is a distributed in-memory key/value store with a Raft-consistent routing table.

Run a member with 'olric-raft server'; operate a cluster with the other
commands, which talk to a member's HTTP API (--address).

Every flag can also be set with an environment variable OLRIC_RAFT_<FLAG>
(upper case, dashes as underscores), e.g. OLRIC_RAFT_HTTP_ADDR.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noUnknownCommand,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	root.SuggestionsMinimumDistance = 2
	root.SetOut(d.Stdout)
	root.SetErr(d.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	addTokenFlag(root) // global --token of the client commands (auth.go)
	root.AddCommand(
		newServerCmd(d),
		newMembersCmd(d),
		newRoutingCmd(d),
		newStatusCmd(d),
		newJoinCmd(d),
		newLeaveCmd(d),
		newRemoveCmd(d),
		newPartitionCmd(d),
		newKVCmd(d),
		newBenchCmd(d),
		newTLSCmd(d),
		newVersionCmd(d),
	)
	return root
}

// noUnknownCommand is the Args of a command that only groups
// subcommands: without it, cobra answers an unknown subcommand with help
// and success; it is a usage error.
func noUnknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{err: errors.New(msg)}
}

// usageError is a mistake on the command line (or in the environment or
// config file): exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// args wraps a cobra argument check so that its errors are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err: err}
		}
		return nil
	}
}

// cliError is a failure explained for the operator: "error: code: message"
// and a hint of what to do next.
type cliError struct {
	Code, Message, Hint string
}

func (e *cliError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// report prints err for the operator and returns the exit code.
func report(w io.Writer, cmd *cobra.Command, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "error: %v\n", ue.err)
		if cmd != nil {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ExitUsage
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "error: %v\n", ce)
		if ce.Hint != "" {
			fmt.Fprintf(w, "hint: %s\n", ce.Hint)
		}
		return ExitError
	}
	fmt.Fprintf(w, "error: %v\n", err)
	return ExitError
}
