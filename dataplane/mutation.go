package dataplane

import (
	"fmt"
	"strings"
)

// MutationKind is what a Mutation does. The numbers are part of the
// replication wire format: never renumber, only add.
type MutationKind uint8

// Mutation kinds.
const (
	// MutationSet stores Key = Value with Version and ExpireAt (replacing
	// any previous value).
	MutationSet MutationKind = 1
	// MutationDelete removes Key's value (a delete, an expiry or an
	// eviction).
	MutationDelete MutationKind = 2
	// MutationExpire sets Key's ExpireAt and Version, keeping its value.
	MutationExpire MutationKind = 3
	// MutationLockSet takes or extends the lock Key: token Version, lease
	// until ExpireAt. A lease keeps the token.
	MutationLockSet MutationKind = 4
	// MutationLockDelete releases the lock Key.
	MutationLockDelete MutationKind = 5
	// MutationDestroy removes every value and lock of DMap.
	MutationDestroy MutationKind = 6
	// MutationRecord changes no value or lock: it records Result for
	// RequestID (a write with a request id that changed nothing, e.g. a
	// failure or a delete of an absent key). DMap and Key are unused.
	MutationRecord MutationKind = 7
)

// String returns the kind's name, e.g. "set".
func (k MutationKind) String() string {
	switch k {
	case MutationSet:
		return "set"
	case MutationDelete:
		return "delete"
	case MutationExpire:
		return "expire"
	case MutationLockSet:
		return "lockset"
	case MutationLockDelete:
		return "lockdel"
	case MutationDestroy:
		return "destroy"
	case MutationRecord:
		return "record"
	}
	return fmt.Sprintf("MutationKind(%d)", uint8(k))
}

// Mutation is one change to a partition: every write the engine makes —
// a client write, a lazy or background expiry, an eviction — is computed
// as a Mutation and applied by one function, so applying the same
// mutations in the same order to another engine (a backup) yields the
// same state. Mutations carry results, not inputs: no clock is read to
// apply one (expiry decisions were made by the primary).
type Mutation struct {
	// Seq is the partition's sequence number of this mutation: one more
	// than the previous one's.
	Seq uint64 `msgpack:"s"`
	// Epoch is the leader epoch of the primary that made it.
	Epoch uint64       `msgpack:"e"`
	Kind  MutationKind `msgpack:"k"`
	DMap  string       `msgpack:"dm"`
	Key   string       `msgpack:"key,omitempty"`
	// Value (set). In a mutation given to OnMutation it views the stored,
	// immutable bytes: never modify it.
	Value []byte `msgpack:"v,omitempty"`
	// Version (set, expire, lockset): the key's new version, or the lock's
	// token. Epoch<<40 | Seq for all but a lease, which keeps its token.
	Version uint64 `msgpack:"ver,omitempty"`
	// ExpireAt (set, expire, lockset): unix nanoseconds; 0 = none.
	ExpireAt int64 `msgpack:"exp,omitempty"`
	// RequestID and Result, set together on the last mutation of a client
	// write that carried a request id (or on its MutationRecord): applying
	// the mutation also records Result in the partition's dedupe table, so
	// a backup that becomes primary answers a retry as the old primary
	// would. In a mutation given to OnMutation, Result views the engine's
	// stored copy: never modify it.
	RequestID string         `msgpack:"rid,omitempty"`
	Result    *RequestResult `msgpack:"res,omitempty"`
}

// Version layout: the leader epoch in the high 24 bits, the partition
// sequence number in the low 40.
const (
	seqBits = 40
	// MaxEpoch bounds leader epochs: Do refuses epoch >= MaxEpoch.
	MaxEpoch = 1 << 24
	// maxSeq is the last usable sequence number; writes stop seqReserve
	// short of it so one operation's mutations (a write plus its
	// evictions) always fit.
	maxSeq     = 1<<seqBits - 1
	seqReserve = 1 << 20
)

// MakeVersion returns the version of the write with sequence number seq
// made at leader epoch epoch.
func MakeVersion(epoch, seq uint64) uint64 { return epoch<<seqBits | seq&maxSeq }

// check validates m's shape (not its sequence or epoch against a
// partition). Bounds are the hard limits, not this engine's configured
// MaxValueLen: a backup must not refuse what its primary accepted.
func (m *Mutation) check() error {
	if m.Epoch >= MaxEpoch {
		return fmt.Errorf("%w: mutation epoch %d over %d", ErrInvalid, m.Epoch, MaxEpoch-1)
	}
	if m.Seq == 0 || m.Seq > maxSeq {
		return fmt.Errorf("%w: mutation sequence %d out of range", ErrInvalid, m.Seq)
	}
	switch {
	case len(m.RequestID) > MaxRequestIDLen:
		return fmt.Errorf("%w: mutation request id of %d bytes", ErrInvalid, len(m.RequestID))
	case (m.RequestID == "") != (m.Result == nil):
		return fmt.Errorf("%w: mutation with a request id or a result, not both", ErrInvalid)
	case m.Result != nil:
		if err := m.Result.check(); err != nil {
			return err
		}
	}
	if m.Kind == MutationRecord {
		if m.RequestID == "" {
			return fmt.Errorf("%w: record mutation without a request id", ErrInvalid)
		}
		return nil
	}
	if m.DMap == "" || len(m.DMap) > MaxDMapNameLen {
		return fmt.Errorf("%w: mutation dmap name of %d bytes", ErrInvalid, len(m.DMap))
	}
	switch m.Kind {
	case MutationDestroy:
		return nil
	case MutationSet, MutationDelete, MutationExpire, MutationLockSet, MutationLockDelete:
	default:
		return fmt.Errorf("%w: unknown mutation kind %d", ErrInvalid, m.Kind)
	}
	if m.Key == "" || len(m.Key) > MaxKeyLen {
		return fmt.Errorf("%w: mutation key of %d bytes", ErrInvalid, len(m.Key))
	}
	if len(m.Value) > maxValueLenLimit {
		return fmt.Errorf("%w: mutation value of %d bytes", ErrInvalid, len(m.Value))
	}
	if m.ExpireAt < 0 {
		return fmt.Errorf("%w: mutation expiry %d is negative", ErrInvalid, m.ExpireAt)
	}
	switch m.Kind {
	case MutationSet, MutationExpire, MutationLockSet:
		if m.Version == 0 {
			return fmt.Errorf("%w: %s mutation without a version", ErrInvalid, m.Kind)
		}
	}
	if m.Kind == MutationLockSet && m.ExpireAt == 0 {
		return fmt.Errorf("%w: lock without a lease", ErrInvalid)
	}
	return nil
}

// ApplyMutation applies m, made by partition p's primary, to this engine's
// copy of p (a backup's path). m.Seq must be the partition's sequence
// number plus one (else ErrSeqGap) and m.Epoch not older than its fence
// (else ErrFencedEpoch); the fence rises to m.Epoch. From then on this
// engine is not p's primary: the background cycle does not expire or evict
// p's keys (the primary's mutations do) until a Do serves p again.
// OnMutation is not called.
func (e *Engine) ApplyMutation(p uint32, m Mutation) error {
	part, err := e.partition(p)
	if err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	if m.Epoch < part.fence {
		return fmt.Errorf("%w: partition %d is fenced at epoch %d, mutation %d is from epoch %d", ErrFencedEpoch, p, part.fence, m.Seq, m.Epoch)
	}
	if m.Seq != part.seq+1 {
		return fmt.Errorf("%w: partition %d is at sequence %d, mutation is %d", ErrSeqGap, p, part.seq, m.Seq)
	}
	part.raiseFenceLocked(m.Epoch)
	part.primary = false
	e.applyMutation(part, &m, e.nowNanos(), 0)
	return nil
}

// applyMutation applies m to part and advances its sequence number. It is
// the only function that changes a partition's values and locks (and,
// besides Install, its dedupe table). m must be
// valid (check, or built by the engine); applying a delete, expire or lock
// delete of something absent changes nothing but the sequence. For a set,
// m.Key and m.Value are replaced by views of the stored bytes (so m
// retains no caller memory).
// A mutation with a RequestID also records its Result (a copy).
// now only stamps access times. h is hashKey(m.Key) if the caller has it,
// else 0. part.mu is held.
func (e *Engine) applyMutation(part *partition, m *Mutation, now int64, h uint64) {
	part.seq = m.Seq
	e.applyChange(part, m, now, h)
	if m.RequestID != "" {
		e.recordLocked(part, m.RequestID, m.Result)
	}
}

// applyChange makes m's change to part's values and locks; h is
// hashKey(m.Key), or 0 for applyChange to compute it.
func (e *Engine) applyChange(part *partition, m *Mutation, now int64, h uint64) {
	if h == 0 {
		h = hashKey(m.Key)
	}
	switch m.Kind {
	case MutationSet:
		d := e.dmapForWrite(part, m.DMap)
		ent := newKVEntry(m.Key, m.Value, m.Version, m.ExpireAt, now)
		old := d.tab.set(h, ent)
		d.bytes += ent.size()
		if old != nil {
			d.bytes -= old.size()
			if old.expireAt != 0 {
				d.delExpires(old)
			}
		}
		if m.ExpireAt != 0 {
			d.addExpires(ent)
		}
		m.Key, m.Value = ent.key(), ent.value()
	case MutationDelete:
		d := part.dmap(m.DMap)
		if d == nil {
			return
		}
		old := d.tab.del(m.Key, h)
		if old == nil {
			return
		}
		d.bytes -= old.size()
		if old.expireAt != 0 {
			d.delExpires(old)
		}
	case MutationExpire:
		d := part.dmap(m.DMap)
		if d == nil {
			return
		}
		ent := d.tab.get(m.Key, h)
		if ent == nil {
			return
		}
		switch was := ent.expireAt; {
		case m.ExpireAt != 0 && was == 0:
			d.addExpires(ent)
		case m.ExpireAt == 0 && was != 0:
			d.delExpires(ent)
		}
		ent.version, ent.expireAt, ent.access = m.Version, m.ExpireAt, now
	case MutationLockSet:
		d := e.dmapForWrite(part, m.DMap)
		if ls := d.locks[m.Key]; ls != nil {
			if ls.token == m.Version {
				ls.expireAt = m.ExpireAt // a lease: same holder, waiters keep waiting
				return
			}
			d.wakeLock(m.Key, ls)
		}
		if d.locks == nil {
			d.locks = make(map[string]*lockState)
		}
		d.locks[strings.Clone(m.Key)] = &lockState{token: m.Version, expireAt: m.ExpireAt}
	case MutationLockDelete:
		d := part.dmaps[m.DMap]
		if d == nil {
			return
		}
		if ls := d.locks[m.Key]; ls != nil {
			d.wakeLock(m.Key, ls)
			delete(d.locks, m.Key)
		}
	case MutationDestroy:
		if d := part.dmaps[m.DMap]; d != nil {
			d.wakeWaiters()
			delete(part.dmaps, m.DMap)
			if part.last == d {
				part.last = nil
			}
		}
	}
}

// Seq returns partition p's sequence number: that of the last mutation
// applied to it (0 for a partition out of range).
func (e *Engine) Seq(p uint32) uint64 {
	part, err := e.partition(p)
	if err != nil {
		return 0
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	return part.seq
}

// ApplyReplicated applies muts, all made by partition p's primary at leader
// epoch epoch, to this engine's copy of p (a backup's path; the copy must
// have been installed from that primary's snapshot at that epoch) and
// returns p's sequence number after them. Under one lock hold: an epoch
// older than p's fence fails with ErrFencedEpoch; a mutation whose
// sequence number p already has is skipped (a resent batch); one that
// leaves a gap fails with ErrSeqGap, after the ones before it applied.
// From then on this engine is not p's primary (see ApplyMutation).
func (e *Engine) ApplyReplicated(p uint32, epoch uint64, muts []Mutation) (uint64, error) {
	part, err := e.partition(p)
	if err != nil {
		return 0, err
	}
	for i := range muts {
		if muts[i].Epoch != epoch {
			return 0, fmt.Errorf("%w: mutation %d of epoch %d in a batch of epoch %d", ErrInvalid, muts[i].Seq, muts[i].Epoch, epoch)
		}
		if err := muts[i].check(); err != nil {
			return 0, err
		}
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	if epoch < part.fence {
		return part.seq, fmt.Errorf("%w: partition %d is fenced at epoch %d, batch is from epoch %d", ErrFencedEpoch, p, part.fence, epoch)
	}
	part.raiseFenceLocked(epoch)
	part.primary = false
	now := e.nowNanos()
	for i := range muts {
		m := muts[i]
		if m.Seq <= part.seq {
			continue
		}
		if m.Seq != part.seq+1 {
			return part.seq, fmt.Errorf("%w: partition %d is at sequence %d, mutation is %d", ErrSeqGap, p, part.seq, m.Seq)
		}
		e.applyMutation(part, &m, now, 0)
	}
	return part.seq, nil
}

// BackfillSnapshot copies partition p as Snapshot does, but without raising
// its fence and without sorting, and calls under with the copy while still
// holding p's lock: whatever under registers (a new backup's place in the
// replication stream) sees exactly the mutations after the copy. under
// must be quick and must not call the Engine. The copy is what a new
// backup installs.
func (e *Engine) BackfillSnapshot(p uint32, under func(s *PartitionSnapshot)) error {
	part, err := e.partition(p)
	if err != nil {
		return err
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	under(part.copyLocked(p))
	return nil
}

// WithSeq calls fn with partition p's sequence number while holding p's
// lock: whatever fn registers sees exactly the mutations after that
// number. fn must be quick and must not call the Engine.
func (e *Engine) WithSeq(p uint32, fn func(seq uint64)) error {
	part, err := e.partition(p)
	if err != nil {
		return err
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	fn(part.seq)
	return nil
}
