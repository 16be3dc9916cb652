package dataplane

import (
	"time"
)

// expiryRoundsPerVisit bounds the sampling rounds per DMap and kind each
// time the cycle visits a partition, bounding how long it holds the lock.
const expiryRoundsPerVisit = 16

// expiryLoop is the background expiry goroutine (Start runs it, Close
// stops it): every ExpiryInterval one cycle of at most a quarter of the
// interval.
func (e *Engine) expiryLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.expireCycle(e.cfg.ExpiryInterval / 4)
		}
	}
}

// expireCycle visits the partitions in turn, starting where the previous
// cycle stopped, until all were visited or budget (real time: it bounds
// work, not semantics) is spent. It returns the keys and locks it removed.
func (e *Engine) expireCycle(budget time.Duration) int {
	deadline := time.Now().Add(budget)
	n := uint32(len(e.parts))
	start := e.nextPart.Load() % n
	removed := 0
	for i := range n {
		p := (start + i) % n
		removed += e.expirePartition(p, deadline)
		if time.Now().After(deadline) {
			e.nextPart.Store((p + 1) % n)
			return removed
		}
	}
	e.nextPart.Store((start + 1) % n)
	return removed
}

// expirePartition runs one visit of partition p, under its lock, if this
// engine serves p (see partition.activeLocked); its deletions are
// mutations of the epoch it serves p at. Per DMap:
//
//  1. TTL: sample ExpirySamples keys that have an expiry, delete the
//     expired ones; repeat while more than 25% of a sample had expired.
//  2. Max idle: the same over random keys, deleting idle ones.
//  3. Locks: delete expired locks that someone waits for (waking them)
//     and those among ExpirySamples sampled locks.
//
// Rounds stop at the deadline, and after expiryRoundsPerVisit.
func (e *Engine) expirePartition(p uint32, deadline time.Time) int {
	part := &e.parts[p]
	part.mu.Lock()
	defer part.mu.Unlock()
	if !part.activeLocked() || len(part.dmaps) == 0 || part.seq >= maxSeq-seqReserve {
		return 0
	}
	o := &opCtx{e: e, p: p, part: part, epoch: part.served, now: e.nowNanos()}
	removed := 0
	var ents []*kvEntry
	var keys []string
	for _, d := range part.dmaps {
		removed += o.expireSampled(d, deadline, &ents)
		if d.pol.maxIdle > 0 {
			removed += o.evictIdleSampled(d, deadline)
		}
		removed += o.expireLocks(d, &keys)
	}
	return removed
}

func (o *opCtx) expireSampled(d *dmapStore, deadline time.Time, ents *[]*kvEntry) int {
	samples := o.e.cfg.ExpirySamples
	removed := 0
	for range expiryRoundsPerVisit {
		if len(d.expires) == 0 {
			break
		}
		*ents = (*ents)[:0]
		sampled := 0
		for ent := range d.expires { // Go starts map iteration at random
			sampled++
			if ent.expired(o.now) {
				*ents = append(*ents, ent)
			}
			if sampled == samples {
				break
			}
		}
		for _, ent := range *ents {
			o.remove(d, ent.key())
			d.ctr.expirations.Add(1)
		}
		removed += len(*ents)
		if len(*ents)*4 <= sampled || time.Now().After(deadline) {
			break
		}
	}
	clear(*ents)
	return removed
}

func (o *opCtx) evictIdleSampled(d *dmapStore, deadline time.Time) int {
	samples := o.e.cfg.ExpirySamples
	removed := 0
	for range expiryRoundsPerVisit {
		if d.tab.n == 0 {
			break
		}
		found := 0
		for range samples {
			h, ent := d.tab.sample()
			if ent == nil || !o.idle(d, ent) {
				continue
			}
			found++
			if k := ent.key(); d.tab.get(k, h) == ent { // not already removed (sampled twice)
				o.remove(d, k)
				d.ctr.evictions.Add(1)
				removed++
			}
		}
		if found*4 <= samples || time.Now().After(deadline) {
			break
		}
	}
	return removed
}

func (o *opCtx) expireLocks(d *dmapStore, keys *[]string) int {
	if len(d.locks) == 0 {
		return 0
	}
	*keys = (*keys)[:0]
	for k := range d.waited {
		if ls := d.locks[k]; ls != nil && ls.expireAt <= o.now {
			*keys = append(*keys, k)
		}
	}
	sampled := 0
	for k, ls := range d.locks {
		if sampled == o.e.cfg.ExpirySamples {
			break
		}
		sampled++
		if _, waited := d.waited[k]; !waited && ls.expireAt <= o.now {
			*keys = append(*keys, k)
		}
	}
	for _, k := range *keys {
		o.emit(&Mutation{Kind: MutationLockDelete, DMap: d.name, Key: k})
	}
	return len(*keys)
}
