package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

// watchLeadership runs the leader loop for as long as this node is the Raft
// leader. It is the only goroutine that starts or stops the leader loop.
func (n *Node) watchLeadership(notify <-chan bool) {
	defer n.wg.Done()
	var (
		leaderStop chan struct{}
		leaderDone chan struct{}
	)
	stopLeader := func() {
		if leaderStop != nil {
			close(leaderStop)
			<-leaderDone
			leaderStop, leaderDone = nil, nil
			n.leaderReadyTerm.Store(0)
			n.leases.reset()
		}
	}
	defer stopLeader()
	for {
		select {
		case <-n.stop:
			return
		case isLeader := <-notify:
			switch {
			case isLeader && leaderStop == nil:
				leaderStop, leaderDone = make(chan struct{}), make(chan struct{})
				go func(stop, done chan struct{}) {
					defer close(done)
					n.leaderLoop(stop)
				}(leaderStop, leaderDone)
			case !isLeader:
				stopLeader()
			}
		}
	}
}

// leaderLoop is run by the leader: a Barrier first (so its FSM has applied
// every entry of earlier terms), then level-triggered reconciliation from
// scratch, on every memberlist event, every ReconcileInterval and at the
// next instant a member's lease expires.
func (n *Node) leaderLoop(stop <-chan struct{}) {
	term := n.raft.CurrentTerm()
	n.log.Info("became raft leader", "term", term)
	// A new term starts from no grant at all (lease.go).
	n.leases.reset()
	for {
		if err := n.futureError(n.raft.Barrier(5 * time.Second)); err == nil {
			break
		} else {
			n.log.Warn("leader barrier failed", "err", err)
		}
		select {
		case <-stop:
			return
		case <-time.After(n.cfg.Timing.ReconcileInterval):
		}
	}
	// readyAt before readyTerm: every grant of this term comes after it.
	n.leases.setReady(time.Now())
	n.leaderReadyTerm.Store(term)
	rl := &reconciler{n: n, absentSince: make(map[metadata.NodeID]time.Time), since: time.Now()}
	ticker := time.NewTicker(n.cfg.Timing.ReconcileInterval)
	defer ticker.Stop()
	leaseWake := time.NewTimer(time.Hour)
	leaseWake.Stop()
	defer leaseWake.Stop()
	for {
		// Run reconcile steps until nothing is left to change (each step
		// proposes at most one entry and re-reads the committed state).
		for range 64 {
			changed, err := rl.step()
			if errors.Is(err, fsm.ErrVersionConflict) {
				// Another entry (a member's replica_in_sync, a
				// mark_written) committed since the step read the
				// table: expected while partitions move. The entry
				// that won kicks the loop again (or the next tick
				// does); stepping again at once made the leader flood
				// the log with conflicting proposals.
				n.log.Debug("reconcile step raced another entry", "err", err)
				break
			}
			if err != nil {
				if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
					n.log.Warn("reconcile step failed", "err", err)
				}
				break
			}
			if !changed {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
		}
		// Re-run right after the next lease expiry, so a failover waits
		// for the lease and not for the next tick.
		if at, ok := n.nextLeaseExpiry(n.fsm.Routing(), time.Now()); ok {
			leaseWake.Reset(time.Until(at) + time.Millisecond)
		} else {
			leaseWake.Stop()
		}
		select {
		case <-stop:
			return
		case <-n.kick:
		case <-ticker.C:
		case <-leaseWake.C:
		}
	}
}

// triggerReconcile wakes the leader loop without blocking.
func (n *Node) triggerReconcile() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// reconciler holds the leader's soft state for one term.
type reconciler struct {
	n *Node
	// since is when this term's reconciliation started; a member is not
	// declared failed for being unknown to gossip before failGrace passed.
	since       time.Time
	absentSince map[metadata.NodeID]time.Time
	// refusedAt is when a gossip member's cluster port last failed the
	// probe of clusterPortAccepts, by member and incarnation.
	refusedAt map[string]time.Time
}

// clusterPortAccepts reports whether the gossip member g may become a Raft
// server. With TLS, gossip alone (which knows nothing of certificates)
// must not let a member in: the leader first pings its cluster port, which
// fails unless both sides accept each other's certificate. A refused
// member is probed again at most every few reconcile intervals. Without
// TLS it is always true.
func (r *reconciler) clusterPortAccepts(id metadata.NodeID, g gossipMember, now time.Time) bool {
	n := r.n
	if n.tls == nil {
		return true
	}
	key := string(id) + "/" + g.Meta.Incarnation
	backoff := max(5*n.cfg.Timing.ReconcileInterval, time.Second)
	if at, ok := r.refusedAt[key]; ok && now.Sub(at) < backoff {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := n.rpc.Call(ctx, g.Meta.ClusterAddr, methodPing, struct{}{}, nil)
	cancel()
	if err != nil {
		if r.refusedAt == nil {
			r.refusedAt = make(map[string]time.Time)
		}
		if _, again := r.refusedAt[key]; !again {
			n.log.Warn("not adding member: its cluster port refused the TLS handshake or did not answer",
				"member", id, "addr", g.Meta.ClusterAddr, "err", err)
		}
		r.refusedAt[key] = now
		return false
	}
	delete(r.refusedAt, key)
	return true
}

// failGrace is how long a member may be absent from this node's gossip view
// (never reported dead, e.g. because this leader just started) before it is
// declared failed.
func (r *reconciler) failGrace() time.Duration {
	t := r.n.cfg.Timing
	return time.Duration(4*t.GossipSuspicionMult+4) * t.GossipProbeInterval
}

// desired is what the leader observes: live gossip members with their
// metadata and the Raft configuration.
type observed struct {
	table   *metadata.RoutingTable
	gossip  map[metadata.NodeID]gossipMember
	servers []raft.Server
	cfgIdx  uint64
}

func (r *reconciler) observe() (observed, error) {
	n := r.n
	o := observed{table: n.fsm.Routing(), gossip: make(map[metadata.NodeID]gossipMember)}
	for _, g := range n.gossipMembers() {
		o.gossip[g.ID] = g
	}
	servers, idx, err := n.raftServers()
	if err != nil {
		return o, err
	}
	o.servers, o.cfgIdx = servers, idx
	return o, nil
}

func (o observed) server(id metadata.NodeID) (raft.Server, bool) {
	for _, s := range o.servers {
		if string(s.ID) == string(id) {
			return s, true
		}
	}
	return raft.Server{}, false
}

// gone reports whether member m (of the routing table) is known to be gone:
// memberlist declared it dead or left, or it has been absent from gossip
// longer than the grace period.
func (r *reconciler) gone(o observed, id metadata.NodeID, now time.Time) bool {
	if _, ok := o.gossip[id]; ok {
		delete(r.absentSince, id)
		return false
	}
	if id == r.n.cfg.NodeID {
		return false
	}
	if _, ok := r.n.delegate.gone(id); ok {
		return true
	}
	first, ok := r.absentSince[id]
	if !ok {
		r.absentSince[id] = now
		first = now
	}
	return now.Sub(first) >= r.failGrace() && now.Sub(r.since) >= r.failGrace()
}

// failed reports whether alive member id is to be declared failed now.
// Either trigger counts: memberlist says it is gone, or its lease lapsed
// (no grant, nor join, nor start of this leader's term, for LeaseDuration
// plus drift); but in both cases only once its lease has surely expired
// (lease.go), so a lapsed lease alone is enough and memberlist's verdict
// never is. The leader never declares itself failed.
func (r *reconciler) failed(o observed, id metadata.NodeID, now time.Time) bool {
	if id == r.n.cfg.NodeID {
		return false
	}
	gone := r.gone(o, id, now) // also keeps absentSince current
	_, expired := r.n.leaseExpiry(id, now)
	lapsed := expired
	return (gone || lapsed) && expired
}

// step makes at most one change (a Raft configuration change or one routing
// entry) and reports whether it made one.
func (r *reconciler) step() (bool, error) {
	o, err := r.observe()
	if err != nil {
		return false, err
	}
	now := time.Now()
	t := o.table

	// 1. Raft configuration: every live gossip member that is not leaving
	//    becomes a Raft server: a voter while fewer than RaftVoters live
	//    voters exist, else a non-voter.
	if changed, err := r.reconcileRaft(o, now); changed || err != nil {
		return changed, err
	}

	// 2. The first routing table, from the members that are Raft servers.
	if !t.Initialized() {
		return r.initRouting(o)
	}

	// 3. Members: rejoin with a new incarnation, join, failure, leave.
	for _, m := range t.Members {
		g, live := o.gossip[m.ID]
		switch {
		case live && g.Meta.Incarnation != m.Incarnation:
			if _, ok := o.server(m.ID); !ok {
				continue // wait until it is a Raft server again
			}
			nm := memberFromGossip(g, o)
			r.n.leaseAssumeGranted(m.ID, now)
			return r.propose(fsm.CommandMemberJoin, t, []metadata.Member{nm}, nil, without(t.AliveMembers(), m.ID),
				fmt.Sprintf("member %s restarted (incarnation %s -> %s): its replicas are dropped", m.ID, m.Incarnation, g.Meta.Incarnation))
		case live && m.State == metadata.MemberFailed && r.n.leaseContactRecent(m.ID, now):
			// Only once it renews with this leader again: gossip alone
			// would make a member cut off from the leader flap.
			nm := memberFromGossip(g, o)
			r.n.leaseAssumeGranted(m.ID, now)
			return r.propose(fsm.CommandMemberJoin, t, []metadata.Member{nm}, nil, t.AliveMembers(),
				fmt.Sprintf("member %s is reachable again; it rejoins empty", m.ID))
		case m.State == metadata.MemberAlive && r.failed(o, m.ID, now):
			// Every member whose lease ran out fails in this one entry:
			// failing them one by one could promote a member that is
			// itself about to fail, and reset the surviving backups to
			// refill from it (found by the Jepsen harness: a 2|3 split
			// left partitions unavailable whose data the majority had).
			// And while another member has missed several renewals but
			// not yet expired (it was cut off with this one, a few
			// milliseconds apart), wait for it: it expires within a lease
			// period, then both fail together.
			var failing []metadata.Member
			var ids []string
			eligible := t.AliveMembers()
			for _, x := range t.Members {
				if x.State != metadata.MemberAlive {
					continue
				}
				if x.ID == m.ID || r.failed(o, x.ID, now) {
					fx := x
					fx.State = metadata.MemberFailed
					failing = append(failing, fx)
					ids = append(ids, string(x.ID))
					eligible = without(eligible, x.ID)
				} else if r.n.leaseSuspect(x.ID, now) {
					r.n.log.Info("failover waits for a member that stopped renewing its lease", "failed", m.ID, "suspect", x.ID)
					return false, nil
				}
			}
			ok, err := r.propose(fsm.CommandMemberFailed, t, failing, nil, eligible,
				fmt.Sprintf("member %s failed", strings.Join(ids, ", ")))
			if ok && err == nil {
				r.n.stats.membersFailed.Add(uint64(len(failing)))
			}
			return ok, err
		case m.State == metadata.MemberLeaving && !live && r.gone(o, m.ID, now):
			return r.propose(fsm.CommandMemberRemove, t, nil, []metadata.NodeID{m.ID}, t.AliveMembers(),
				fmt.Sprintf("member %s left", m.ID))
		}
	}
	for _, id := range sortedKeys(o.gossip) {
		g := o.gossip[id]
		if _, ok := t.Member(id); ok {
			continue
		}
		if t.HasDeparted(id, g.Meta.Incarnation) {
			continue
		}
		if _, ok := o.server(id); !ok {
			continue
		}
		nm := memberFromGossip(g, o)
		r.n.leaseAssumeGranted(id, now)
		return r.propose(fsm.CommandMemberJoin, t, []metadata.Member{nm}, nil, append(t.AliveMembers(), id),
			fmt.Sprintf("member %s joined", id))
	}

	// 4. Voter flags in the table follow the Raft configuration.
	for _, m := range t.Members {
		s, ok := o.server(m.ID)
		voter := ok && s.Suffrage == raft.Voter
		if m.Voter != voter {
			um := m
			um.Voter = voter
			return r.propose(fsm.CommandSetVoter, t, []metadata.Member{um}, nil, nil,
				fmt.Sprintf("member %s voter=%t", m.ID, voter))
		}
	}

	// 5. Balance.
	return r.propose(fsm.CommandRebalance, t, nil, nil, t.AliveMembers(), "rebalance")
}

// reconcileRaft adds live members to the Raft configuration, promotes a
// non-voter when a voter is gone, and removes servers that are gone.
func (r *reconciler) reconcileRaft(o observed, now time.Time) (bool, error) {
	n := r.n
	t := o.table
	liveVoters := 0
	var liveNonvoters []metadata.NodeID
	for _, s := range o.servers {
		id := metadata.NodeID(s.ID)
		_, live := o.gossip[id]
		if !live && id != n.cfg.NodeID {
			continue
		}
		if s.Suffrage == raft.Voter {
			liveVoters++
		} else if m, ok := t.Member(id); !ok || m.State == metadata.MemberAlive {
			liveNonvoters = append(liveNonvoters, id)
		}
	}
	timeout := 5 * time.Second
	// Add live gossip members that are not Raft servers.
	for _, id := range sortedKeys(o.gossip) {
		g := o.gossip[id]
		if _, ok := o.server(id); ok {
			continue
		}
		if t.HasDeparted(id, g.Meta.Incarnation) {
			continue // removed at this incarnation: a stale gossip view
		}
		if m, ok := t.Member(id); ok && m.State == metadata.MemberLeaving && m.Incarnation == g.Meta.Incarnation {
			continue // it is on its way out
		}
		if !r.clusterPortAccepts(id, g, now) {
			continue // TLS refused (a foreign certificate): never a server
		}
		var f raft.IndexFuture
		if liveVoters < n.cfg.RaftVoters {
			n.log.Info("adding raft voter", "member", id, "addr", g.Meta.ClusterAddr)
			f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(g.Meta.ClusterAddr), o.cfgIdx, timeout)
		} else {
			n.log.Info("adding raft non-voter", "member", id, "addr", g.Meta.ClusterAddr)
			f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(g.Meta.ClusterAddr), o.cfgIdx, timeout)
		}
		return true, n.futureError(f)
	}
	// Keep the number of live voters: promote a healthy non-voter.
	if liveVoters < n.cfg.RaftVoters && len(liveNonvoters) > 0 {
		slices.Sort(liveNonvoters)
		id := liveNonvoters[0]
		s, _ := o.server(id)
		n.log.Info("promoting non-voter to voter", "member", id)
		return true, n.futureError(n.raft.AddVoter(s.ID, s.Address, o.cfgIdx, timeout))
	}
	// Remove servers that are gone: failed or removed members, but a failed
	// voter only once the live voters are back at the target (so the voter
	// set never shrinks below what it had).
	for _, s := range o.servers {
		id := metadata.NodeID(s.ID)
		if id == n.cfg.NodeID {
			continue
		}
		if _, live := o.gossip[id]; live {
			if m, ok := t.Member(id); !ok || m.State != metadata.MemberLeaving || m.Incarnation != o.gossip[id].Meta.Incarnation {
				continue
			}
			// a leaving member that still gossips is removed from Raft
		} else {
			m, inTable := t.Member(id)
			if inTable && m.State == metadata.MemberAlive {
				continue // not yet declared failed
			}
			if !inTable && !t.Initialized() {
				continue
			}
			if !inTable && !r.gone(o, id, now) {
				continue
			}
		}
		if m, ok := t.Member(id); ok && m.State == metadata.MemberLeaving && s.Suffrage == raft.Voter {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := n.prepareVoterRemoval(ctx, id)
			cancel()
			if err != nil {
				n.log.Warn("not removing leaving voter yet", "member", id, "err", err)
				continue
			}
		} else if s.Suffrage == raft.Voter && liveVoters < n.cfg.RaftVoters {
			// Keep a dead voter until a replacement is promoted: removing
			// it would shrink the voter set and its fault tolerance; if it
			// comes back (same node id) it simply catches up.
			continue
		}
		n.log.Info("removing raft server", "member", id, "suffrage", s.Suffrage.String())
		return true, n.futureError(n.raft.RemoveServer(s.ID, o.cfgIdx, timeout))
	}
	return false, nil
}

// initRouting proposes InitRouting with every live member that is a Raft
// server. With --bootstrap-expect N that is the N bootstrapping members.
func (r *reconciler) initRouting(o observed) (bool, error) {
	n := r.n
	var members []metadata.Member
	var ids []metadata.NodeID
	for _, id := range sortedKeys(o.gossip) {
		if _, ok := o.server(id); !ok {
			continue
		}
		members = append(members, memberFromGossip(o.gossip[id], o))
		ids = append(ids, id)
	}
	if len(members) == 0 {
		return false, nil
	}
	if n.cfg.BootstrapExpect > 0 && len(members) < n.cfg.BootstrapExpect {
		return false, nil // wait for every expected member to be a Raft server
	}
	parts, err := metadata.Place(nil, n.cfg.PartitionCount, n.cfg.Replicas, ids)
	if err != nil {
		return false, err
	}
	cmd, err := fsm.Encode(fsm.CommandInitRouting, &fsm.InitRouting{
		PartitionCount: n.cfg.PartitionCount, Replicas: n.cfg.Replicas, Members: members, Partitions: parts,
	})
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		n.leaseAssumeGranted(id, time.Now())
	}
	n.log.Info("proposing initial routing table", "members", len(members), "partitions", n.cfg.PartitionCount, "replicas", n.cfg.Replicas)
	return true, n.applyCommand(cmd)
}

// propose computes placement for the eligible members (when eligible is
// non-nil) and proposes one change, unless it would change nothing.
func (r *reconciler) propose(typ fsm.CommandType, t *metadata.RoutingTable, upsert []metadata.Member,
	remove []metadata.NodeID, eligible []metadata.NodeID, reason string) (bool, error) {
	var parts []metadata.Partition
	if eligible != nil || typ == fsm.CommandRebalance {
		var summary string
		var err error
		parts, summary, err = replan(t, eligible)
		if err != nil {
			return false, err
		}
		if len(parts) > 0 {
			reason += "; " + summary
		}
	}
	if len(upsert) == 0 && len(remove) == 0 && len(parts) == 0 {
		return false, nil
	}
	cmd, err := fsm.Encode(typ, &fsm.Change{
		ExpectVersion: t.Version, Upsert: upsert, Remove: remove, Partitions: parts, Reason: reason,
	})
	if err != nil {
		return false, err
	}
	return true, r.n.applyCommand(cmd)
}

// replan places t's partitions over the eligible members and returns the
// partitions that change, with a one-line summary. With no eligible member
// at all, every partition that still has replicas becomes unavailable: the
// members holding it are gone (or restarted empty), and a CP store does not
// re-create data it lost.
func replan(t *metadata.RoutingTable, eligible []metadata.NodeID, draining ...metadata.NodeID) ([]metadata.Partition, string, error) {
	var next []metadata.Partition
	if len(eligible) == 0 {
		next = make([]metadata.Partition, len(t.Partitions))
		for i, p := range t.Partitions {
			next[i] = p.Clone()
			if p.State != metadata.PartitionUnavailable {
				next[i] = metadata.Partition{ID: p.ID, State: metadata.PartitionUnavailable, LeaderEpoch: p.LeaderEpoch + 1}
			}
		}
	} else {
		cur := stripSyncingOfLostPrimaries(t.Partitions, eligible)
		if len(draining) > 0 {
			// A draining (leaving) member still holds its data and hands it
			// over: a partition held only by draining members is placed
			// afresh (not declared lost); the FSM keeps its Written flag
			// and records the drainer as the previous primary to pull from.
			cur = slices.Clone(cur)
			for i, p := range cur {
				// (cur's backups are shared with t: only whole fields are
				// replaced below, never their elements.)
				reps := p.Replicas()
				if p.Written && len(reps) > 0 && !slices.ContainsFunc(reps, func(r metadata.NodeID) bool {
					return !slices.Contains(draining, r)
				}) {
					cur[i].Written = false
				}
			}
		}
		var err error
		next, err = metadata.Place(cur, t.PartitionCount, t.Replicas, eligible)
		if err != nil {
			return nil, "", err
		}
	}
	if len(eligible) > 0 {
		next = stageMoves(t, next, eligible)
	}
	var changed []metadata.Partition
	for i := range next {
		if !next[i].Equal(t.Partitions[i]) {
			changed = append(changed, next[i])
		}
	}
	return changed, metadata.Summarize(t.Partitions, next), nil
}

// applyCommand proposes cmd and waits for it to be applied here.
func (n *Node) applyCommand(cmd []byte) error {
	f, err := n.timedApply(cmd, 10*time.Second)
	if err != nil {
		return err
	}
	if res, ok := f.Response().(fsm.ApplyResult); ok && res.Err != nil {
		return res.Err
	}
	return nil
}

func memberFromGossip(g gossipMember, o observed) metadata.Member {
	s, ok := o.server(g.ID)
	return metadata.Member{
		ID:          g.ID,
		Incarnation: g.Meta.Incarnation,
		ClusterAddr: g.Meta.ClusterAddr,
		GossipAddr:  g.GossipAddr,
		HTTPAddr:    g.Meta.HTTPAddr,
		RESPAddr:    g.Meta.RESPAddr,
		State:       metadata.MemberAlive,
		Voter:       ok && s.Suffrage == raft.Voter,
	}
}

func without(ids []metadata.NodeID, id metadata.NodeID) []metadata.NodeID {
	out := make([]metadata.NodeID, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[metadata.NodeID]V) []metadata.NodeID {
	out := make([]metadata.NodeID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stripSyncingOfLostPrimaries returns parts where every partition whose
// primary is not eligible (failed, leaving or removed) has lost its
// syncing backups: they may lack acknowledged writes, so placement must
// not promote them. Placement then promotes an in-sync backup, or finds
// none and makes a written partition unavailable. parts is not modified.
func stripSyncingOfLostPrimaries(parts []metadata.Partition, eligible []metadata.NodeID) []metadata.Partition {
	out := parts
	copied := false
	for i, p := range parts {
		if len(p.Syncing) == 0 || p.Primary == "" || slices.Contains(eligible, p.Primary) {
			continue
		}
		if !copied {
			out = slices.Clone(parts)
			copied = true
		}
		q := p.Clone()
		q.Backups = p.InSyncBackups()
		q.Syncing = nil
		out[i] = q
	}
	return out
}

// stageMoves turns placement's moves of written data into staged moves, so
// that no partition stops serving while its data is copied and none has
// fewer in-sync copies meanwhile (DESIGN §4, handoff):
//
//   - a new primary that does not hold the partition in sync is first
//     added as a backup (first in Backups, so placement's trimming keeps
//     it), while the current primary keeps serving and keeps every backup;
//     it is filled from the primary and reported in sync, and then the
//     next reconcile pass makes it primary: a promotion, which needs no
//     copy and pauses the partition only for one commit and a fence;
//   - a backup being replaced by a member that is not yet in sync stays
//     until the new one is.
//
// A promotion waits while its new primary is still being filled with
// other partitions (it holds a syncing replica anywhere): then the
// partition stays as it is for now, and all of that member's promotions
// go together once its copies are done. A promotion pauses its partition
// for a fence call to the old primary, and while copies saturate the
// members that call waits for a CPU (at 1M keys on 2 cores the pauses were
// about 50-130 ms; the copies end either way, and sooner without the
// promotions' work in between).
//
// The staged form has at most one extra, syncing, replica. Placement sees
// it trimmed back (the extra backup is the last one) and asks for the same
// move again until the target is in sync, so staging converges. Moves away
// from members that are not eligible (failed, leaving) are not staged:
// those are failovers. next is Place's result for t; the result may share
// memory with next.
func stageMoves(t *metadata.RoutingTable, next []metadata.Partition, eligible []metadata.NodeID) []metadata.Partition {
	filling := map[metadata.NodeID]bool{} // members holding a syncing replica
	for i := range t.Partitions {
		for _, b := range t.Partitions[i].Syncing {
			filling[b] = true
		}
	}
	for i := range next {
		cur, nx := t.Partitions[i], next[i]
		if !cur.Written || cur.State != metadata.PartitionActive || nx.State != metadata.PartitionActive {
			continue
		}
		switch {
		case nx.Primary != cur.Primary:
			if !slices.Contains(eligible, cur.Primary) {
				continue // a failover
			}
			if cur.InSync(nx.Primary) {
				if filling[nx.Primary] && !slices.ContainsFunc(cur.Backups, func(b metadata.NodeID) bool { return !slices.Contains(eligible, b) }) {
					next[i] = cur // promoted once its other copies are done
				}
				continue
			}
			staged := cur.Clone()
			staged.Backups = append([]metadata.NodeID{nx.Primary}, slices.DeleteFunc(slices.Clone(cur.Backups), func(b metadata.NodeID) bool {
				return b == nx.Primary || !slices.Contains(eligible, b)
			})...)
			if len(staged.Backups) > t.Replicas { // primary + Replicas backups = one extra
				staged.Backups = staged.Backups[:t.Replicas]
			}
			next[i] = staged
		default:
			// Same primary: keep one in-sync backup that placement drops
			// while a backup it adds is not in sync yet.
			filling := slices.ContainsFunc(nx.Backups, func(b metadata.NodeID) bool { return !cur.InSync(b) })
			if !filling || len(nx.Replicas()) > t.Replicas {
				continue
			}
			for _, b := range cur.InSyncBackups() {
				if !slices.Contains(nx.Backups, b) && slices.Contains(eligible, b) {
					kept := nx.Clone()
					kept.Backups = append(kept.Backups, b)
					next[i] = kept
					break
				}
			}
		}
	}
	return next
}
