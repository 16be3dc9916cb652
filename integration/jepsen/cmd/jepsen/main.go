// Command jepsen runs one pass of the Jepsen-style harness of package
// integration/jepsen (see its doc.go) and exits 1 on any anomaly, 2 on a
// usage error or harness trouble, 3 when a check could not decide (e.g.
// the final read never succeeded), 0 when the history checks out (or,
// without root, after printing that it skipped), 130 when interrupted
// (the hosts are torn down all the same). Run it as
// root from the module: make jepsen JEPSEN_ARGS='--time-limit 60s
// --nemesis partition-halves --workload register --seed 7'.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/olric-raft/olric-raft/integration/jepsen"
	"github.com/spf13/pflag"
)

func main() {
	var o jepsen.Options
	var workloads, unsafe string
	fs := pflag.NewFlagSet("jepsen", pflag.ContinueOnError)
	fs.DurationVar(&o.TimeLimit, "time-limit", 0, "how long clients and nemesis run (default 60s)")
	fs.StringVar(&o.Nemesis, "nemesis", "partition-halves", "nemesis: "+strings.Join(jepsen.AllNemeses(), ", "))
	fs.StringVar(&workloads, "workload", "register", "workloads, comma-separated: "+strings.Join(jepsen.AllWorkloads, ", ")+", or all")
	fs.Int64Var(&o.Seed, "seed", 0, "seed of every random choice (default: from the clock, printed)")
	fs.IntVar(&o.Clients, "clients", 0, "clients per workload (default 4)")
	fs.IntVar(&o.Keys, "keys", 0, "register keys (default 3)")
	fs.IntVar(&o.Replicas, "replicas", 0, "copies of each partition (default 3: a 2|3 split then leaves every partition a replica on the majority side)")
	fs.DurationVar(&o.Interval, "interval", 0, "nemesis off and on periods (default 5s)")
	fs.StringVar(&o.OutDir, "out", "", "parent folder of the run folders (default ./jepsen-runs)")
	fs.StringVar(&o.Bin, "bin", "", "olric-raft binary (default: build one without -race)")
	list := fs.Bool("list-nemeses", false, "print the nemeses that inject faults (every one but none and all), one a line, and exit")
	fs.StringVar(&unsafe, "unsafe-test-fault", "", "TESTS ONLY: start the members with this safety mechanism broken (ack-before-replication, ignore-lease)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *list {
		fmt.Println(strings.Join(jepsen.FaultNemeses(), "\n"))
		os.Exit(0)
	}
	o.Workloads = strings.Split(workloads, ",")
	if unsafe != "" {
		o.Unsafe = strings.Split(unsafe, ",")
	}
	if err := jepsen.CanRun(); err != nil {
		fmt.Fprintf(os.Stderr, "SKIPPED: %v\n", err)
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := jepsen.Run(ctx, o)
	if res != nil && len(res.Checks) > 0 {
		fmt.Print(res.Summary())
	}
	if ctx.Err() != nil {
		// The hosts are torn down; what was checked is above.
		fmt.Fprintln(os.Stderr, "jepsen: interrupted")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jepsen: %v\n", err)
		if res != nil {
			fmt.Fprintf(os.Stderr, "run folder: %s\n", res.Dir)
		}
		os.Exit(2)
	}
	if !res.Valid() {
		os.Exit(1)
	}
	if len(res.Unknown) > 0 {
		os.Exit(3)
	}
}
