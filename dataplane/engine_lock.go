package dataplane

import (
	"context"
	"fmt"
	"time"
)

// lock takes lock req.Key of req.DMap with a lease of req.TTL
// (DefaultLockLease when 0). Locks are a namespace of their own: locking k
// does not touch value k. A free or expired lock is taken at once with a
// new token, the version of the lock mutation (so tokens strictly increase
// across holders, and across failovers since epochs grow). A held lock is
// waited for up to req.Wait without holding the partition mutex: the
// waiter wakes when the lock is released, replaced or its lease ends (a
// real timer for the lease's remaining time by the engine clock, plus the
// background cycle, which deletes expired locks that have waiters), when
// the partition is fenced or dropped, when ctx ends or the engine closes.
// Wait is measured in real time (a timer), not by the engine clock.
func (e *Engine) lock(ctx context.Context, p uint32, part *partition, epoch uint64, req *Request) (*Response, error) {
	var waitUp <-chan time.Time
	if req.Wait > 0 {
		t := time.NewTimer(req.Wait)
		defer t.Stop()
		waitUp = t.C
	}
	timedOut := false
	for {
		resp, wake, left, err := e.tryLock(p, part, epoch, req, !timedOut)
		if resp != nil || err != nil {
			return resp, err
		}
		leaseUp := time.NewTimer(time.Duration(left))
		select {
		case <-wake:
		case <-leaseUp.C:
		case <-waitUp:
			timedOut = true
		case <-ctx.Done():
			leaseUp.Stop()
			return nil, fmt.Errorf("%w: gave up waiting for lock %s: %w", ErrLocked, quoteKey(req.Key), ctx.Err())
		case <-e.stop:
			leaseUp.Stop()
			return nil, fmt.Errorf("%w: engine closed while waiting for a lock", ErrUnavailable)
		}
		leaseUp.Stop()
	}
}

// tryLock takes the lock if it is free or expired. Otherwise, if wait, it
// returns a channel closed when the lock changes hands and the lease's
// remaining time (ns); if not, ErrLocked. With a request id, a recorded
// result answers; a taken lock or ErrLocked is recorded, a wait is not.
func (e *Engine) tryLock(p uint32, part *partition, epoch uint64, req *Request, wait bool) (resp *Response, wake <-chan struct{}, left int64, err error) {
	part.mu.Lock()
	defer part.mu.Unlock()
	o, err := e.beginLocked(p, part, epoch, true, 0)
	if err != nil {
		return nil, nil, 0, err
	}
	if req.RequestID != "" {
		// Checked at every attempt: a retry that waited next to the first
		// attempt answers with the lock that one took.
		if resp, err, hit := o.dedupeBegin(req); hit {
			return resp, nil, 0, err
		}
		defer func() { o.dedupeFinish(resp, err) }()
	}
	var ls *lockState
	d := part.dmaps[req.DMap]
	if d != nil {
		ls = d.locks[req.Key]
	}
	if ls == nil || ls.expireAt <= o.now {
		m := Mutation{Kind: MutationLockSet, DMap: req.DMap, Key: req.Key, ExpireAt: o.now + int64(leaseOf(req))}
		o.emit(&m)
		return &Response{Found: true, Token: m.Version, Version: m.Version}, nil, 0, nil
	}
	if req.Wait == 0 || !wait {
		return nil, nil, 0, fmt.Errorf("%w: lock %s in dmap %q", ErrLocked, quoteKey(req.Key), req.DMap)
	}
	return nil, d.waitOn(req.Key, ls), ls.expireAt - o.now, nil
}
