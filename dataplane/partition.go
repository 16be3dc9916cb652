package dataplane

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// partition is one partition's state on this member. Everything but mu is
// guarded by mu.
type partition struct {
	mu sync.Mutex
	// fence is the highest leader epoch seen for the partition (Do, Fence,
	// Snapshot, ApplyMutation, Install). Never lowered, not even by Drop.
	fence uint64
	// primary: the last state change here came from Do (this member serves
	// the partition) at epoch served, not from ApplyMutation or Install.
	// The background cycle expires and evicts only while primary and
	// served == fence.
	primary bool
	served  uint64
	// seq is the sequence number of the last mutation applied.
	seq   uint64
	dmaps map[string]*dmapStore
	// last is the dmaps entry looked up last (nil: none): a partition's
	// requests mostly name one DMap, and this spares the map lookups of
	// one request (a write looks its DMap up three times).
	last *dmapStore
	// dedupe holds the results of recent writes with a request id.
	dedupe dedupeTable
	_      [64]byte // keep neighbouring partitions' locks off one cache line
}

// raiseFenceLocked raises the fence to epoch; waiters for locks are woken
// so that they see they are fenced.
func (part *partition) raiseFenceLocked(epoch uint64) {
	if epoch <= part.fence {
		return
	}
	part.fence = epoch
	for _, d := range part.dmaps {
		d.wakeWaiters()
	}
}

// activeLocked reports whether this member may make mutations of its own
// (background expiry and idle eviction) for the partition.
func (part *partition) activeLocked() bool {
	return part.primary && part.served == part.fence
}

// resetLocked forgets every value and lock, the sequence number and the
// dedupe table, waking lock waiters; the fence stays.
func (part *partition) resetLocked() {
	for _, d := range part.dmaps {
		d.wakeWaiters()
	}
	part.dmaps = nil
	part.last = nil
	part.dedupe = dedupeTable{}
	part.seq = 0
	part.primary = false
	part.served = 0
}

// dmapStore is one DMap's values and locks on one partition (guarded by
// the partition's mu).
type dmapStore struct {
	name string
	pol  *dmapPolicy
	ctr  *dmapCounters
	tab  kvTable
	// bytes is len(key)+len(value) summed over tab.
	bytes int64
	// expires holds the entries of tab that have an expiry, for cheap
	// sampling by the expiry cycle.
	expires map[*kvEntry]struct{}
	// locks is the lock namespace, separate from values.
	locks map[string]*lockState
	// waited holds the keys of locks that have a wake channel.
	waited map[string]struct{}
	// pool holds LRU eviction candidates (see victim); local, not
	// replicated.
	pool []evictCand
}

// lockState is a held lock.
type lockState struct {
	token    uint64
	expireAt int64 // unix ns
	// wake is closed when the lock is released or replaced, or the
	// partition is fenced, dropped or replaced; nil until someone waits.
	wake chan struct{}
}

// dmapCounters are a DMap's cumulative counters on this engine (all
// partitions), kept across Destroy and Drop.
type dmapCounters struct {
	evictions   atomic.Uint64
	expirations atomic.Uint64
}

func (d *dmapStore) addExpires(e *kvEntry) {
	if d.expires == nil {
		d.expires = make(map[*kvEntry]struct{})
	}
	d.expires[e] = struct{}{}
}

func (d *dmapStore) delExpires(e *kvEntry) {
	delete(d.expires, e)
	if len(d.expires) == 0 {
		d.expires = nil // Go maps never shrink: drop an emptied one
	}
}

// waitOn returns the channel closed when lock key changes hands.
func (d *dmapStore) waitOn(key string, ls *lockState) <-chan struct{} {
	if ls.wake == nil {
		ls.wake = make(chan struct{})
		if d.waited == nil {
			d.waited = make(map[string]struct{})
		}
		d.waited[key] = struct{}{}
	}
	return ls.wake
}

func (d *dmapStore) wakeLock(key string, ls *lockState) {
	if ls.wake != nil {
		close(ls.wake)
		ls.wake = nil
		delete(d.waited, key)
	}
}

func (d *dmapStore) wakeWaiters() {
	for k := range d.waited {
		if ls := d.locks[k]; ls != nil {
			d.wakeLock(k, ls)
		}
	}
	d.waited = nil
}

// dmapForWrite returns DMap name's store on part, creating it.
func (e *Engine) dmapForWrite(part *partition, name string) *dmapStore {
	if d := part.dmap(name); d != nil {
		return d
	}
	if part.dmaps == nil {
		part.dmaps = make(map[string]*dmapStore)
	}
	d := &dmapStore{name: name, pol: e.policyFor(name), ctr: e.countersFor(name)}
	part.dmaps[name] = d
	part.last = d
	return d
}

// dmap returns the partition's DMap name, nil if it holds none. part.mu
// is held.
func (part *partition) dmap(name string) *dmapStore {
	if d := part.last; d != nil && d.name == name {
		return d
	}
	d := part.dmaps[name]
	if d != nil {
		part.last = d
	}
	return d
}

// Partition snapshots.

// SnapshotFormat is the PartitionSnapshot format this engine writes and
// reads.
const SnapshotFormat = 1

// PartitionSnapshot is a consistent copy of one partition: every DMap's
// values (with version and expiry) and locks, the dedupe table of recent
// write results, the sequence number and the fence epoch. It is
// msgpack-encodable; Install validates one before using it, so a snapshot
// decoded from the network cannot corrupt the engine.
//
// Values and request results share the engine's immutable stored data:
// never modify them. Entries and locks are sorted by key, DMaps by name,
// requests are in recording order, so equal states give equal snapshots.
// Access times (LRU, max idle) are not included: an installed key counts
// as just used.
type PartitionSnapshot struct {
	Format    uint8          `msgpack:"fmt"`
	Partition uint32         `msgpack:"p"`
	Seq       uint64         `msgpack:"seq"`
	Fence     uint64         `msgpack:"fence"`
	DMaps     []DMapSnapshot `msgpack:"dmaps,omitempty"`
	// Requests is the dedupe table, oldest first (see RequestResult).
	Requests []RequestSnapshot `msgpack:"reqs,omitempty"`
}

// DMapSnapshot is one DMap of a PartitionSnapshot.
type DMapSnapshot struct {
	Name    string          `msgpack:"name"`
	Entries []EntrySnapshot `msgpack:"entries,omitempty"`
	Locks   []LockSnapshot  `msgpack:"locks,omitempty"`
}

// EntrySnapshot is one key of a DMapSnapshot.
type EntrySnapshot struct {
	Key     string `msgpack:"k"`
	Value   []byte `msgpack:"v"`
	Version uint64 `msgpack:"ver"`
	// ExpireAt is unix nanoseconds; 0 = none.
	ExpireAt int64 `msgpack:"exp,omitempty"`
}

// LockSnapshot is one held lock of a DMapSnapshot.
type LockSnapshot struct {
	Key   string `msgpack:"k"`
	Token uint64 `msgpack:"tok"`
	// ExpireAt is unix nanoseconds.
	ExpireAt int64 `msgpack:"exp"`
}

// Snapshot fences partition p at fenceAt (as Fence does) and, under the
// same lock hold, copies it. After it returns no Do with an epoch older
// than fenceAt changes p, so the copy is the final state of every older
// epoch. The copy is sorted after the lock is released. Cost: O(n) under
// the partition lock, O(n log n) after.
func (e *Engine) Snapshot(p uint32, fenceAt uint64) (*PartitionSnapshot, error) {
	part, err := e.partition(p)
	if err != nil {
		return nil, err
	}
	part.mu.Lock()
	part.raiseFenceLocked(fenceAt)
	s := part.copyLocked(p)
	part.mu.Unlock()
	slices.SortFunc(s.DMaps, func(a, b DMapSnapshot) int { return cmp.Compare(a.Name, b.Name) })
	for i := range s.DMaps {
		slices.SortFunc(s.DMaps[i].Entries, func(a, b EntrySnapshot) int { return cmp.Compare(a.Key, b.Key) })
		slices.SortFunc(s.DMaps[i].Locks, func(a, b LockSnapshot) int { return cmp.Compare(a.Key, b.Key) })
	}
	return s, nil
}

// copyLocked copies part (partition p), unsorted; part.mu is held.
func (part *partition) copyLocked(p uint32) *PartitionSnapshot {
	s := &PartitionSnapshot{Format: SnapshotFormat, Partition: p}
	s.Seq, s.Fence = part.seq, part.fence
	s.DMaps = make([]DMapSnapshot, 0, len(part.dmaps))
	for name, d := range part.dmaps {
		ds := DMapSnapshot{Name: name, Entries: make([]EntrySnapshot, 0, d.tab.n)}
		d.tab.each(func(_ uint64, ent *kvEntry) bool {
			ds.Entries = append(ds.Entries, EntrySnapshot{Key: ent.key(), Value: ent.value(), Version: ent.version, ExpireAt: ent.expireAt})
			return true
		})
		for k, ls := range d.locks {
			ds.Locks = append(ds.Locks, LockSnapshot{Key: k, Token: ls.token, ExpireAt: ls.expireAt})
		}
		if len(ds.Entries) == 0 {
			ds.Entries = nil
		}
		s.DMaps = append(s.DMaps, ds)
	}
	if n := len(part.dedupe.q); n > 0 {
		s.Requests = make([]RequestSnapshot, n)
		for i, ent := range part.dedupe.q {
			s.Requests[i] = RequestSnapshot{ID: ent.id, Result: ent.res}
		}
	}
	if len(s.DMaps) == 0 {
		s.DMaps = nil
	}
	return s
}

// Validate checks that s is a well-formed snapshot of partition p: known
// format, sequence and epochs in range, valid and unique DMap names and
// keys, values within the hard limit, no version or token newer than the
// sequence number, non-negative expiries; at most 1<<20 request results,
// with valid unique ids, in recording order, each well formed.
func (s *PartitionSnapshot) Validate(p uint32) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: snapshot of partition %d: "+format, append([]any{ErrInvalid, p}, args...)...)
	}
	switch {
	case s == nil:
		return fmt.Errorf("%w: nil snapshot", ErrInvalid)
	case s.Format != SnapshotFormat:
		return bad("format %d, want %d", s.Format, SnapshotFormat)
	case s.Partition != p:
		return bad("it is of partition %d", s.Partition)
	case s.Seq > maxSeq:
		return bad("sequence %d out of range", s.Seq)
	case s.Fence >= MaxEpoch:
		return bad("fence epoch %d out of range", s.Fence)
	}
	versionOK := func(v uint64) bool { return v != 0 && v&maxSeq <= s.Seq && v>>seqBits <= s.Fence }
	names := make(map[string]struct{}, len(s.DMaps))
	for i := range s.DMaps {
		d := &s.DMaps[i]
		if d.Name == "" || len(d.Name) > MaxDMapNameLen {
			return bad("dmap %d: name of %d bytes", i, len(d.Name))
		}
		if _, dup := names[d.Name]; dup {
			return bad("dmap %q twice", d.Name)
		}
		names[d.Name] = struct{}{}
		keys := make(map[string]struct{}, len(d.Entries))
		for j := range d.Entries {
			en := &d.Entries[j]
			switch {
			case en.Key == "" || len(en.Key) > MaxKeyLen:
				return bad("dmap %q: entry %d: key of %d bytes", d.Name, j, len(en.Key))
			case len(en.Value) > maxValueLenLimit:
				return bad("dmap %q: key %q: value of %d bytes", d.Name, en.Key, len(en.Value))
			case !versionOK(en.Version):
				return bad("dmap %q: key %q: version %d beyond sequence %d and fence %d", d.Name, en.Key, en.Version, s.Seq, s.Fence)
			case en.ExpireAt < 0:
				return bad("dmap %q: key %q: negative expiry", d.Name, en.Key)
			}
			if _, dup := keys[en.Key]; dup {
				return bad("dmap %q: key %q twice", d.Name, en.Key)
			}
			keys[en.Key] = struct{}{}
		}
		clear(keys)
		for j := range d.Locks {
			l := &d.Locks[j]
			switch {
			case l.Key == "" || len(l.Key) > MaxKeyLen:
				return bad("dmap %q: lock %d: key of %d bytes", d.Name, j, len(l.Key))
			case !versionOK(l.Token):
				return bad("dmap %q: lock %q: token %d beyond sequence %d and fence %d", d.Name, l.Key, l.Token, s.Seq, s.Fence)
			case l.ExpireAt <= 0:
				return bad("dmap %q: lock %q: no lease", d.Name, l.Key)
			}
			if _, dup := keys[l.Key]; dup {
				return bad("dmap %q: lock %q twice", d.Name, l.Key)
			}
			keys[l.Key] = struct{}{}
		}
	}
	if len(s.Requests) > maxDedupeEntries {
		return bad("%d request results, limit %d", len(s.Requests), maxDedupeEntries)
	}
	ids := make(map[string]struct{}, len(s.Requests))
	for i := range s.Requests {
		r := &s.Requests[i]
		switch {
		case r.ID == "" || len(r.ID) > MaxRequestIDLen:
			return bad("request %d: id of %d bytes", i, len(r.ID))
		case i > 0 && r.Result.At < s.Requests[i-1].Result.At:
			return bad("request %q: recorded before the one ahead of it", r.ID)
		}
		if err := r.Result.check(); err != nil {
			return bad("request %q: %v", r.ID, err)
		}
		if _, dup := ids[r.ID]; dup {
			return bad("request %q twice", r.ID)
		}
		ids[r.ID] = struct{}{}
	}
	return nil
}

// Install replaces partition p with snapshot s (when p moves to this
// member). s is validated first; a refused snapshot changes nothing. The
// values are copied, so s may be discarded. The fence becomes the higher
// of p's and s's; lock waiters are woken (they re-check against the new
// state). This member is not p's primary until a Do serves p. Limits are
// not enforced on install: the next write evicts as needed. The request
// results are kept within this engine's dedupe bounds (the newest first).
func (e *Engine) Install(p uint32, s *PartitionSnapshot) error {
	pi, err := e.PrepareInstall(p, s)
	if err != nil {
		return err
	}
	pi.Commit()
	return nil
}

// PreparedInstall is a snapshot validated and built into a partition's
// state, ready to replace it: the expensive part of Install, done without
// any lock, so a caller can hold its own lock only around Commit.
type PreparedInstall struct {
	part   *partition
	dmaps  map[string]*dmapStore
	dedupe dedupeTable
	seq    uint64
	fence  uint64
}

// Commit replaces the partition with the prepared state (as Install does),
// under the partition lock. Commit it once.
func (pi *PreparedInstall) Commit() {
	part := pi.part
	part.mu.Lock()
	defer part.mu.Unlock()
	part.resetLocked()
	part.dmaps = pi.dmaps // resetLocked cleared part.last
	part.dedupe = pi.dedupe
	part.seq = pi.seq
	part.raiseFenceLocked(pi.fence)
}

// PrepareInstall validates s and builds partition p's state from it, for
// Commit.
func (e *Engine) PrepareInstall(p uint32, s *PartitionSnapshot) (*PreparedInstall, error) {
	part, err := e.partition(p)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(p); err != nil {
		return nil, err
	}
	now := e.nowNanos()
	dmaps := make(map[string]*dmapStore, len(s.DMaps))
	for i := range s.DMaps {
		ds := &s.DMaps[i]
		d := &dmapStore{name: ds.Name, pol: e.policyFor(ds.Name), ctr: e.countersFor(ds.Name)}
		for j := range ds.Entries {
			en := &ds.Entries[j]
			ent := newKVEntry(en.Key, en.Value, en.Version, en.ExpireAt, now)
			d.tab.set(hashKey(en.Key), ent)
			d.bytes += ent.size()
			if en.ExpireAt != 0 {
				d.addExpires(ent)
			}
		}
		if len(ds.Locks) > 0 {
			d.locks = make(map[string]*lockState, len(ds.Locks))
			for _, l := range ds.Locks {
				d.locks[l.Key] = &lockState{token: l.Token, expireAt: l.ExpireAt}
			}
		}
		dmaps[ds.Name] = d
	}
	if len(dmaps) == 0 {
		dmaps = nil
	}
	var dedupe dedupeTable
	reqs := s.Requests
	if extra := len(reqs) - e.dedupe.entries; extra > 0 {
		reqs = reqs[extra:]
	}
	for i := range reqs {
		dedupe.record(strings.Clone(reqs[i].ID), reqs[i].Result.clone(), e.dedupe)
	}
	return &PreparedInstall{part: part, dmaps: dmaps, dedupe: dedupe, seq: s.Seq, fence: s.Fence}, nil
}

// Drop deletes partition p's values, locks and sequence number (when p
// moved away from this member) and wakes its lock waiters. The fence epoch
// is kept: a late request of a superseded epoch still fails.
func (e *Engine) Drop(p uint32) {
	part, err := e.partition(p)
	if err != nil {
		return
	}
	part.mu.Lock()
	part.resetLocked()
	part.mu.Unlock()
}

// Holds reports whether this engine has data or state for partition p:
// any DMap (even emptied) or a sequence number above 0. Dropped or never
// written partitions are not held; the fence epoch alone does not count.
func (e *Engine) Holds(p uint32) bool {
	part, err := e.partition(p)
	if err != nil {
		return false
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	return part.seq != 0 || len(part.dmaps) != 0
}

// Fence raises partition p's fence epoch to at least epoch: after it
// returns, no Do with an older epoch applies to p (and lock waiters of an
// older epoch give up).
func (e *Engine) Fence(p uint32, epoch uint64) {
	part, err := e.partition(p)
	if err != nil {
		return
	}
	part.mu.Lock()
	part.raiseFenceLocked(epoch)
	part.mu.Unlock()
}
