package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/client"
)

// newPartitionCmd groups the commands that act on partitions.
func newPartitionCmd(d *Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Act on partitions (force-assign: the data-loss escape hatch for unavailable partitions)",
		Args:  noUnknownCommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.SuggestionsMinimumDistance = 2
	cmd.AddCommand(newForceAssignCmd(d))
	return cmd
}

// newForceAssignCmd: partition force-assign P [NODE] | --all-unavailable
// [--node NODE], with --yes.
func newForceAssignCmd(d *Deps) *cobra.Command {
	var all, yes bool
	var nodeFlag string
	cmd := &cobra.Command{
		Use:   "force-assign (P [NODE] | --all-unavailable [--node NODE]) --yes",
		Short: "DATA LOSS: serve unavailable partitions again, EMPTY, from new owners",
		Long: `force-assign is the last resort for unavailable partitions: partitions
whose every replica is gone (see 'olric-raft status' and 'olric-raft routing').
It gives them new owners that start EMPTY: the data the partitions held is
DELETED for good, and their keys are served again as if never written.

Bring back the members that held the partitions instead, if you can.

  olric-raft partition force-assign P [NODE] --yes
      force partition P (a partition number); NODE, an alive member, becomes
      its owner (default: the leader picks one)
  olric-raft partition force-assign --all-unavailable [--node NODE] --yes
      force every unavailable partition

The command refuses a partition that still has a primary. Without --yes it
explains what it would do and sends nothing.`,
		Args: args(func(_ *cobra.Command, a []string) error {
			switch {
			case all && len(a) > 0:
				return errors.New("--all-unavailable takes no partition argument (give the owner with --node NODE)")
			case !all && len(a) == 0:
				return errors.New("force-assign needs a partition number P, or --all-unavailable")
			case len(a) > 2:
				return fmt.Errorf("accepts at most 2 arg(s) (P [NODE]), received %d", len(a))
			}
			return nil
		}),
	}
	cmd = newOperatorCmd(d, cmd, func(o *operator, a []string) error {
		var partitions []uint32
		owner := nodeFlag
		ownerSet := o.cmd.Flags().Changed("node")
		if !all {
			p, err := strconv.ParseUint(a[0], 10, 32)
			if err != nil {
				return &usageError{err: fmt.Errorf("partition %q is not a partition number (0 to the partition count - 1)", a[0])}
			}
			partitions = []uint32{uint32(p)}
			if len(a) == 2 {
				if ownerSet {
					return &usageError{err: errors.New("give the owner either as the NODE argument or with --node, not both")}
				}
				owner, ownerSet = a[1], true
			}
		}
		if ownerSet && strings.TrimSpace(owner) == "" {
			return &usageError{err: errors.New("the owner node id is empty; leave it out to let the leader choose")}
		}
		if !yes {
			msg := "force-assign DELETES the data of every unavailable partition forever: they have no replica left, " +
				"and they will be served again EMPTY by new owners. Bring back the members that held them instead if you can"
			if !all {
				msg = fmt.Sprintf("force-assign DELETES the data of partition %d forever: it has no replica left, "+
					"and it will be served again EMPTY by a new owner. Bring back the members that held it instead if you can", partitions[0])
			}
			return &usageError{err: errors.New(msg + " (see 'olric-raft routing'). To go ahead, run the command again with --yes")}
		}

		available := "a partition still has a primary; force-assign is only for unavailable partitions (see olric-raft routing)"
		if !all {
			available = fmt.Sprintf("partition %d still has a primary; force-assign is only for unavailable partitions (see olric-raft routing)", partitions[0])
		}
		notFound := "there is no alive member with that id; pick one from 'olric-raft members', or leave the owner out to let the leader choose"
		o.hints = map[string]string{
			client.CodePartitionAvailable: available,
			client.CodeNotFound:           notFound,
			client.CodeBadRequest:         "check the partition number (0 to the partition count - 1, see 'olric-raft routing') and the node id (see --help)",
			client.CodeTimeout:            "the force-assign timed out and may still take effect; check 'olric-raft routing' before retrying",
		}
		res, err := o.c.ForceAssign(o.ctx(), partitions, owner)
		if err != nil {
			return o.explain(err)
		}
		return o.print(res, func(w *tabw) { printForceAssign(w, res) })
	})
	fs := cmd.Flags()
	fs.BoolVar(&all, "all-unavailable", false, "force every unavailable partition instead of one partition P")
	fs.StringVar(&nodeFlag, "node", "", "the alive member that becomes the owner (default: the leader picks balanced owners)")
	fs.BoolVar(&yes, "yes", false, "confirm the data loss: the partitions are served again EMPTY")
	return cmd
}
