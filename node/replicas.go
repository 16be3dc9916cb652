package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

// methodReplicas: leader only: a primary reports that backups caught up
// (in sync) or failed to apply its stream (out of sync).
const methodReplicas = "node.replicas"

type replicasRequest struct {
	Reporter metadata.NodeID           `msgpack:"r"`
	Reports  []dataplane.ReplicaReport `msgpack:"reps"`
}

// maxReplicaReports bounds one request (a primary of every partition
// reporting every backup fits).
const maxReplicaReports = 4 * metadata.MaxPartitionCount

// reportReplicas sends a primary's replica reports to the leader and
// returns the routing version that holds their effect.
func (n *Node) reportReplicas(ctx context.Context, reports []dataplane.ReplicaReport) (uint64, error) {
	req := replicasRequest{Reporter: n.cfg.NodeID, Reports: reports}
	if n.IsLeader() {
		return n.leaderReplicas(ctx, req)
	}
	li, ok := n.Leader()
	if !ok {
		return 0, ErrNoLeader
	}
	var resp memberResponse
	if err := n.rpc.Call(ctx, li.ClusterAddr, methodReplicas, &req, &resp); err != nil {
		return 0, fromRemote(err)
	}
	return resp.Version, nil
}

// leaderReplicas commits the reports that still apply: the reporter must
// be the partition's primary at the reported epoch and the member one of
// its backups. Failed backups are removed from the partition (one
// rebalance entry; the reconcile loop then places a new backup, which is
// filled from the primary); caught-up ones leave the syncing list (one
// replica_in_sync entry). Reports that no longer apply are ignored.
func (n *Node) leaderReplicas(ctx context.Context, req replicasRequest) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if len(req.Reports) > maxReplicaReports {
		return 0, fmt.Errorf("%w: %d replica reports, limit %d", ErrInvalidArgument, len(req.Reports), maxReplicaReports)
	}
	build := func(inSync bool) func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		return func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
			changed := make(map[uint32]*metadata.Partition)
			var order []uint32
			var names []string
			for _, r := range req.Reports {
				if r.InSync != inSync {
					continue
				}
				p, ok := t.Partition(r.Partition)
				if !ok || p.Primary != req.Reporter || p.LeaderEpoch != r.Epoch || !slices.Contains(p.Backups, r.Member) {
					continue
				}
				if inSync && !slices.Contains(p.Syncing, r.Member) {
					continue
				}
				c := changed[p.ID]
				if c == nil {
					cl := p.Clone()
					c = &cl
					changed[p.ID] = c
					order = append(order, p.ID)
				}
				if inSync {
					c.Syncing = slices.DeleteFunc(c.Syncing, func(id metadata.NodeID) bool { return id == r.Member })
				} else {
					c.Backups = slices.DeleteFunc(c.Backups, func(id metadata.NodeID) bool { return id == r.Member })
					c.Syncing = slices.DeleteFunc(c.Syncing, func(id metadata.NodeID) bool { return id == r.Member })
				}
				if len(names) < 8 {
					names = append(names, fmt.Sprintf("%d:%s", p.ID, r.Member))
				}
			}
			if len(order) == 0 {
				return 0, nil, nil
			}
			slices.Sort(order)
			parts := make([]metadata.Partition, 0, len(order))
			for _, id := range order {
				parts = append(parts, *changed[id])
			}
			if inSync {
				return fsm.CommandReplicaInSync, &fsm.Change{Partitions: parts,
					Reason: fmt.Sprintf("%d backups caught up with primary %s (%s)", len(parts), req.Reporter, strings.Join(names, " "))}, nil
			}
			return fsm.CommandRebalance, &fsm.Change{Partitions: parts,
				Reason: fmt.Sprintf("primary %s lost %d backups out of sync (%s)", req.Reporter, len(parts), strings.Join(names, " "))}, nil
		}
	}
	v, err := n.leaderApply(ctx, build(false))
	if err != nil {
		return 0, err
	}
	v2, err := n.leaderApply(ctx, build(true))
	if err != nil {
		return 0, err
	}
	n.triggerReconcile() // place new backups where some were dropped
	return max(v, v2), nil
}

func (n *Node) serveReplicas(ctx context.Context, body []byte) ([]byte, error) {
	var req replicasRequest
	if err := msgpack.Unmarshal(body, &req); err != nil {
		return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	v, err := n.leaderReplicas(ctx, req)
	if err != nil {
		return nil, toRemote(err)
	}
	return msgpack.Marshal(memberResponse{Version: v})
}
