package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/transport"
)

// Cluster RPC methods served by every node on the cluster port.
const (
	methodBootstrapInfo = "node.bootstrap_info" // does this node hold Raft state?
	methodPing          = "node.ping"           // is this node's cluster port serving?
	methodCommitIndex   = "node.commit_index"   // leader only: its verified commit index
	methodLeave         = "node.leave"          // leader only: move a member out
	methodRemove        = "node.remove"         // leader only: force out a dead member
	methodForceAssign   = "node.force_assign"   // leader only: new empty owners for unavailable partitions
)

type bootstrapInfoRequest struct{}
type bootstrapInfoResponse struct {
	HasState bool `msgpack:"has_state"`
}
type commitIndexRequest struct{}
type commitIndexResponse struct {
	Index uint64 `msgpack:"index"`
}
type memberRequest struct {
	ID          metadata.NodeID `msgpack:"id"`
	Incarnation string          `msgpack:"inc"`
}
type memberResponse struct {
	Version uint64 `msgpack:"version"`
}
type forceAssignRequest struct {
	Partitions []uint32        `msgpack:"partitions"`
	Owner      metadata.NodeID `msgpack:"owner"`
}
type forceAssignResponse struct {
	Version    uint64   `msgpack:"version"`
	Partitions []uint32 `msgpack:"partitions"`
}

// Wire codes of node's sentinel errors, so a forwarded call fails on the
// caller with the same sentinel it failed with on the leader.
var errorCodes = []struct {
	err  error
	code string
}{
	{ErrClosed, "closed"},
	{ErrNotReady, "not_ready"},
	{ErrNoLeader, "no_leader"},
	{ErrNotLeader, "not_leader"},
	{ErrUnknownMember, "unknown_member"},
	{ErrMemberAlive, "member_alive"},
	{ErrLeaving, "leaving"},
	{ErrTimeout, "timeout"},
	{ErrInvalidArgument, "invalid_argument"},
	{ErrPartitionAvailable, "partition_available"},
	{ErrQuorumAtRisk, "quorum_at_risk"},
}

func toRemote(err error) error {
	if err == nil {
		return nil
	}
	for _, ec := range errorCodes {
		if errors.Is(err, ec.err) {
			return &transport.RemoteError{Code: ec.code, Message: err.Error()}
		}
	}
	return err
}

func fromRemote(err error) error {
	var re *transport.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	for _, ec := range errorCodes {
		if re.Code == ec.code {
			return fmt.Errorf("%w (from leader: %s)", ec.err, re.Message)
		}
	}
	return err
}

// serveRPC is the cluster-port handler; the transport calls it from its
// per-request goroutines.
func (n *Node) serveRPC(ctx context.Context, method string, body []byte) ([]byte, error) {
	if isDataPlaneMethod(method) {
		return n.serveDataPlaneRPC(ctx, method, body)
	}
	switch method {
	case methodPartitionLost:
		return n.servePartitionLost(ctx, body)
	case methodMarkWritten:
		return n.serveMarkWritten(ctx, body)
	case methodLease:
		return n.serveLease(body)
	case methodReplicas:
		return n.serveReplicas(ctx, body)
	}
	var (
		resp any
		err  error
	)
	switch method {
	case methodBootstrapInfo:
		has := n.raft.LastIndex() > 0 || n.raft.CurrentTerm() > 0
		if !has {
			if servers, _, cerr := n.raftServers(); cerr == nil && len(servers) > 0 {
				has = true
			}
		}
		resp = bootstrapInfoResponse{HasState: has}
	case methodPing:
		resp = struct{}{}
	case methodCommitIndex:
		var idx uint64
		idx, err = n.verifiedCommitIndex()
		resp = commitIndexResponse{Index: idx}
	case methodLeave, methodRemove:
		var req memberRequest
		if uerr := msgpack.Unmarshal(body, &req); uerr != nil {
			return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, uerr))
		}
		var v uint64
		if method == methodLeave {
			v, err = n.leaderLeave(ctx, req)
		} else {
			v, err = n.leaderRemove(ctx, req.ID)
		}
		resp = memberResponse{Version: v}
	case methodForceAssign:
		var req forceAssignRequest
		if uerr := msgpack.Unmarshal(body, &req); uerr != nil {
			return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, uerr))
		}
		var res ForceAssignResult
		res, err = n.leaderForceAssign(ctx, req)
		resp = forceAssignResponse{Version: res.RoutingVersion, Partitions: res.Partitions}
	default:
		return nil, &transport.RemoteError{Code: "unknown_method", Message: "node: unknown method " + method}
	}
	if err != nil {
		return nil, toRemote(err)
	}
	return msgpack.Marshal(resp)
}

// verifiedCommitIndex returns the leader's commit index after confirming
// that it is still the leader (so no newer leader can have committed more).
func (n *Node) verifiedCommitIndex() (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	idx := n.raft.CommitIndex()
	if err := n.verifyLeader(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return idx, nil
}

// leaderCommitIndex asks the leader for its verified commit index.
func (n *Node) leaderCommitIndex(ctx context.Context) (uint64, error) {
	li, ok := n.Leader()
	if !ok {
		return 0, ErrNoLeader
	}
	if li.ID == n.cfg.NodeID {
		return n.verifiedCommitIndex()
	}
	var resp commitIndexResponse
	if err := n.rpc.Call(ctx, li.ClusterAddr, methodCommitIndex, &commitIndexRequest{}, &resp); err != nil {
		return 0, fmt.Errorf("%w: asking leader %s for its commit index: %w", ErrNotReady, li.ID, fromRemote(err))
	}
	return resp.Index, nil
}

// callLeader runs method on the leader, retrying while leadership is in
// flux (no leader yet, a new leader not ready, a stale view of who leads)
// until ctx ends.
func (n *Node) callLeader(ctx context.Context, method string, req memberRequest) (uint64, error) {
	wait := 10 * time.Millisecond
	for {
		v, err := n.callLeaderOnce(ctx, method, req)
		if err == nil || !(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotReady)) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-n.stop:
			return 0, ErrClosed
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// callLeaderOnce runs method on the leader: locally when this node leads,
// otherwise over the cluster RPC.
func (n *Node) callLeaderOnce(ctx context.Context, method string, req memberRequest) (uint64, error) {
	if n.raft.State() == raft.Leader {
		if !n.IsLeader() {
			return 0, fmt.Errorf("%w: leader is not ready yet", ErrNotReady)
		}
		if method == methodLeave {
			return n.leaderLeave(ctx, req)
		}
		return n.leaderRemove(ctx, req.ID)
	}
	li, ok := n.Leader()
	if !ok {
		return 0, ErrNoLeader
	}
	var resp memberResponse
	if err := n.rpc.Call(ctx, li.ClusterAddr, method, &req, &resp); err != nil {
		err = fromRemote(err)
		for _, ec := range errorCodes {
			if errors.Is(err, ec.err) {
				return 0, err
			}
		}
		if errors.Is(err, transport.ErrUnreachable) {
			// Never sent (e.g. connection refused: the leader just died):
			// nothing happened, the caller may retry with the next leader.
			return 0, fmt.Errorf("%w: leader %s unreachable: %w", ErrNotLeader, li.ID, err)
		}
		// The request may have reached the leader: its outcome is unknown.
		return 0, fmt.Errorf("%w: calling leader %s: %w", ErrTimeout, li.ID, err)
	}
	return resp.Version, nil
}

// raftTimeout turns a context deadline into a Raft timeout.
func raftTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 10 * time.Second
}

// leaderApply proposes a Change on the leader, recomputing it if the table
// moved underneath (version conflict), and returns the new version.
func (n *Node) leaderApply(ctx context.Context, build func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error)) (uint64, error) {
	for attempt := 0; ; attempt++ {
		t := n.fsm.Routing()
		typ, ch, err := build(t)
		if err != nil || ch == nil {
			return t.Version, err
		}
		ch.ExpectVersion = t.Version
		cmd, err := fsm.Encode(typ, ch)
		if err != nil {
			return 0, err
		}
		f, err := n.timedApply(cmd, raftTimeout(ctx))
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return 0, err
			}
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
			}
			return 0, fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		res, _ := f.Response().(fsm.ApplyResult)
		if res.Err == nil {
			return res.Version, nil
		}
		// A busy cluster commits other entries (writes marking partitions,
		// backups reported in sync, failovers) between our read of the
		// table and our entry: recompute and try again, for as long as
		// the caller waits (bounded, so a pathological loop still ends).
		if !errors.Is(res.Err, fsm.ErrVersionConflict) || attempt >= 100 || ctx.Err() != nil {
			return 0, res.Err
		}
	}
}

// leaderLeave moves a leaving member out: state leaving and no partitions
// in one entry, then out of the Raft configuration. The member is removed
// from the routing table once memberlist reports it left (reconcile).
func (n *Node) leaderLeave(ctx context.Context, req memberRequest) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := n.prepareVoterRemoval(ctx, req.ID); err != nil {
		return 0, err
	}
	v, err := n.leaderApply(ctx, func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		m, ok := t.Member(req.ID)
		if !ok {
			return 0, nil, fmt.Errorf("%w: %s", ErrUnknownMember, req.ID)
		}
		if req.Incarnation != "" && m.Incarnation != req.Incarnation {
			return 0, nil, fmt.Errorf("%w: %s has incarnation %s, not %s", ErrUnknownMember, req.ID, m.Incarnation, req.Incarnation)
		}
		if m.State == metadata.MemberLeaving {
			return 0, nil, nil
		}
		lm := m
		lm.State = metadata.MemberLeaving
		ch := &fsm.Change{Upsert: []metadata.Member{lm}, Reason: fmt.Sprintf("member %s is leaving", m.ID)}
		parts, summary, err := replan(t, without(t.AliveMembers(), m.ID), m.ID)
		if err != nil {
			return 0, nil, err
		}
		ch.Partitions, ch.Reason = parts, ch.Reason+"; "+summary
		return fsm.CommandMemberLeave, ch, nil
	})
	if err != nil {
		return 0, err
	}
	if err := n.removeRaftServer(ctx, req.ID); err != nil {
		return 0, err
	}
	n.triggerReconcile()
	return v, nil
}

// prepareVoterRemoval makes removing voter id from Raft safe: if a healthy
// non-voter exists it is promoted first (keeping the voter count), and the
// voters that would remain must include a reachable majority — otherwise
// the removal would leave Raft without a quorum (say, one of three voters
// is dead but not yet detected, and a second one leaves).
func (n *Node) prepareVoterRemoval(ctx context.Context, id metadata.NodeID) error {
	s, ok := n.raftServer(id)
	if !ok || s.Suffrage != raft.Voter {
		return nil
	}
	servers, cfgIdx, err := n.raftServers()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	t := n.fsm.Routing()
	var remaining []raft.Server
	var candidates []raft.Server
	for _, srv := range servers {
		if srv.ID == s.ID {
			continue
		}
		if srv.Suffrage == raft.Voter {
			remaining = append(remaining, srv)
		} else if m, ok := t.Member(metadata.NodeID(srv.ID)); ok && m.State == metadata.MemberAlive {
			candidates = append(candidates, srv)
		}
	}
	if len(remaining) < n.cfg.RaftVoters {
		for _, c := range candidates {
			if !n.reachable(ctx, c) {
				continue
			}
			n.log.Info("promoting non-voter before a voter leaves", "member", c.ID, "leaving", id)
			if err := n.futureError(n.raft.AddVoter(c.ID, c.Address, cfgIdx, raftTimeout(ctx))); err != nil {
				return fmt.Errorf("%w: promoting %s: %v", ErrTimeout, c.ID, err)
			}
			remaining = append(remaining, c)
			break
		}
	}
	up := 0
	var down []string
	for _, srv := range remaining {
		if n.reachable(ctx, srv) {
			up++
		} else {
			down = append(down, string(srv.ID))
		}
	}
	if up <= len(remaining)/2 {
		return fmt.Errorf("%w: removing voter %s would leave %d voters of which only %d answer (unreachable: %v); bring them back first",
			ErrQuorumAtRisk, id, len(remaining), up, down)
	}
	return nil
}

// reachable reports whether srv answers a ping on its cluster port (this
// node always counts as reachable).
func (n *Node) reachable(ctx context.Context, srv raft.Server) bool {
	if string(srv.ID) == string(n.cfg.NodeID) {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, max(n.cfg.Timing.RaftHeartbeatTimeout, 200*time.Millisecond))
	defer cancel()
	return n.rpc.Call(pctx, string(srv.Address), methodPing, struct{}{}, nil) == nil
}

// leaderRemove forces a member that is not alive out of the cluster.
func (n *Node) leaderRemove(ctx context.Context, id metadata.NodeID) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if id == n.cfg.NodeID {
		return 0, fmt.Errorf("%w: %s is the leader; use leave on it", ErrMemberAlive, id)
	}
	if g, live := n.gossipMemberByID(id); live {
		return 0, fmt.Errorf("%w: %s is alive in gossip (%s); run leave on it instead", ErrMemberAlive, id, gossipStateName(g.State))
	}
	_, inRaft := n.raftServer(id)
	v, err := n.leaderApply(ctx, func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		m, ok := t.Member(id)
		if !ok {
			if inRaft {
				return 0, nil, nil // only in Raft: removed below
			}
			return 0, nil, fmt.Errorf("%w: %s", ErrUnknownMember, id)
		}
		ch := &fsm.Change{Remove: []metadata.NodeID{id}, Reason: fmt.Sprintf("member %s removed by operator (was %s)", id, m.State)}
		parts, summary, err := replan(t, without(t.AliveMembers(), id))
		if err != nil {
			return 0, nil, err
		}
		ch.Partitions, ch.Reason = parts, ch.Reason+"; "+summary
		return fsm.CommandMemberRemove, ch, nil
	})
	if err != nil {
		return 0, err
	}
	if err := n.removeRaftServer(ctx, id); err != nil {
		return 0, err
	}
	return v, nil
}

func (n *Node) raftServer(id metadata.NodeID) (raft.Server, bool) {
	servers, _, err := n.raftServers()
	if err != nil {
		return raft.Server{}, false
	}
	for _, s := range servers {
		if string(s.ID) == string(id) {
			return s, true
		}
	}
	return raft.Server{}, false
}

func (n *Node) removeRaftServer(ctx context.Context, id metadata.NodeID) error {
	if _, ok := n.raftServer(id); !ok {
		return nil
	}
	if err := n.futureError(n.raft.RemoveServer(raft.ServerID(id), 0, raftTimeout(ctx))); err != nil {
		return fmt.Errorf("%w: removing %s from raft: %v", ErrTimeout, id, err)
	}
	return nil
}

// Join contacts existing members at the given gossip addresses.
func (n *Node) Join(ctx context.Context, gossipAddrs []string) (int, error) {
	if len(gossipAddrs) == 0 {
		return 0, fmt.Errorf("%w: no addresses to join", ErrInvalidArgument)
	}
	if n.state.Load() >= stateLeaving {
		return 0, ErrLeaving
	}
	k, err := n.gossip.Join(gossipAddrs)
	if k == 0 {
		return 0, fmt.Errorf("%w: %v", ErrJoinFailed, err)
	}
	return k, nil
}

// RemoveMember forces a dead member out of the routing table and the Raft
// configuration. It runs on the leader (forwarded when needed).
func (n *Node) RemoveMember(ctx context.Context, id metadata.NodeID) error {
	if err := metadata.ValidateNodeID(id); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if n.state.Load() >= stateLeft {
		return ErrClosed
	}
	_, err := n.callLeader(ctx, methodRemove, memberRequest{ID: id})
	return err
}

// Leave leaves the cluster gracefully: hand Raft leadership over if this
// node holds it, have the leader move every partition away and drop this
// node from Raft, leave memberlist (peers see "left", not "failed"), then
// Close. A node that left cannot rejoin without a restart.
func (n *Node) Leave(ctx context.Context) error {
	if !n.state.CompareAndSwap(stateRunning, stateLeaving) {
		switch n.state.Load() {
		case stateLeaving:
			return ErrLeaving
		default:
			return ErrClosed
		}
	}
	fail := func(err error) error {
		n.state.CompareAndSwap(stateLeaving, stateRunning)
		return err
	}
	n.log.Info("leaving the cluster")
	servers, _, err := n.raftServers()
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNotReady, err))
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if n.raft.State() == raft.Leader && voters > 1 {
		n.log.Info("transferring raft leadership before leaving")
		if err := n.futureError(n.raft.LeadershipTransfer()); err != nil {
			return fail(fmt.Errorf("%w: leadership transfer: %v", ErrTimeout, err))
		}
		if err := n.waitForOtherLeader(ctx); err != nil {
			return fail(err)
		}
	}
	if voters > 1 || n.raft.State() != raft.Leader {
		v, err := n.callLeader(ctx, methodLeave, memberRequest{ID: n.cfg.NodeID, Incarnation: n.incarnation})
		if err != nil {
			return fail(err)
		}
		// Our own table must show the partitions moved before we can tell
		// whether they have all been pulled from us.
		if _, err := n.WaitRouting(ctx, v); err != nil {
			n.log.Warn("leaving: the leave entry did not reach this member", "version", v, "err", err)
		}
	}
	// Serve transfers until the new primaries have pulled every partition
	// this member led: leaving must not lose acknowledged writes.
	if svc := n.dmaps.Load(); svc != nil {
		if err := svc.WaitHandedOver(ctx); err != nil {
			n.log.Error("leaving before every partition was handed over", "err", err)
		}
	}
	if err := n.gossip.Leave(2 * time.Second); err != nil {
		n.log.Warn("memberlist leave", "err", err)
	}
	n.state.Store(stateLeft)
	n.log.Info("left the cluster")
	n.closeOnce.Do(func() {
		n.closeErr = n.shutdown()
	})
	return nil
}

// waitForOtherLeader waits until a member other than this one leads.
func (n *Node) waitForOtherLeader(ctx context.Context) error {
	for {
		if li, ok := n.Leader(); ok && li.ID != n.cfg.NodeID {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no new leader after transfer", ErrTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ProposeChange proposes a routing change computed by the caller (operator
// tools, tests, benchmarks) on the leader. ch.ExpectVersion must be the
// version the change was computed from; Apply rejects it otherwise. It
// returns the routing version that the change produced. It runs only on the
// leader (ErrNotLeader elsewhere).
func (n *Node) ProposeChange(ctx context.Context, typ fsm.CommandType, ch fsm.Change) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	cmd, err := fsm.Encode(typ, &ch)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	f, err := n.timedApply(cmd, raftTimeout(ctx))
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return 0, err
		}
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return 0, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	res, _ := f.Response().(fsm.ApplyResult)
	return res.Version, res.Err
}

// ForceAssign is the operator's data-loss escape hatch: it gives
// unavailable partitions (every replica lost) new, empty owners so they are
// served again. partitions empty means every unavailable partition; owner
// empty lets the leader pick balanced owners. The committed entry is logged
// at WARN as data loss on every member. Runs on the leader (forwarded).
func (n *Node) ForceAssign(ctx context.Context, partitions []uint32, owner metadata.NodeID) (ForceAssignResult, error) {
	if owner != "" {
		if err := metadata.ValidateNodeID(owner); err != nil {
			return ForceAssignResult{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
	}
	req := forceAssignRequest{Partitions: partitions, Owner: owner}
	if n.raft.State() == raft.Leader {
		if !n.IsLeader() {
			return ForceAssignResult{}, fmt.Errorf("%w: leader is not ready yet", ErrNotReady)
		}
		return n.leaderForceAssign(ctx, req)
	}
	li, ok := n.Leader()
	if !ok {
		return ForceAssignResult{}, ErrNoLeader
	}
	var resp forceAssignResponse
	if err := n.rpc.Call(ctx, li.ClusterAddr, methodForceAssign, &req, &resp); err != nil {
		err = fromRemote(err)
		for _, ec := range errorCodes {
			if errors.Is(err, ec.err) {
				return ForceAssignResult{}, err
			}
		}
		return ForceAssignResult{}, fmt.Errorf("%w: calling leader %s: %w", ErrTimeout, li.ID, err)
	}
	return ForceAssignResult{RoutingVersion: resp.Version, Partitions: resp.Partitions}, nil
}

func (n *Node) leaderForceAssign(ctx context.Context, req forceAssignRequest) (ForceAssignResult, error) {
	if !n.IsLeader() {
		return ForceAssignResult{}, ErrNotLeader
	}
	var assigned []uint32
	v, err := n.leaderApply(ctx, func(t *metadata.RoutingTable) (fsm.CommandType, *fsm.Change, error) {
		assigned = assigned[:0]
		alive := t.AliveMembers()
		if len(alive) == 0 {
			return 0, nil, fmt.Errorf("%w: no alive member to own partitions", ErrNotReady)
		}
		if req.Owner != "" {
			m, ok := t.Member(req.Owner)
			if !ok || m.State != metadata.MemberAlive {
				return 0, nil, fmt.Errorf("%w: %s is not an alive member", ErrUnknownMember, req.Owner)
			}
		}
		targets := req.Partitions
		if len(targets) == 0 {
			for _, p := range t.Partitions {
				if p.State == metadata.PartitionUnavailable {
					targets = append(targets, p.ID)
				}
			}
			if len(targets) == 0 {
				return 0, nil, nil
			}
		}
		work := t.Clone()
		loads := t.Loads()
		for _, id := range targets {
			p, ok := work.Partition(id)
			if !ok {
				return 0, nil, fmt.Errorf("%w: partition %d does not exist (0 to %d)", ErrInvalidArgument, id, t.PartitionCount-1)
			}
			if p.State != metadata.PartitionUnavailable {
				return 0, nil, fmt.Errorf("%w: partition %d is %s with primary %q", ErrPartitionAvailable, id, p.State, p.Primary)
			}
			owner := req.Owner
			if owner == "" { // the alive member with the fewest primaries
				owner = alive[0]
				for _, a := range alive[1:] {
					if loads[a].Primaries < loads[owner].Primaries {
						owner = a
					}
				}
			}
			l := loads[owner]
			l.Primaries++
			loads[owner] = l
			work.Partitions[id] = metadata.Partition{ID: id, Primary: owner, State: metadata.PartitionActive, LeaderEpoch: p.LeaderEpoch + 1}
			assigned = append(assigned, id)
		}
		// Fill the backups of the forced partitions (they are empty too).
		next, err := metadata.Place(work.Partitions, work.PartitionCount, work.Replicas, alive)
		if err != nil {
			return 0, nil, err
		}
		ch := &fsm.Change{Reason: fmt.Sprintf("DATA LOSS: operator force-assigned %d unavailable partitions to new, empty owners", len(assigned))}
		for _, id := range assigned {
			ch.Partitions = append(ch.Partitions, next[id])
		}
		return fsm.CommandForceAssign, ch, nil
	})
	if err != nil {
		return ForceAssignResult{}, err
	}
	n.triggerReconcile()
	return ForceAssignResult{RoutingVersion: v, Partitions: assigned}, nil
}
