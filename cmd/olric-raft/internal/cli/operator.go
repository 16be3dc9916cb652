package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/client"
)

// Defaults of the operator commands.
const (
	defaultAddress = "http://127.0.0.1:3380"
	// defaultTimeout is above the server's budget for a graceful leave
	// (30s), so that leave's answer arrives.
	defaultTimeout = time.Minute
)

// opFlags are the flags every operator command has.
type opFlags struct {
	address string
	output  string
	timeout time.Duration
}

// operator is one operator command being run.
type operator struct {
	opFlags
	d   *Deps
	cmd *cobra.Command
	c   *client.Client
	// hints, set by a command, replace hint's advice for some error codes.
	hints map[string]string
	// tls are the --tls-* flags (https members).
	tls *clientTLSFlags
}

// newOperatorCmd builds an operator command: run gets a connected client
// once the common flags are resolved and checked.
func newOperatorCmd(d *Deps, cmd *cobra.Command, run func(o *operator, args []string) error) *cobra.Command {
	o := &operator{d: d, cmd: cmd}
	fs := cmd.Flags()
	fs.StringVar(&o.address, "address", defaultAddress, "HTTP API address of a member (env "+envName("address")+")")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table or json (env "+envName("output")+")")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "bound on the request (env "+envName("timeout")+")")
	o.tls = addClientTLSFlags(fs)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if err := o.prepare(); err != nil {
			return err
		}
		return run(o, args)
	}
	return cmd
}

// prepare resolves the common flags (flag > env > default) and makes the
// client. Its errors are usage errors.
func (o *operator) prepare() error {
	var problems []string
	for _, err := range applyEnv(o.cmd.Flags(), o.d.LookupEnv, "address", "output", "timeout") {
		problems = append(problems, err.Error())
	}
	if o.output != "table" && o.output != "json" {
		problems = append(problems, fmt.Sprintf("--output %q must be table or json", o.output))
	}
	if o.timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout %s must be positive", o.timeout))
	}
	tlsCfg, tlsProblems := o.tls.config(o.d.LookupEnv)
	problems = append(problems, tlsProblems...)
	c, err := client.New(o.address, client.WithTimeout(o.timeout), client.WithTLS(tlsCfg),
		client.WithToken(clientToken(o.cmd, o.d.LookupEnv))) // global --token (auth.go)
	if err != nil {
		problems = append(problems, fmt.Sprintf("--address: %v", err))
	}
	if len(problems) > 0 {
		return &usageError{err: errors.New(strings.Join(problems, "; "))}
	}
	o.c = c
	return nil
}

func (o *operator) ctx() context.Context { return o.cmd.Context() }

// explain turns a client error into a cliError with a hint.
func (o *operator) explain(err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		h, ok := o.hints[ae.Code]
		if !ok {
			h = hint(ae.Code, o.cmd.Name())
		}
		return &cliError{Code: ae.Code, Message: ae.Message, Hint: h}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &cliError{Code: "timeout", Message: fmt.Sprintf("no answer from %s within %s", o.c.Address(), o.timeout),
			Hint: "the member may be overloaded or cut off: check its logs, or raise --timeout; a join, leave, remove or force-assign may still take effect"}
	}
	if errors.Is(err, client.ErrUnexpectedResponse) {
		return &cliError{Code: "bad_response", Message: err.Error(),
			Hint: "the answer did not come from an olric-raft member of this version; check --address"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &cliError{Code: "unreachable", Message: fmt.Sprintf("cannot reach %s: %v", o.c.Address(), ue.Err),
			Hint: "is olric-raft running there? set --address or " + envName("address")}
	}
	return err
}

// hint says what to do next after an error code of the API.
func hint(code, cmd string) string {
	switch code {
	case client.CodeNoLeader:
		return "the cluster has no leader; check that a majority of voters is up ('olric-raft members' shows who is a voter)"
	case client.CodeNotReady:
		return "the member is still catching up with the leader, or the cluster is not bootstrapped yet; retry shortly"
	case client.CodeNotLeader:
		return "the member could not reach the leader; retry, or run the command against the leader (see 'olric-raft status')"
	case client.CodeTimeout:
		return "the operation timed out and may still take effect; check 'olric-raft members' before retrying"
	case client.CodeLeaving:
		return "this member is leaving the cluster; use the --address of another member"
	case client.CodeClosed:
		return "this member has shut down; use the --address of another member"
	case client.CodeUnavailable:
		return "the routing table is not initialized yet; wait until the cluster has bootstrapped (--bootstrap or --bootstrap-expect)"
	case client.CodeJoinFailed:
		return "none of the addresses answered; give the gossip addresses (--gossip-addr) of running members"
	case client.CodeMemberAlive:
		return "the member is alive: run 'olric-raft leave' against it (or stop it) instead of remove"
	case client.CodeQuorumAtRisk:
		return "another Raft voter is down: leaving now would leave the cluster without a quorum; bring that member back (or 'olric-raft remove' it if it is gone for good), then retry"
	case client.CodeNotFound:
		switch cmd {
		case "remove":
			return "no such member; list them with 'olric-raft members'"
		case "routing":
			return "no such partition; partitions are numbered from 0 to the partition count - 1 (see 'olric-raft routing')"
		}
		return "the member does not know this request; check --address and that it runs the same olric-raft version"
	case client.CodeBadRequest:
		return "check the command's arguments (see --help)"
	case client.CodeTooLarge:
		return "the request is too large; send fewer addresses at a time"
	case client.CodeMethodNotAllowed:
		return "the member does not support this request; check that it runs the same olric-raft version"
	case client.CodeInternal:
		return "this is a bug in olric-raft; please report it with the member's logs"
	case client.CodeUnauthorized, client.CodeForbidden:
		return authHint(code)
	case client.CodeHTTP:
		return "the answer did not come from olric-raft (a proxy or another service?); check --address"
	}
	return ""
}

func newMembersCmd(d *Deps) *cobra.Command {
	return newOperatorCmd(d, &cobra.Command{
		Use:   "members",
		Short: "List the members of the cluster",
		Args:  args(cobra.NoArgs),
	}, func(o *operator, _ []string) error {
		ms, err := o.c.Members(o.ctx())
		if err != nil {
			return o.explain(err)
		}
		return o.print(ms, func(w *tabw) { printMembers(w, ms) })
	})
}

func newRoutingCmd(d *Deps) *cobra.Command {
	var partition uint32
	var watch bool
	cmd := &cobra.Command{
		Use:   "routing [--partition N] [--watch]",
		Short: "Show the committed routing table (or one partition); --watch follows rebalancing",
		Args:  args(cobra.NoArgs),
	}
	cmd = newOperatorCmd(d, cmd, func(o *operator, _ []string) error {
		if watch {
			return watchRouting(o)
		}
		var rt *client.Routing
		var err error
		one := o.cmd.Flags().Changed("partition")
		if one {
			rt, err = o.c.Partition(o.ctx(), partition)
		} else {
			rt, err = o.c.Routing(o.ctx())
		}
		if err != nil {
			return o.explain(err)
		}
		return o.print(rt, func(w *tabw) { printRouting(w, rt, !one) })
	})
	cmd.Flags().Uint32Var(&partition, "partition", 0, "show only this partition")
	cmd.Flags().BoolVar(&watch, "watch", false, "print a one-line summary of every new routing version (members, partitions by state, backups syncing, primaries per member) until interrupted")
	return cmd
}

// routingSummary is one line of 'routing --watch'.
type routingSummary struct {
	RoutingVersion uint64 `json:"routing_version"`
	Alive          int    `json:"alive_members"`
	Members        int    `json:"members"`
	Active         int    `json:"active"`
	Handoff        int    `json:"handoff"`
	Unavailable    int    `json:"unavailable"`
	Syncing        int    `json:"syncing_backups"`
	// Settled counts the partitions with nothing in flight: active, with
	// no backup being filled.
	Settled   int            `json:"settled"`
	Total     int            `json:"partitions"`
	Primaries map[string]int `json:"primaries"`
}

func summarize(rt *client.Routing) routingSummary {
	s := routingSummary{RoutingVersion: rt.RoutingVersion, Members: len(rt.Members), Total: len(rt.Partitions), Primaries: map[string]int{}}
	for _, m := range rt.Members {
		if m.State == "alive" {
			s.Alive++
			s.Primaries[m.ID] = 0
		}
	}
	for _, p := range rt.Partitions {
		switch p.State {
		case "active":
			s.Active++
		case "handoff":
			s.Handoff++
		case "unavailable":
			s.Unavailable++
		}
		s.Syncing += len(p.Syncing)
		if p.State == "active" && len(p.Syncing) == 0 {
			s.Settled++
		}
		if p.Primary != "" {
			s.Primaries[p.Primary]++
		}
	}
	return s
}

// watchRouting polls the routing table and prints a summary line each time
// its version changes, until the command's context ends (Ctrl-C). With -o
// json every line is a JSON object.
func watchRouting(o *operator) error {
	base, stop := signal.NotifyContext(o.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var last uint64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	failures := 0
	for {
		ctx, cancel := context.WithTimeout(base, 5*time.Second)
		rt, err := o.c.Routing(ctx)
		cancel()
		switch {
		case err != nil && base.Err() != nil:
			return nil
		case err != nil:
			failures++
			if failures == 1 || failures%20 == 0 {
				fmt.Fprintf(o.d.Stderr, "routing: %v (retrying)\n", err)
			}
		case rt.RoutingVersion != last:
			failures = 0
			last = rt.RoutingVersion
			s := summarize(rt)
			if o.output == "json" {
				b, _ := json.Marshal(s)
				fmt.Fprintln(o.d.Stdout, string(b))
			} else {
				ids := make([]string, 0, len(s.Primaries))
				for id := range s.Primaries {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				var per []string
				for _, id := range ids {
					per = append(per, fmt.Sprintf("%s=%d", id, s.Primaries[id]))
				}
				fmt.Fprintf(o.d.Stdout, "%s  v%d  %s settled  members %d/%d alive  partitions %d active, %d handoff, %d unavailable  syncing backups %d  primaries %s\n",
					time.Now().Format("15:04:05"), s.RoutingVersion, progressBar(s.Settled, s.Total), s.Alive, s.Members, s.Active, s.Handoff, s.Unavailable, s.Syncing, strings.Join(per, " "))
			}
		}
		select {
		case <-base.Done():
			return nil
		case <-tick.C:
		}
	}
}

func newStatusCmd(d *Deps) *cobra.Command {
	return newOperatorCmd(d, &cobra.Command{
		Use:   "status",
		Short: "Show the status of a member",
		Args:  args(cobra.NoArgs),
	}, func(o *operator, _ []string) error {
		st, err := o.c.Status(o.ctx())
		if err != nil {
			return o.explain(err)
		}
		if o.output == "json" && st.Unavailable > 0 {
			// The JSON on stdout stays parseable; the warning still shows.
			fmt.Fprintln(o.d.Stderr, unavailableWarning(st.Unavailable))
		}
		return o.print(st, func(w *tabw) { printStatus(w, st) })
	})
}

func newJoinCmd(d *Deps) *cobra.Command {
	return newOperatorCmd(d, &cobra.Command{
		Use:   "join ADDR...",
		Short: "Make a member join existing members at their gossip addresses (host:port)",
		Args:  args(cobra.MinimumNArgs(1)),
	}, func(o *operator, a []string) error {
		var addrs []string
		for _, arg := range a {
			for _, s := range strings.Split(arg, ",") {
				if s = strings.TrimSpace(s); s != "" {
					addrs = append(addrs, s)
				}
			}
		}
		if len(addrs) == 0 {
			return &usageError{err: errors.New("join needs at least one address (host:port)")}
		}
		n, err := o.c.Join(o.ctx(), addrs)
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]int{"joined": n}, func(w *tabw) {
			w.line("joined: contacted %d of %d address(es)", n, len(addrs))
		})
	})
}

func newLeaveCmd(d *Deps) *cobra.Command {
	return newOperatorCmd(d, &cobra.Command{
		Use:   "leave",
		Short: "Make a member leave the cluster gracefully (hand over partitions and leadership) and exit",
		Args:  args(cobra.NoArgs),
	}, func(o *operator, _ []string) error {
		stop := o.leaveProgress()
		err := o.c.Leave(o.ctx())
		stop()
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]bool{"left": true}, func(w *tabw) {
			w.line("left: the member at %s left the cluster and is shutting down", o.c.Address())
		})
	})
}

func newRemoveCmd(d *Deps) *cobra.Command {
	return newOperatorCmd(d, &cobra.Command{
		Use:   "remove NODE",
		Short: "Force a dead member out of the cluster",
		Args:  args(cobra.ExactArgs(1)),
	}, func(o *operator, a []string) error {
		if strings.TrimSpace(a[0]) == "" {
			return &usageError{err: errors.New("remove needs a node id")}
		}
		if err := o.c.Remove(o.ctx(), a[0]); err != nil {
			return o.explain(err)
		}
		return o.print(map[string]string{"removed": a[0]}, func(w *tabw) {
			w.line("removed: %s", a[0])
		})
	})
}

// leaveProgress prints, to stderr and in table output only, how many
// partitions the leaving member still leads, backs up or has to hand over,
// each time that changes, until the returned stop is called.
func (o *operator) leaveProgress() (stop func()) {
	if o.output == "json" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	last := ""
	total := -1 // what the member held when the leave began
	bar := newProgressLine(o.d.Stderr)
	show := func() {
		ctx, cancel := context.WithTimeout(o.ctx(), time.Second)
		st, err := o.c.Status(ctx)
		cancel()
		if err != nil {
			return // it may be shutting down already
		}
		left := st.Primaries + st.Backups + st.HandoverPending
		if total < 0 {
			total = left
		}
		total = max(total, left)
		line := fmt.Sprintf("leaving %s %s handed over (%d primaries, %d backups, %d partitions not yet taken over)",
			st.NodeID, progressBar(total-left, total), st.Primaries, st.Backups, st.HandoverPending)
		if line != last {
			bar.Show("%s", line)
			last = line
		}
	}
	show() // where it starts from
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				show()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		bar.Done()
	}
}
