package node

// # Partition-primary leases (soft state, renewed with the Raft leader)
//
// A primary may serve reads and writes only while it holds a lease, and the
// leader never commits a failover away from a member before that member's
// lease has surely expired. This file implements the first of the two
// designs DESIGN.md §4 allows: soft-state leases renewed by a heartbeat RPC
// to the Raft leader, as Kafka KRaft brokers heartbeat to the active
// controller. Nothing about leases is written to the Raft log: a lease is a
// promise between one member and the leader of one term, and it costs no
// log entry per renewal (epoch leases in the FSM would cost one entry per
// member per renewal, or a bump that revokes every lease of a member).
//
// Member side (every member, the leader included): leaseLoop asks the
// current leader for a grant every Timing.LeaseRenewInterval. Before
// sending it reads its monotonic clock (sent); on a grant its lease runs
// until sent + LeaseDuration. Counting from the send time, not the receipt
// of the reply, makes the member's view of its lease always end before the
// leader's view: the leader records the grant when the request arrives,
// which is after sent, and the leader waits LeaseDuration plus a drift
// margin after that. Only elapsed durations on each side's own monotonic
// clock are compared, never wall clocks; the margin
// (Timing.LeaseDriftMargin) covers the clocks' rate drift and timer slack.
//
// A grant carries the leader's FSM-applied index at grant time; the member
// counts the grant only once its own FSM applied that index (bounded by the
// lease's own end). So every routing change the leader had committed
// before the grant (in particular a failover away from this member) is
// visible here before the lease counts: a member that comes back after it
// was failed over cannot serve from the old table it still holds, because
// its first lease after coming back already makes it apply the failover.
//
// Leader side: it grants only while it is the Raft leader and has committed
// the first Barrier of its term (so its FSM is current), and only to a
// member it does not know yet (not joined: it is primary of nothing, so the
// lease is harmless) or that is in the routing table with the same
// incarnation and not failed. It records the receipt time of every grant.
// The reconciler commits MemberFailed for m only when
// now - max(last grant to m, leaderReadyAt) > LeaseDuration + drift, and an
// expired lease is by itself a failure trigger (besides memberlist saying
// m is gone), so after a kill -9 failover takes about LeaseDuration + drift
// instead of memberlist's suspicion timeout. A timer set to the next lease
// expiry re-runs the reconcile loop, so failover does not wait for the next
// ReconcileInterval tick. The leader never declares itself failed.
//
// A new leader does not know the grants its predecessor made, so it starts
// from nothing: leaderReadyAt (its first Barrier of the term) counts as a
// grant to everyone, and no failover happens before one lease period plus
// drift after it. Any grant the old leader made was sent before the old
// leader lost leadership, which is before the new leader was elected.
//
// Every grant, the leader's grant to itself included, is made only after
// a VerifyLeader round that started after the request arrived: a quorum
// confirmed this leader's term then, so no newer leader had been elected
// before the member sent its request, and any newer leader waits a lease
// period plus drift after taking office before failing anyone over. (A
// leader's belief alone is not enough: a leader paused with SIGSTOP still
// believes it leads when it resumes, until its own lease check runs; the
// Jepsen harness caught a resumed old leader granting itself a lease and
// serving a stale read before this.) Concurrent verifications share one
// heartbeat round.
//
// Membership changes made by the leader count as grants too: when it
// commits a member joining (new, restarted with a new incarnation, or
// rejoining after a failure) it notes a grant at that moment, so the member
// has a full lease period to renew before an expired lease could fail it
// again. A failed member rejoins only once the leader heard a heartbeat
// from it recently (memberlist alone is not enough: a member that gossips
// but cannot reach the leader would otherwise flap between failed and
// rejoined).

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// methodLease: leader only: a member asks for (renews) its primary lease.
const methodLease = "node.lease"

type leaseRequest struct {
	ID          metadata.NodeID `msgpack:"id"`
	Incarnation string          `msgpack:"inc"`
}

type leaseResponse struct {
	Granted bool `msgpack:"g"`
	// Index is the leader's FSM-applied index at grant time: the member
	// counts the grant once it applied that far.
	Index uint64 `msgpack:"i"`
	// Reason says why a grant was refused.
	Reason string `msgpack:"r,omitempty"`
}

// leaderLeases is the leader's soft lease state for one term. It starts
// empty in every term (the new leader does not know its predecessor's
// grants).
type leaderLeases struct {
	mu sync.Mutex
	// grants is when the leader last received a renewal it granted (or
	// committed the member joining), per member; monotonic times.
	grants map[metadata.NodeID]time.Time
	// contacts is when the leader last heard a renewal from a member at
	// its routing-table incarnation (or unknown to the table), granted or
	// not.
	contacts map[metadata.NodeID]time.Time
	// readyAt is when this term's leader loop committed its first Barrier;
	// zero when not leader.
	readyAt time.Time
}

// reset forgets every grant: leadership was gained or lost.
func (l *leaderLeases) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grants = make(map[metadata.NodeID]time.Time)
	l.contacts = make(map[metadata.NodeID]time.Time)
	l.readyAt = time.Time{}
}

func (l *leaderLeases) setReady(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readyAt = at
}

func (l *leaderLeases) record(id metadata.NodeID, at time.Time, granted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.grants == nil {
		l.grants = make(map[metadata.NodeID]time.Time)
		l.contacts = make(map[metadata.NodeID]time.Time)
	}
	if at.After(l.contacts[id]) {
		l.contacts[id] = at
	}
	if granted && at.After(l.grants[id]) {
		l.grants[id] = at
	}
}

// last returns max(last grant to id, readyAt).
func (l *leaderLeases) last(id metadata.NodeID) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.readyAt
	if g := l.grants[id]; g.After(last) {
		last = g
	}
	return last
}

func (l *leaderLeases) lastContact(id metadata.NodeID) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.contacts[id]
	return t, ok
}

// LeaseValid reports whether this member currently holds its primary
// lease: the leader granted a renewal sent less than LeaseDuration ago, and
// this member's FSM applied what the leader had applied at grant time.
func (n *Node) LeaseValid() bool {
	return n.LeaseRemaining() > 0
}

// LeaseRemaining returns how long this member's primary lease still runs
// on its monotonic clock (0 when it holds none).
func (n *Node) LeaseRemaining() time.Duration {
	rem := time.Duration(n.leaseUntil.Load()) - time.Since(n.startedAt)
	return max(rem, 0)
}

// extendLease moves the end of this member's lease to until, if later.
func (n *Node) extendLease(until time.Time) {
	v := int64(until.Sub(n.startedAt))
	for {
		cur := n.leaseUntil.Load()
		if v <= cur || n.leaseUntil.CompareAndSwap(cur, v) {
			return
		}
	}
}

// leaseLoop renews this member's lease with the Raft leader every
// LeaseRenewInterval until the node stops. It logs only transitions.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(n.cfg.Timing.LeaseRenewInterval)
	defer tick.Stop()
	held := false
	var lastErr error
	for {
		err := n.renewLease(ctx)
		if err != nil {
			lastErr = err
			n.stats.leaseRenewFailed.Add(1)
		} else {
			n.stats.leaseRenewed.Add(1)
		}
		valid := n.LeaseValid()
		switch {
		case valid && !held:
			n.log.Info("primary lease renewed", "remaining", n.LeaseRemaining())
			lastErr = nil
		case !valid && held:
			n.stats.leaseExpired.Add(1)
			n.log.Warn("primary lease expired", "last_err", lastErr)
		}
		held = valid
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
	}
}

// renewLease asks the leader for one grant and, once this member's FSM has
// applied the grant's index, extends the lease to sent + LeaseDuration.
func (n *Node) renewLease(ctx context.Context) error {
	t := n.cfg.Timing
	sent := time.Now()
	until := sent.Add(t.LeaseDuration)
	rctx, cancel := context.WithTimeout(ctx, 2*t.LeaseRenewInterval)
	resp, err := n.requestLease(rctx)
	cancel()
	if err != nil {
		return err
	}
	if !resp.Granted {
		return fmt.Errorf("lease refused by the leader: %s", resp.Reason)
	}
	wctx, wcancel := context.WithDeadline(ctx, until)
	_, err = n.fsm.WaitApplied(wctx, resp.Index)
	wcancel()
	if err != nil {
		return fmt.Errorf("lease granted at index %d, not applied here before it ended: %w", resp.Index, err)
	}
	n.extendLease(until)
	return nil
}

// requestLease asks the current leader (itself, directly, when this node
// leads) for a grant.
func (n *Node) requestLease(ctx context.Context) (leaseResponse, error) {
	req := leaseRequest{ID: n.cfg.NodeID, Incarnation: n.incarnation}
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return leaseResponse{}, ErrNoLeader
	}
	if metadata.NodeID(id) == n.cfg.NodeID {
		return n.leaderGrantLease(req)
	}
	var resp leaseResponse
	if err := n.rpc.Call(ctx, string(addr), methodLease, &req, &resp); err != nil {
		return leaseResponse{}, fmt.Errorf("renewing lease with leader %s: %w", id, fromRemote(err))
	}
	return resp, nil
}

// leaderGrantLease decides one renewal on the leader. Refusals for
// membership reasons are a reply (Granted false); not being the ready
// leader is an error.
func (n *Node) leaderGrantLease(req leaseRequest) (leaseResponse, error) {
	if n.raft.State() != raft.Leader {
		return leaseResponse{}, ErrNotLeader
	}
	term := n.raft.CurrentTerm()
	if term == 0 || n.leaderReadyTerm.Load() != term {
		return leaseResponse{}, fmt.Errorf("%w: leader has not committed its first barrier of term %d", ErrNotReady, term)
	}
	// Confirm leadership with a quorum after the request arrived: a
	// leader that was paused (SIGSTOP) still believes it leads when it
	// resumes, until its own lease check runs, and must not grant from
	// that belief — a newer leader may have failed members over meanwhile
	// (found by the Jepsen harness: the resumed old leader granted itself
	// a lease and served a stale read). Concurrent verifications share
	// one heartbeat round.
	if err := n.verifyLeader(); err != nil {
		return leaseResponse{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if n.raft.CurrentTerm() != term {
		return leaseResponse{}, fmt.Errorf("%w: term changed while granting a lease", ErrNotLeader)
	}
	now := time.Now()
	t := n.fsm.Routing()
	// Read after the table: the FSM publishes a table before it advances
	// the applied index, so idx covers t.
	idx := n.fsm.AppliedIndex()
	m, known := t.Member(req.ID)
	switch {
	case !known:
		n.leases.record(req.ID, now, true)
		n.stats.leaseGranted.Add(1)
		return leaseResponse{Granted: true, Index: idx}, nil
	case m.Incarnation != req.Incarnation:
		return leaseResponse{Index: idx, Reason: fmt.Sprintf("routing table v%d has %s at incarnation %s, not %s",
			t.Version, req.ID, m.Incarnation, req.Incarnation)}, nil
	case m.State == metadata.MemberFailed:
		n.leases.record(req.ID, now, false)
		return leaseResponse{Index: idx, Reason: fmt.Sprintf("routing table v%d has %s failed; it rejoins first", t.Version, req.ID)}, nil
	}
	n.leases.record(req.ID, now, true)
	n.stats.leaseGranted.Add(1)
	return leaseResponse{Granted: true, Index: idx}, nil
}

func (n *Node) serveLease(body []byte) ([]byte, error) {
	var req leaseRequest
	if err := msgpack.Unmarshal(body, &req); err != nil {
		return nil, toRemote(fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	resp, err := n.leaderGrantLease(req)
	if err != nil {
		return nil, toRemote(err)
	}
	return msgpack.Marshal(resp)
}

// leaseWait is how long after the last grant the leader treats a lease as
// surely expired.
func (n *Node) leaseWait() time.Duration {
	return n.cfg.Timing.LeaseDuration + n.cfg.Timing.LeaseDriftMargin()
}

// leaseExpiry returns the instant after which member id's lease has surely
// expired, as the leader sees it, and whether that instant has passed.
func (n *Node) leaseExpiry(id metadata.NodeID, now time.Time) (time.Time, bool) {
	last := n.leases.last(id)
	return last.Add(n.leaseWait()), now.Sub(last) > n.leaseWait()
}

// leaseAssumeGranted records a grant to id at now: the leader is about to
// commit id joining, and gives it a full lease period to start renewing.
// Recording a grant only ever delays a failover.
func (n *Node) leaseAssumeGranted(id metadata.NodeID, now time.Time) {
	n.leases.record(id, now, true)
}

// leaseContactRecent reports whether the leader heard a renewal from id
// (at its table incarnation) within the last lease period.
func (n *Node) leaseContactRecent(id metadata.NodeID, now time.Time) bool {
	at, ok := n.leases.lastContact(id)
	return ok && now.Sub(at) <= n.cfg.Timing.LeaseDuration
}

// nextLeaseExpiry returns the earliest future lease expiry among the alive
// members of t other than this node, so the leader loop can re-run the
// reconciler right then.
func (n *Node) nextLeaseExpiry(t *metadata.RoutingTable, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, m := range t.Members {
		if m.State != metadata.MemberAlive || m.ID == n.cfg.NodeID {
			continue
		}
		at, expired := n.leaseExpiry(m.ID, now)
		if expired {
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// leaseSuspect reports whether member id (not this node) has missed three
// renewals in a row without its lease having surely expired yet.
func (n *Node) leaseSuspect(id metadata.NodeID, now time.Time) bool {
	if id == n.cfg.NodeID {
		return false
	}
	since := now.Sub(n.leases.last(id))
	return since > 3*n.cfg.Timing.LeaseRenewInterval && since <= n.leaseWait()
}

// verifyLeader runs raft.VerifyLeader and waits for it (futureError).
func (n *Node) verifyLeader() error {
	return n.futureError(n.raft.VerifyLeader())
}

// futureError waits for a Raft future, as f.Error() does, or for the node
// to stop (ErrClosed). Raft may leave a future unanswered when it shuts
// down: a verification queued just before (found by the Jepsen harness's
// churn runs: a member hung on shutdown), or a command it committed but had
// not yet applied (found by make stress: a replica report's proposal held
// up a member's Close for ever). The goroutine waiting for Raft ends when
// Raft answers, or never: bounded by the node's life.
func (n *Node) futureError(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.stop:
		return ErrClosed
	}
}
