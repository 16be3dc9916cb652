package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/transport"
)

// methodPartitionLost: leader only: a new primary reports that it cannot
// fill a partition because the member holding its data is gone.
const methodPartitionLost = "node.partition_lost"

// methodMarkWritten: leader only: a primary is about to take the first
// write of a partition.
const methodMarkWritten = "node.mark_written"

type partitionLostRequest struct {
	Partition uint32          `msgpack:"p"`
	Epoch     uint64          `msgpack:"e"`
	Reporter  metadata.NodeID `msgpack:"r"`
}

// watchRouting feeds every committed routing table to the data plane, and
// creates the data plane once the table is initialized (its partition
// count is the cluster's, not this member's flag). It owns both.
//
// The data plane follows tables only from the first one that lists this
// process's incarnation. The tables before it come from replaying the
// Raft log (after a restart, or a rejoin under the same id with an empty
// data dir): what they assign to this id belonged to a previous
// incarnation, whose data died with it. Followed, they made this process
// act as their primary (replicating, fencing at long-gone epochs) and
// count its predecessor's handovers as its own (a graceful leave then
// waited its whole budget for them). Until the leader records the new
// incarnation — in the same entry that drops the old one's replicas —
// this process holds nothing, so it has nothing to follow.
func (n *Node) watchRouting() {
	defer n.wg.Done()
	updates, cancel := n.fsm.Subscribe()
	defer cancel()
	ours := false // a table listed this incarnation: follow every table from then on
	apply := func(t *metadata.RoutingTable) {
		if !t.Initialized() {
			return
		}
		svc := n.dmaps.Load()
		if svc == nil {
			var err error
			if svc, err = n.openDataPlane(t.PartitionCount); err != nil {
				n.log.Error("cannot start the data plane", "err", err)
				return
			}
		}
		if !ours {
			if m, ok := t.Member(n.cfg.NodeID); !ok || m.Incarnation != n.incarnation {
				return
			}
			ours = true
		}
		svc.OnRouting(t)
	}
	apply(n.fsm.Routing())
	for {
		select {
		case <-n.stop:
			return
		case t, ok := <-updates:
			if !ok {
				return
			}
			apply(t)
		}
	}
}

func (n *Node) openDataPlane(partitions uint32) (*dataplane.Service, error) {
	engine, err := dataplane.NewEngine(n.cfg.DataPlane, partitions, nil)
	if err != nil {
		return nil, err
	}
	leaseValid := n.LeaseValid
	if n.cfg.Unsafe.IgnoreLease {
		leaseValid = func() bool { return true }
	}
	if n.cfg.Unsafe != (UnsafeFaults{}) {
		n.log.Warn("UNSAFE TEST FAULTS ENABLED: this member may lose acknowledged writes and serve stale reads",
			"ack_before_replication", n.cfg.Unsafe.AckBeforeReplication, "ignore_lease", n.cfg.Unsafe.IgnoreLease)
	}
	svc, err := dataplane.NewService(dataplane.ServiceConfig{
		PartitionCount:             partitions,
		Engine:                     engine,
		Routing:                    n,
		Caller:                     n.rpc,
		ReportLost:                 n.reportPartitionLost,
		MarkWritten:                n.markWritten,
		ReportReplicas:             n.reportReplicas,
		LeaseValid:                 leaseValid,
		UnsafeAckBeforeReplication: n.cfg.Unsafe.AckBeforeReplication,
		Logger:                     n.log,
		NeverSent:                  func(err error) bool { return errors.Is(err, transport.ErrUnreachable) },
	})
	if err != nil {
		_ = engine.Close()
		return nil, err
	}
	engine.Start()
	n.engine = engine
	n.dmaps.Store(svc)
	return svc, nil
}

// closeDataPlane stops the data plane (called by shutdown after
// watchRouting has exited).
func (n *Node) closeDataPlane() {
	if svc := n.dmaps.Load(); svc != nil {
		svc.Close()
	}
	if n.engine != nil {
		_ = n.engine.Close()
	}
}

func (n *Node) dataPlane() (*dataplane.Service, error) {
	switch n.state.Load() {
	case stateClosed, stateLeft:
		return nil, ErrClosed
	}
	svc := n.dmaps.Load()
	if svc == nil {
		return nil, fmt.Errorf("%w: the routing table is not initialized yet", dataplane.ErrUnavailable)
	}
	return svc, nil
}

// DataPlaneReady returns nil once the data plane is open (it opens right
// after the routing table is initialized), else why not.
func (n *Node) DataPlaneReady() error {
	_, err := n.dataPlane()
	return err
}

// Do runs one DMap operation, routed to its partition's primary.
func (n *Node) Do(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error) {
	svc, err := n.dataPlane()
	if err != nil {
		return nil, err
	}
	return svc.Do(ctx, req)
}

// DoMany runs several key operations that are in flight together
// (dataplane.Service.DoMany): resps[i] and errs[i] are reqs[i]'s result.
func (n *Node) DoMany(ctx context.Context, reqs []*dataplane.Request, resps []*dataplane.Response, errs []error) {
	svc, err := n.dataPlane()
	if err != nil {
		for i := range reqs {
			resps[i], errs[i] = nil, err
		}
		return
	}
	svc.DoMany(ctx, reqs, resps, errs)
}

// Scan pages through the keys of dmap across every partition.
func (n *Node) Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error) {
	svc, err := n.dataPlane()
	if err != nil {
		return nil, "", err
	}
	return svc.Scan(ctx, dmap, match, cursor, limit)
}

// Destroy removes dmap from every partition.
func (n *Node) Destroy(ctx context.Context, dmap string) error {
	svc, err := n.dataPlane()
	if err != nil {
		return err
	}
	return svc.Destroy(ctx, dmap)
}

// serveDataPlaneRPC hands dmap.* methods to the data plane.
func (n *Node) serveDataPlaneRPC(ctx context.Context, method string, body []byte) ([]byte, error) {
	svc := n.dmaps.Load()
	if svc == nil {
		return dataplane.ReplyUnavailable("data plane not started: routing not initialized on " + string(n.cfg.NodeID))
	}
	return svc.ServeRPC(ctx, method, body)
}

func isDataPlaneMethod(method string) bool { return strings.HasPrefix(method, "dmap.") }

// reportPartitionLost asks the leader to mark partition p unavailable.
func (n *Node) reportPartitionLost(ctx context.Context, p uint32, epoch uint64) error {
	req := partitionLostRequest{Partition: p, Epoch: epoch, Reporter: n.cfg.NodeID}
	if n.IsLeader() {
		return n.leaderPartitionLost(ctx, req)
	}
	li, ok := n.Leader()
	if !ok {
		return ErrNoLeader
	}
	return fromRemote(n.rpc.Call(ctx, li.ClusterAddr, methodPartitionLost, &req, nil))
}

// leaderPartitionLost commits partition p unavailable if the reporter is
// still its primary at that epoch and the member that held its data is
// failed or gone: the data is lost, and a CP store says so (503) until an
// operator force-assigns it, instead of serving it empty.
func (n *Node) leaderPartitionLost(ctx context.Context, req partitionLostRequest) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	_, err := n.leaderApply(ctx, func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		p, ok := t.Partition(req.Partition)
		if !ok {
			return 0, nil, fmt.Errorf("%w: partition %d", ErrInvalidArgument, req.Partition)
		}
		if p.Primary != req.Reporter || p.LeaderEpoch != req.Epoch || !p.Written {
			return 0, nil, nil // already moved on, or nothing was ever written
		}
		if prev, ok := t.Member(p.PrevPrimary); ok && prev.State != metadata.MemberFailed {
			return 0, nil, fmt.Errorf("%w: partition %d's previous primary %s is %s: pull from it", ErrInvalidArgument, p.ID, prev.ID, prev.State)
		}
		lost := metadata.Partition{ID: p.ID, State: metadata.PartitionUnavailable, LeaderEpoch: p.LeaderEpoch + 1}
		return fsm.CommandRebalance, &fsm.Change{
			Partitions: []metadata.Partition{lost},
			Reason:     fmt.Sprintf("DATA LOST: partition %d's data was only on %s, which is gone; unavailable until force-assigned", p.ID, p.PrevPrimary),
		}, nil
	})
	return err
}

func (n *Node) servePartitionLost(ctx context.Context, body []byte) ([]byte, error) {
	var req partitionLostRequest
	if err := msgpack.Unmarshal(body, &req); err != nil {
		return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	if err := n.leaderPartitionLost(ctx, req); err != nil {
		return nil, toRemote(err)
	}
	return msgpack.Marshal(struct{}{})
}

// markWritten asks the leader to commit that partition p, led here at
// epoch, is about to take its first write; it returns the routing version
// of that entry.
func (n *Node) markWritten(ctx context.Context, p uint32, epoch uint64) (uint64, error) {
	req := partitionLostRequest{Partition: p, Epoch: epoch, Reporter: n.cfg.NodeID}
	if n.IsLeader() {
		return n.leaderMarkWritten(ctx, req)
	}
	li, ok := n.Leader()
	if !ok {
		return 0, ErrNoLeader
	}
	var resp memberResponse
	if err := n.rpc.Call(ctx, li.ClusterAddr, methodMarkWritten, &req, &resp); err != nil {
		return 0, fromRemote(err)
	}
	return resp.Version, nil
}

func (n *Node) leaderMarkWritten(ctx context.Context, req partitionLostRequest) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	return n.leaderApply(ctx, func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		p, ok := t.Partition(req.Partition)
		if !ok {
			return 0, nil, fmt.Errorf("%w: partition %d", ErrInvalidArgument, req.Partition)
		}
		if p.Written {
			return 0, nil, nil // already marked: t.Version records it
		}
		if p.Primary != req.Reporter || p.LeaderEpoch != req.Epoch || p.State == metadata.PartitionUnavailable {
			return 0, nil, fmt.Errorf("%w: %s is not the primary of partition %d at epoch %d", ErrNotLeader, req.Reporter, p.ID, req.Epoch)
		}
		w := p.Clone()
		w.Written = true
		return fsm.CommandMarkWritten, &fsm.Change{Partitions: []metadata.Partition{w}, Reason: fmt.Sprintf("partition %d takes its first write", p.ID)}, nil
	})
}

func (n *Node) serveMarkWritten(ctx context.Context, body []byte) ([]byte, error) {
	var req partitionLostRequest
	if err := msgpack.Unmarshal(body, &req); err != nil {
		return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	v, err := n.leaderMarkWritten(ctx, req)
	if err != nil {
		return nil, toRemote(err)
	}
	return msgpack.Marshal(memberResponse{Version: v})
}

// DeleteMany deletes keys of dmap on every primary that holds one and
// returns once all deletes completed, with how many keys existed.
func (n *Node) DeleteMany(ctx context.Context, dmap string, keys []string) (int, error) {
	svc, err := n.dataPlane()
	if err != nil {
		return 0, err
	}
	return svc.DeleteMany(ctx, dmap, keys)
}
