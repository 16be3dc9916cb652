package dataplane

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Engine is this member's storage engine: the partitions it holds, each a
// set of DMaps of values and locks, guarded by one mutex per partition.
// See doc.go for the duties and lock ordering.
type Engine struct {
	// OnMutation, when set, is called with every mutation Do and the
	// background cycle apply (not ApplyMutation's), in sequence order per
	// partition, with the partition lock held: it must be quick, must not
	// block and must not call the Engine (append to a queue). Set it before
	// the first Do or Start, never after.
	OnMutation func(p uint32, m Mutation)

	cfg      Config
	dedupe   dedupeLimits
	now      func() time.Time
	parts    []partition
	def      *dmapPolicy
	policies map[string]*dmapPolicy // read-only after NewEngine
	counters sync.Map               // DMap name -> *dmapCounters

	startOnce sync.Once
	closeOnce sync.Once
	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
	// nextPart is where the next expiry cycle starts (the expiry goroutine
	// and tests only).
	nextPart atomic.Uint32
}

// NewEngine returns an engine for partitionCount partitions, all empty,
// configured by cfg (zero fields take their defaults; Validate is called
// first). now is the clock every expiry, TTL and idle decision reads; nil
// means time.Now. Call Start to run background expiry, Close to stop it.
func NewEngine(cfg Config, partitionCount uint32, now func() time.Time) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if partitionCount == 0 {
		return nil, fmt.Errorf("%w: engine needs at least one partition", ErrInvalid)
	}
	if now == nil {
		now = time.Now
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:      cfg,
		dedupe:   dedupeLimits{entries: cfg.DedupeEntries, bytes: cfg.DedupeBytes, window: int64(cfg.DedupeWindow)},
		now:      now,
		parts:    make([]partition, partitionCount),
		def:      cfg.Default.policy(),
		policies: make(map[string]*dmapPolicy, len(cfg.DMaps)),
		stop:     make(chan struct{}),
	}
	for name, o := range cfg.DMaps {
		e.policies[name] = o.inherit(cfg.Default).policy()
	}
	return e, nil
}

// Start starts the background expiry goroutine (once; not after Close).
func (e *Engine) Start() {
	e.startOnce.Do(func() {
		if e.closed.Load() {
			return
		}
		e.wg.Add(1)
		go e.expiryLoop()
	})
}

// Close stops the background goroutine and waits for it; lock waiters
// give up with ErrUnavailable and later calls of Do fail with it. The
// data stays readable by Snapshot. Idempotent.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
	})
	e.startOnce.Do(func() {}) // a Start racing with Close does not start
	e.wg.Wait()
	return nil
}

// PartitionCount returns the number of partitions of the engine.
func (e *Engine) PartitionCount() uint32 { return uint32(len(e.parts)) }

func (e *Engine) partition(p uint32) (*partition, error) {
	if int(p) >= len(e.parts) {
		return nil, fmt.Errorf("%w: partition %d out of range [0, %d)", ErrInvalid, p, len(e.parts))
	}
	return &e.parts[p], nil
}

func (e *Engine) nowNanos() int64 { return e.now().UnixNano() }

func (e *Engine) policyFor(name string) *dmapPolicy {
	if p, ok := e.policies[name]; ok {
		return p
	}
	return e.def
}

func (e *Engine) countersFor(name string) *dmapCounters {
	if c, ok := e.counters.Load(name); ok {
		return c.(*dmapCounters)
	}
	c, _ := e.counters.LoadOrStore(name, new(dmapCounters))
	return c.(*dmapCounters)
}

// Do runs req on partition p (0 <= p < partition count) as its primary
// under leader epoch epoch (< MaxEpoch). Operations on one partition are
// serialized by its mutex, so every operation is linearizable per key.
//
// Fencing: Do fails with ErrFencedEpoch if epoch is older than p's fence
// epoch, and raises the fence to epoch if it is newer, under the partition
// lock. Every write takes the partition's next sequence number seq and
// gives the key version epoch<<40 | seq (see Response.Version).
//
// Request ids: a write (Op.IsWrite) with a RequestID whose result p still
// holds is not run again: Do returns a copy of the recorded result (the
// Response, or an error with the first one's sentinel and text); otherwise
// it runs and its definitive result is recorded (see doc.go, "Request
// ids"). The id must be at most MaxRequestIDLen bytes.
//
// Errors wrap the sentinels of request.go. req.Partition is ignored (p is
// authoritative) and req is not retained.
func (e *Engine) Do(ctx context.Context, p uint32, epoch uint64, req *Request) (*Response, error) {
	return e.doAt(ctx, p, epoch, req, 0, nil)
}

// doAt is Do reading the clock as now (unix ns) if now is not 0 (the
// requests of a batch, applied one after the other, share one reading),
// and writing a get's or put's response into out if out is not nil.
func (e *Engine) doAt(ctx context.Context, p uint32, epoch uint64, req *Request, now int64, out *Response) (*Response, error) {
	part, err := e.partition(p)
	if err != nil {
		return nil, err
	}
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalid)
	}
	if epoch >= MaxEpoch {
		return nil, fmt.Errorf("%w: leader epoch %d over %d", ErrInvalid, epoch, MaxEpoch-1)
	}
	if err := e.checkRequest(req); err != nil {
		return nil, err
	}
	var match *globPattern
	if req.Op == OpScan {
		if match, err = compileGlob(req.Match); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dataplane: %s: %w", req.Op, err)
	}
	if e.closed.Load() {
		return nil, fmt.Errorf("%w: engine closed", ErrUnavailable)
	}
	if req.Op == OpLock {
		return e.lock(ctx, p, part, epoch, req)
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	o, err := e.beginLocked(p, part, epoch, req.Op.IsWrite(), now)
	if err != nil {
		return nil, err
	}
	if req.RequestID != "" && req.Op.IsWrite() {
		if resp, err, hit := o.dedupeBegin(req); hit {
			return resp, err
		}
	}
	o.out = out
	resp, err := o.run(req, match)
	o.dedupeFinish(resp, err)
	return resp, err
}

// run dispatches req (not a lock) to its operation.
func (o *opCtx) run(req *Request, match *globPattern) (*Response, error) {
	switch req.Op {
	case OpGet:
		return o.get(req)
	case OpPut:
		return o.put(req)
	case OpDelete:
		return o.del(req)
	case OpExpire:
		return o.expire(req)
	case OpIncr:
		return o.incr(req)
	case OpIncrByFloat:
		return o.incrByFloat(req)
	case OpGetPut:
		return o.getPut(req)
	case OpUnlock:
		return o.unlock(req)
	case OpLease:
		return o.lease(req)
	case OpScan:
		return o.scan(req, match)
	case OpDestroy:
		return o.destroy(req)
	case OpExists:
		return o.exists(req)
	}
	return nil, fmt.Errorf("%w: unknown operation %d", ErrInvalid, req.Op)
}

// beginLocked admits an operation at epoch on part (fencing) and returns
// its context, whose clock reads now (unix ns; 0: the engine's clock). part.mu is held.
func (e *Engine) beginLocked(p uint32, part *partition, epoch uint64, write bool, now int64) (opCtx, error) {
	if epoch < part.fence {
		return opCtx{}, fmt.Errorf("%w: partition %d is fenced at epoch %d, request at %d", ErrFencedEpoch, p, part.fence, epoch)
	}
	part.raiseFenceLocked(epoch)
	part.primary, part.served = true, epoch
	// Reads may write too (lazy expiry), so every operation keeps the
	// reserve; writes are refused a reserve early, so a read never is.
	limit := uint64(maxSeq - seqReserve/2)
	if write {
		limit = maxSeq - seqReserve
	}
	if part.seq >= limit {
		return opCtx{}, fmt.Errorf("%w: partition %d has used up its sequence numbers", ErrUnavailable, p)
	}
	if now == 0 {
		now = e.nowNanos()
	}
	return opCtx{e: e, p: p, part: part, epoch: epoch, now: now}, nil
}

// checkRequest validates req without the partition lock.
func (e *Engine) checkRequest(req *Request) error {
	if req.DMap == "" {
		return fmt.Errorf("%w: empty dmap name", ErrInvalid)
	}
	if len(req.DMap) > MaxDMapNameLen {
		return fmt.Errorf("%w: dmap name of %d bytes, limit %d", ErrTooLarge, len(req.DMap), MaxDMapNameLen)
	}
	if req.TTL < 0 || req.TTL > MaxTTL {
		return fmt.Errorf("%w: ttl %s out of range [0, %s]", ErrInvalid, req.TTL, MaxTTL)
	}
	if req.ExpireAt < 0 {
		return fmt.Errorf("%w: negative expire_at %d", ErrInvalid, req.ExpireAt)
	}
	if req.TTL != 0 && req.ExpireAt != 0 {
		return fmt.Errorf("%w: both ttl and expire_at set", ErrInvalid)
	}
	if len(req.RequestID) > MaxRequestIDLen {
		return fmt.Errorf("%w: request id of %d bytes, limit %d", ErrInvalid, len(req.RequestID), MaxRequestIDLen)
	}
	switch req.Op {
	case OpScan:
		if req.Limit < 0 || req.Limit > MaxScanLimit {
			return fmt.Errorf("%w: scan limit %d out of range [0, %d]", ErrInvalid, req.Limit, MaxScanLimit)
		}
		if len(req.Match) > MaxKeyLen {
			return fmt.Errorf("%w: match pattern of %d bytes, limit %d", ErrTooLarge, len(req.Match), MaxKeyLen)
		}
		if _, _, err := parseScanCursor(req.Cursor); err != nil {
			return err
		}
		return nil
	case OpDestroy:
		return nil
	case OpGet, OpPut, OpDelete, OpExpire, OpIncr, OpIncrByFloat, OpGetPut, OpLock, OpUnlock, OpLease, OpExists:
	default:
		return fmt.Errorf("%w: unknown operation %d", ErrInvalid, req.Op)
	}
	if req.Key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(req.Key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(req.Key), MaxKeyLen)
	}
	switch req.Op {
	case OpPut, OpGetPut:
		if len(req.Value) > e.cfg.MaxValueLen {
			return fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(req.Value), e.cfg.MaxValueLen)
		}
	case OpLock:
		if req.Wait < 0 || req.Wait > MaxTTL {
			return fmt.Errorf("%w: lock wait %s out of range [0, %s]", ErrInvalid, req.Wait, MaxTTL)
		}
	}
	if req.Op == OpPut {
		if req.NX && req.XX {
			return fmt.Errorf("%w: nx and xx both set", ErrInvalid)
		}
		if req.KeepTTL && (req.TTL != 0 || req.ExpireAt != 0) {
			return fmt.Errorf("%w: keep_ttl with a ttl or expire_at", ErrInvalid)
		}
	}
	return nil
}

// Stats is a point-in-time view of the engine (each partition is read
// under its lock in turn, so it is not one atomic snapshot).
type Stats struct {
	// Partitions is how many partitions the engine holds (Holds).
	Partitions int `json:"partitions"`
	// Totals over every DMap.
	Keys        int64  `json:"keys"`
	Bytes       int64  `json:"bytes"`
	Locks       int64  `json:"locks"`
	Evictions   uint64 `json:"evictions"`
	Expirations uint64 `json:"expirations"`
	// DMaps by name: every DMap held now or with a counter above 0.
	DMaps map[string]DMapStats `json:"dmaps"`
}

// DMapStats describes one DMap on this engine, over all its partitions.
type DMapStats struct {
	Keys  int64 `json:"keys"`
	Bytes int64 `json:"bytes"` // len(key)+len(value) summed
	Locks int64 `json:"locks"`
	// Evictions (LRU and max idle) and Expirations (TTL) are cumulative
	// since the engine started; they count on the primary only.
	Evictions   uint64 `json:"evictions"`
	Expirations uint64 `json:"expirations"`
}

// Stats returns per-DMap and total key, byte and lock counts and
// eviction and expiration counters, and the partitions held.
func (e *Engine) Stats() Stats {
	s := Stats{DMaps: make(map[string]DMapStats)}
	for i := range e.parts {
		part := &e.parts[i]
		part.mu.Lock()
		if part.seq != 0 || len(part.dmaps) != 0 {
			s.Partitions++
		}
		for name, d := range part.dmaps {
			ds := s.DMaps[name]
			ds.Keys += int64(d.tab.n)
			ds.Bytes += d.bytes
			ds.Locks += int64(len(d.locks))
			s.DMaps[name] = ds
		}
		part.mu.Unlock()
	}
	e.counters.Range(func(k, v any) bool {
		c := v.(*dmapCounters)
		ds := s.DMaps[k.(string)]
		ds.Evictions, ds.Expirations = c.evictions.Load(), c.expirations.Load()
		if ds != (DMapStats{}) {
			s.DMaps[k.(string)] = ds
		}
		return true
	})
	for _, ds := range s.DMaps {
		s.Keys += ds.Keys
		s.Bytes += ds.Bytes
		s.Locks += ds.Locks
		s.Evictions += ds.Evictions
		s.Expirations += ds.Expirations
	}
	return s
}
