package fsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/internal/latency"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/snapshots"
)

// Sentinel errors. Messages are prefixed with the package name; test with
// errors.Is. Every error in an ApplyResult matches ErrRejected and one of
// the more specific errors below.
var (
	// ErrRejected is the family of every ApplyResult.Err: Apply refused the
	// log and left the routing table unchanged.
	ErrRejected = errors.New("fsm: command rejected")
	// ErrUnknownCommand reports a command type or format version this build
	// does not know (a newer member wrote it during a rolling upgrade).
	// Apply logs it at WARN and skips it.
	ErrUnknownCommand = errors.New("fsm: unknown command")
	// ErrMalformedCommand reports command bytes that do not decode (too
	// short, bad msgpack, wrong body), or a nil log.
	ErrMalformedCommand = errors.New("fsm: malformed command")
	// ErrAlreadyInitialized reports an InitRouting on an initialized FSM.
	ErrAlreadyInitialized = errors.New("fsm: routing already initialized")
	// ErrNotInitialized reports a Change before InitRouting.
	ErrNotInitialized = errors.New("fsm: routing not initialized")
	// ErrVersionConflict reports a Change whose ExpectVersion is not the
	// current routing version: it was computed from an older table.
	ErrVersionConflict = errors.New("fsm: routing version conflict")
	// ErrEpochRegression reports a replaced partition whose LeaderEpoch did
	// not increase with a new primary, or changed without one.
	ErrEpochRegression = errors.New("fsm: leader epoch regression")
	// ErrStaleReplica reports a member that still holds a replica in the
	// same change that removes it, marks it failed or gives it a new
	// incarnation (a restarted member holds no data).
	ErrStaleReplica = errors.New("fsm: stale replica")
	// ErrInvalidChange reports a command body of the wrong shape for its
	// type, a partition id out of range or given twice, a member removed
	// that does not exist or upserted twice, bad settings, or a resulting
	// table that fails metadata's Validate (then it wraps
	// metadata.ErrInvalidTable too).
	ErrInvalidChange = errors.New("fsm: invalid change")
	// ErrIndexRegression reports a log whose index is not after the applied
	// index. Raft never does this; Apply refuses it without advancing.
	ErrIndexRegression = errors.New("fsm: log index not after applied index")
)

// rejection makes an Apply error match ErrRejected as well as the specific
// sentinel err wraps.
type rejection struct{ err error }

func (r *rejection) Error() string   { return r.err.Error() }
func (r *rejection) Unwrap() []error { return []error{ErrRejected, r.err} }

func reject(err error) error { return &rejection{err: err} }

func rejectf(kind error, format string, args ...any) error {
	return reject(fmt.Errorf("%w: "+format, append([]any{kind}, args...)...))
}

// ApplyResult is what Apply returns; with hashicorp/raft it is the
// ApplyFuture's Response().(fsm.ApplyResult).
type ApplyResult struct {
	// Version is the routing version after the log was applied: the log's
	// index when it changed the table, the unchanged version otherwise.
	Version uint64
	// Err is nil, or an error matching ErrRejected (the table is
	// unchanged) and a more specific sentinel.
	Err error
}

// FSM is the raft.FSM that holds the committed routing table. See the
// package documentation for which goroutine calls what.
type FSM struct {
	logger *slog.Logger

	// mu serializes Apply, Snapshot and Restore. Raft calls them from one
	// goroutine anyway; the lock keeps other callers (tests, tools) safe
	// and orders publications.
	mu struct {
		sync.Mutex
		// pubSeq numbers publications (successful Applies and Restores), so
		// that subscribers are never offered an older table after a newer
		// one.
		pubSeq uint64
	}

	// applyLatency times Apply (decode, change, validate, publish).
	applyLatency latency.Histogram

	// table is the published routing table: never nil, immutable once
	// stored. Written under mu, read without locks.
	table atomic.Pointer[metadata.RoutingTable]
	// applied is the index of the last log applied (or restored). Written
	// under mu, always after table; read without locks.
	applied atomic.Uint64
	// advanced is closed and replaced each time applied changes, waking
	// every WaitApplied to re-check. Swapped without holding mu.
	advanced atomic.Pointer[chan struct{}]

	subs struct {
		sync.Mutex
		// list holds the live subscriptions, in subscription order.
		list []*subscription
		// seq is the pubSeq of the last table offered.
		seq uint64
	}
	// dropped counts stale tables replaced in a subscription's channel.
	dropped atomic.Uint64
}

var _ raft.FSM = (*FSM)(nil)

type subscription struct {
	ch chan *metadata.RoutingTable
}

// New returns an FSM with an empty, uninitialized routing table (Version 0)
// and applied index 0. A nil logger means slog.Default().
func New(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	f := &FSM{logger: logger.With("component", "fsm")}
	f.table.Store(&metadata.RoutingTable{})
	ch := make(chan struct{})
	f.advanced.Store(&ch)
	return f
}

// Routing returns the committed routing table with one atomic load: never
// nil, never partially built. The caller must not modify it.
func (f *FSM) Routing() *metadata.RoutingTable { return f.table.Load() }

// AppliedIndex returns the Raft index of the last log the FSM applied or
// restored. Raft hands only LogCommand entries to an FSM, so this may lag
// raft's own AppliedIndex by no-op, barrier and configuration entries.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// DroppedUpdates counts tables a subscriber never saw because a newer one
// replaced them in its channel.
func (f *FSM) DroppedUpdates() uint64 { return f.dropped.Load() }

// WaitApplied returns the routing table once AppliedIndex is at least
// index. The table includes the log at index (or was restored from a
// snapshot at or after it). It returns ctx's error, wrapped, if ctx ends
// first.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) (*metadata.RoutingTable, error) {
	for {
		// Load the channel before checking: an advance after the check
		// closes this channel (or one before it).
		ch := *f.advanced.Load()
		if f.applied.Load() >= index {
			return f.table.Load(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("fsm: waiting for applied index %d (at %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// Subscribe returns a channel that is offered every table published after
// the call, and a cancel function that ends the subscription and closes the
// channel (idempotent). The channel holds one table: when the subscriber is
// behind, the stale table is replaced by the newest one (counted in
// DroppedUpdates), so a slow subscriber never blocks Apply and always ends
// up with the latest table. Subscribe before reading Routing() to miss
// nothing.
func (f *FSM) Subscribe() (updates <-chan *metadata.RoutingTable, cancel func()) {
	s := &subscription{ch: make(chan *metadata.RoutingTable, 1)}
	f.subs.Lock()
	f.subs.list = append(f.subs.list, s)
	f.subs.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			f.subs.Lock()
			defer f.subs.Unlock()
			for i, x := range f.subs.list {
				if x == s {
					f.subs.list = append(f.subs.list[:i:i], f.subs.list[i+1:]...)
					break
				}
			}
			close(s.ch)
		})
	}
}

// wake closes the current advanced channel and installs a fresh one. Called
// after applied changed, without holding mu.
func (f *FSM) wake() {
	ch := make(chan struct{})
	close(*f.advanced.Swap(&ch))
}

// offer hands t, publication number seq, to every subscription without
// blocking, unless a newer publication was offered already.
func (f *FSM) offer(seq uint64, t *metadata.RoutingTable) {
	f.subs.Lock()
	defer f.subs.Unlock()
	if seq <= f.subs.seq {
		return
	}
	f.subs.seq = seq
	for _, s := range f.subs.list {
		select {
		case s.ch <- t:
			continue
		default:
		}
		// Full: replace the stale table. Only offer sends, under subs, so
		// after the drain the send below finds room.
		select {
		case <-s.ch:
			f.dropped.Add(1)
		default:
		}
		select {
		case s.ch <- t:
		default:
			f.dropped.Add(1)
		}
	}
}

// outcome is what applyLocked did, for Apply to log and announce after
// unlocking.
type outcome struct {
	res       ApplyResult
	typ       CommandType
	reason    string
	advanced  bool
	published *metadata.RoutingTable
	seq       uint64
	forced    []uint32 // partitions of a successful ForceAssign
}

// Apply applies one committed log and returns an ApplyResult. It is
// deterministic and never panics; see the package documentation for the
// rules.
func (f *FSM) Apply(l *raft.Log) any {
	start := time.Now()
	defer f.applyLatency.Since(start)
	f.mu.Lock()
	o := f.applyLocked(l)
	if o.published != nil {
		f.mu.pubSeq++
		o.seq = f.mu.pubSeq
	}
	f.mu.Unlock()

	if o.advanced {
		f.wake()
	}
	if o.published != nil {
		f.offer(o.seq, o.published)
	}
	f.logOutcome(l, o)
	return o.res
}

// ApplyLatency returns how long Apply calls took (decoding, the change,
// validation and publication; not Raft's commit). Safe for concurrent use.
func (f *FSM) ApplyLatency() latency.Snapshot { return f.applyLatency.Snapshot() }

func (f *FSM) logOutcome(l *raft.Log, o outcome) {
	var index uint64
	if l != nil {
		index = l.Index
	}
	switch err := o.res.Err; {
	case err == nil && o.typ == CommandForceAssign:
		f.logger.Warn("routing changed by force: DATA LOSS in the reassigned partitions",
			"version", o.res.Version, "command", o.typ.String(), "reason", o.reason, "partitions", o.forced)
	case err == nil && o.published != nil:
		f.logger.Info("routing changed", "version", o.res.Version, "command", o.typ.String(), "reason", o.reason)
	case err == nil:
	case errors.Is(err, ErrUnknownCommand):
		f.logger.Warn("skipping unknown command (written by a newer member?)", "index", index, "error", err)
	case errors.Is(err, ErrVersionConflict):
		f.logger.Info("command rejected", "index", index, "command", o.typ.String(), "reason", o.reason, "error", err)
	default:
		f.logger.Warn("command rejected", "index", index, "command", o.typ.String(), "reason", o.reason, "error", err)
	}
}

// applyLocked does Apply's work under mu: publish the new table (if any),
// then advance the applied index.
func (f *FSM) applyLocked(l *raft.Log) outcome {
	cur := f.table.Load()
	o := outcome{res: ApplyResult{Version: cur.Version}}
	if l == nil {
		o.res.Err = rejectf(ErrMalformedCommand, "nil log")
		return o
	}
	if applied := f.applied.Load(); l.Index <= applied {
		o.res.Err = rejectf(ErrIndexRegression, "log index %d, applied index %d", l.Index, applied)
		return o
	}
	o.advanced = true
	if l.Type != raft.LogCommand {
		f.applied.Store(l.Index)
		return o
	}
	next, err := f.next(cur, l.Data, &o)
	if err != nil {
		o.res.Err = err
		f.applied.Store(l.Index)
		return o
	}
	next.Version = l.Index
	f.table.Store(next)
	f.applied.Store(l.Index)
	o.res.Version = next.Version
	o.published = next
	return o
}

// next decodes a command and builds the table it produces from cur, or
// returns the rejection. cur is not modified.
func (f *FSM) next(cur *metadata.RoutingTable, data []byte, o *outcome) (*metadata.RoutingTable, error) {
	typ, body, err := Decode(data)
	o.typ = typ
	if err != nil {
		return nil, reject(err)
	}
	switch b := body.(type) {
	case *InitRouting:
		o.reason = fmt.Sprintf("%d partitions, %d replicas, %d members", b.PartitionCount, b.Replicas, len(b.Members))
		return initTable(cur, b)
	case *Change:
		o.reason = b.Reason
		next, err := changeTable(cur, typ, b)
		if err == nil && typ == CommandForceAssign {
			for _, p := range b.Partitions {
				o.forced = append(o.forced, p.ID)
			}
		}
		return next, err
	default:
		return nil, rejectf(ErrMalformedCommand, "body %T", body)
	}
}

// initTable builds the first table from b.
func initTable(cur *metadata.RoutingTable, b *InitRouting) (*metadata.RoutingTable, error) {
	if cur.Initialized() {
		return nil, rejectf(ErrAlreadyInitialized, "routing version %d", cur.Version)
	}
	if err := metadata.ValidateSettings(b.PartitionCount, b.Replicas); err != nil {
		return nil, rejectf(ErrInvalidChange, "%w", err)
	}
	if len(b.Partitions) != int(b.PartitionCount) {
		return nil, rejectf(ErrInvalidChange, "%d partitions, want %d", len(b.Partitions), b.PartitionCount)
	}
	next := &metadata.RoutingTable{PartitionCount: b.PartitionCount, Replicas: b.Replicas}
	for _, m := range b.Members {
		if _, dup := next.Member(m.ID); dup {
			return nil, rejectf(ErrInvalidChange, "member %q listed twice", m.ID)
		}
		next.UpsertMember(m)
	}
	next.Partitions = make([]metadata.Partition, b.PartitionCount)
	seen := make([]bool, b.PartitionCount)
	for _, p := range b.Partitions {
		if p.ID >= b.PartitionCount {
			return nil, rejectf(ErrInvalidChange, "partition %d out of range [0, %d)", p.ID, b.PartitionCount)
		}
		if seen[p.ID] {
			return nil, rejectf(ErrInvalidChange, "partition %d listed twice", p.ID)
		}
		seen[p.ID] = true
		p.PrevPrimary, p.PrevEpoch = "", 0 // no history before the first table
		next.Partitions[p.ID] = p
	}
	if err := next.Validate(); err != nil {
		return nil, rejectf(ErrInvalidChange, "%w", err)
	}
	return next, nil
}

// changeTable applies c to a clone of cur: Remove, then Upsert, then
// Partitions; then checks leader epochs, stale replicas and the whole
// table.
func changeTable(cur *metadata.RoutingTable, typ CommandType, c *Change) (*metadata.RoutingTable, error) {
	if !cur.Initialized() {
		return nil, rejectf(ErrNotInitialized, "%s", typ)
	}
	// mark_written and replica_in_sync change one flag of partitions and
	// are checked against the current partitions themselves (checkShape:
	// each must be exactly the current one but for that flag), so they
	// commute with unrelated changes: many primaries mark partitions at
	// once without refusing each other for a stale version.
	if c.ExpectVersion != cur.Version && typ != CommandMarkWritten && typ != CommandReplicaInSync {
		return nil, rejectf(ErrVersionConflict, "%s expects version %d, current is %d", typ, c.ExpectVersion, cur.Version)
	}
	if c.ExpectVersion > cur.Version {
		return nil, rejectf(ErrVersionConflict, "%s expects version %d, current is only %d", typ, c.ExpectVersion, cur.Version)
	}
	if err := checkShape(cur, typ, c); err != nil {
		return nil, err
	}

	next := cur.Clone()
	// stale maps each member that must hold no replica afterwards to why.
	// It is only looked up, never iterated.
	stale := make(map[metadata.NodeID]string)
	for _, id := range c.Remove {
		old, _ := cur.Member(id)
		if !next.RemoveMember(id) {
			return nil, rejectf(ErrInvalidChange, "remove %q: %w", id, metadata.ErrUnknownMember)
		}
		stale[id] = "removed"
		next.Departed = append(next.Departed, metadata.Departure{ID: id, Incarnation: old.Incarnation})
		if len(next.Departed) > metadata.MaxDeparted {
			next.Departed = next.Departed[len(next.Departed)-metadata.MaxDeparted:]
		}
	}
	upserted := make(map[metadata.NodeID]bool, len(c.Upsert))
	for _, m := range c.Upsert {
		if upserted[m.ID] {
			return nil, rejectf(ErrInvalidChange, "member %q upserted twice", m.ID)
		}
		upserted[m.ID] = true
		old, existed := cur.Member(m.ID)
		switch {
		case existed && old.Incarnation != m.Incarnation:
			stale[m.ID] = "new incarnation"
		case m.State == metadata.MemberFailed && (!existed || old.State != metadata.MemberFailed):
			stale[m.ID] = "failed"
		}
		next.UpsertMember(m)
	}
	replaced := make([]bool, cur.PartitionCount)
	for _, p := range c.Partitions {
		if p.ID >= cur.PartitionCount {
			return nil, rejectf(ErrInvalidChange, "partition %d out of range [0, %d)", p.ID, cur.PartitionCount)
		}
		if replaced[p.ID] {
			return nil, rejectf(ErrInvalidChange, "partition %d listed twice", p.ID)
		}
		replaced[p.ID] = true
		// The history of the primary is derived here, deterministically,
		// never taken from the proposal.
		old := cur.Partitions[p.ID]
		if p.Primary != old.Primary {
			p.PrevPrimary, p.PrevEpoch = old.Primary, old.LeaderEpoch
		} else {
			p.PrevPrimary, p.PrevEpoch = old.PrevPrimary, old.PrevEpoch
		}
		// Written is set only by MarkWritten; it travels with the data and
		// is gone with it (unavailable) or explicitly (force-assign).
		switch {
		case typ == CommandMarkWritten:
		case typ == CommandForceAssign, p.State == metadata.PartitionUnavailable:
			p.Written = false
		default:
			p.Written = old.Written
		}
		// Promoted: the new primary was an in-sync backup of a written
		// partition, so it holds every acknowledged write.
		switch {
		case p.Primary != old.Primary:
			p.Promoted = p.Primary != "" && old.Written && old.State != metadata.PartitionUnavailable &&
				old.Primary != "" && old.InSync(p.Primary)
		default:
			p.Promoted = old.Promoted
		}
		// Syncing: which backups may lack acknowledged writes. A partition
		// never written has nothing to copy; after a change of primary
		// every backup is refilled from the new one; a new backup starts
		// syncing; only ReplicaInSync takes a member off the list.
		switch {
		case !p.Written || p.State == metadata.PartitionUnavailable:
			p.Syncing = nil
		case typ == CommandReplicaInSync:
			p.Syncing = slices.Clone(p.Syncing)
		case p.Primary != old.Primary:
			p.Syncing = slices.Clone(p.Backups)
		default:
			var syncing []metadata.NodeID
			for _, b := range p.Backups {
				if slices.Contains(old.Syncing, b) || !slices.Contains(old.Backups, b) {
					syncing = append(syncing, b)
				}
			}
			p.Syncing = syncing
		}
		if len(p.Syncing) == 0 {
			p.Syncing = nil
		}
		next.Partitions[p.ID] = p
	}

	// (1) A new primary comes with a higher leader epoch; the same primary
	// keeps its epoch.
	for _, p := range c.Partitions {
		old := cur.Partitions[p.ID]
		switch {
		case p.Primary != old.Primary && p.LeaderEpoch <= old.LeaderEpoch:
			return nil, rejectf(ErrEpochRegression, "partition %d: primary %q -> %q needs leader epoch above %d, got %d",
				p.ID, old.Primary, p.Primary, old.LeaderEpoch, p.LeaderEpoch)
		case p.Primary == old.Primary && p.LeaderEpoch != old.LeaderEpoch:
			return nil, rejectf(ErrEpochRegression, "partition %d: primary %q unchanged but leader epoch %d -> %d",
				p.ID, p.Primary, old.LeaderEpoch, p.LeaderEpoch)
		}
	}
	// (2) Members that lost their data (or their membership) hold nothing.
	if len(stale) > 0 {
		for _, p := range next.Partitions {
			for _, r := range p.Replicas() {
				if why, ok := stale[r]; ok {
					return nil, rejectf(ErrStaleReplica, "member %q (%s) still holds partition %d", r, why, p.ID)
				}
			}
		}
	}
	// (3) Every invariant of a committed table.
	if err := next.Validate(); err != nil {
		return nil, rejectf(ErrInvalidChange, "%w", err)
	}
	return next, nil
}

// checkShape enforces what each command type may carry (see the
// CommandType constants).
func checkShape(cur *metadata.RoutingTable, typ CommandType, c *Change) error {
	bad := func(format string, args ...any) error {
		return rejectf(ErrInvalidChange, "%s: "+format, append([]any{typ}, args...)...)
	}
	memberState := func(want metadata.MemberState, mustExist bool) error {
		if len(c.Upsert) == 0 {
			return bad("no member to upsert")
		}
		if len(c.Remove) > 0 {
			return bad("cannot remove members")
		}
		for _, m := range c.Upsert {
			if m.State != want {
				return bad("member %q in state %s, want %s", m.ID, m.State, want)
			}
			if _, ok := cur.Member(m.ID); mustExist && !ok {
				return bad("%q: %w", m.ID, metadata.ErrUnknownMember)
			}
		}
		return nil
	}
	switch typ {
	case CommandMemberJoin:
		return memberState(metadata.MemberAlive, false)
	case CommandMemberLeave:
		return memberState(metadata.MemberLeaving, true)
	case CommandMemberFailed:
		return memberState(metadata.MemberFailed, true)
	case CommandMemberRemove:
		if len(c.Remove) == 0 || len(c.Upsert) > 0 {
			return bad("needs members to remove and nothing to upsert")
		}
	case CommandRebalance:
		if len(c.Upsert) > 0 || len(c.Remove) > 0 {
			return bad("may only change partitions")
		}
	case CommandSetVoter:
		if len(c.Upsert) == 0 || len(c.Remove) > 0 || len(c.Partitions) > 0 {
			return bad("may only upsert members")
		}
		for _, m := range c.Upsert {
			old, ok := cur.Member(m.ID)
			if !ok {
				return bad("%q: %w", m.ID, metadata.ErrUnknownMember)
			}
			old.Voter = m.Voter
			if old != m {
				return bad("member %q changes more than its voter flag", m.ID)
			}
		}
	case CommandForceAssign:
		if len(c.Partitions) == 0 || len(c.Upsert) > 0 || len(c.Remove) > 0 {
			return bad("may only assign partitions")
		}
	case CommandReplicaInSync:
		if len(c.Partitions) == 0 || len(c.Upsert) > 0 || len(c.Remove) > 0 {
			return bad("may only change partitions' syncing backups")
		}
		for _, p := range c.Partitions {
			if p.ID >= cur.PartitionCount {
				return bad("partition %d out of range", p.ID)
			}
			want := cur.Partitions[p.ID]
			if !p.Equal(want) || len(p.Syncing) >= len(want.Syncing) {
				return bad("partition %d changes more than its syncing backups, or none", p.ID)
			}
			for _, s := range p.Syncing {
				if !slices.Contains(want.Syncing, s) {
					return bad("partition %d: %q was not syncing", p.ID, s)
				}
			}
		}
	case CommandMarkWritten:
		if len(c.Partitions) == 0 || len(c.Upsert) > 0 || len(c.Remove) > 0 {
			return bad("may only mark partitions")
		}
		for _, p := range c.Partitions {
			if p.ID >= cur.PartitionCount {
				return bad("partition %d out of range", p.ID)
			}
			want := cur.Partitions[p.ID].Clone()
			want.Written = true
			if !p.Written || !p.Equal(want) {
				return bad("partition %d changes more than its written flag", p.ID)
			}
		}
	}
	return nil
}

// Snapshot captures the applied index and the published table. It only
// copies a pointer; Persist does the work.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &fsmSnapshot{state: snapshots.State{AppliedIndex: f.applied.Load(), Routing: f.table.Load()}}, nil
}

// Restore replaces the whole state with the snapshot in rc (and closes rc).
// If the snapshot is refused, the state is unchanged.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	s, err := snapshots.Read(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	f.table.Store(s.Routing)
	f.applied.Store(s.AppliedIndex)
	f.mu.pubSeq++
	seq := f.mu.pubSeq
	f.mu.Unlock()

	f.wake()
	f.offer(seq, s.Routing)
	f.logger.Info("routing restored from snapshot", "version", s.Routing.Version, "applied_index", s.AppliedIndex)
	return nil
}

// fsmSnapshot is a captured state. Its table is immutable, so Persist may
// run concurrently with Apply.
type fsmSnapshot struct {
	state snapshots.State
}

// Persist writes the state to sink and closes it, or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := snapshots.Write(sink, s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the state is garbage collected.
func (s *fsmSnapshot) Release() {}
