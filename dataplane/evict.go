package dataplane

// enforceLimits evicts from DMap name until it is within its max_keys and
// max_bytes, if its policy is LRU, never evicting key (just written;
// admit made sure it fits alone). Each eviction deletes (as a
// mutation) the key victim picks: Redis's approximated LRU.
func (o *opCtx) enforceLimits(name, key string) {
	d := o.part.dmap(name)
	if d == nil || !d.pol.lru || !d.pol.over(int64(d.tab.n), d.bytes) {
		return
	}
	keep := d.tab.get(key, o.keyHash(key))
	for d.pol.over(int64(d.tab.n), d.bytes) && o.part.seq < maxSeq {
		k, expired := o.victim(d, keep)
		if k == "" {
			return
		}
		o.remove(d, k)
		if expired {
			d.ctr.expirations.Add(1)
		} else {
			d.ctr.evictions.Add(1)
		}
	}
}

// evictPoolSize is how many eviction candidates a DMap keeps between
// evictions (Redis's EVPOOL_SIZE).
const evictPoolSize = 16

// evictCand is a candidate for eviction: a sampled entry and its access
// time when sampled.
type evictCand struct {
	h      uint64
	ent    *kvEntry
	access int64
}

// victim picks the key to evict from d, other than keep. Like Redis, it
// samples the policy's LRUSamples keys into d's pool of the evictPoolSize
// least recently used candidates seen so far, then takes the oldest
// candidate still present and not used since it was sampled. So each
// eviction benefits from earlier samples: much closer to exact LRU than
// sampling alone. A sampled expired key is taken at once (expired true).
func (o *opCtx) victim(d *dmapStore, keep *kvEntry) (key string, expired bool) {
	for range d.pol.samples {
		h, ent := d.tab.sample()
		if ent == nil || ent == keep {
			continue
		}
		if ent.expired(o.now) {
			return ent.key(), true
		}
		d.poolAdd(evictCand{h, ent, ent.access})
	}
	for len(d.pool) > 0 {
		c := d.pool[0]
		d.pool = append(d.pool[:0], d.pool[1:]...)
		if c.ent != keep && c.ent.access == c.access && d.tab.get(c.ent.key(), c.h) == c.ent {
			return c.ent.key(), false
		}
	}
	// Every sample hit keep (a tiny table): take any other key.
	if d.tab.n > 1 {
		d.tab.each(func(_ uint64, e *kvEntry) bool {
			if e != keep {
				key = e.key()
				return false
			}
			return true
		})
	}
	return key, false
}

// poolAdd inserts c into d's pool, kept sorted by access time (oldest
// first), holding at most evictPoolSize candidates.
func (d *dmapStore) poolAdd(c evictCand) {
	for i := range d.pool {
		if d.pool[i].ent == c.ent { // sampled again: refresh
			d.pool = append(d.pool[:i], d.pool[i+1:]...)
			break
		}
	}
	i := len(d.pool)
	for i > 0 && d.pool[i-1].access > c.access {
		i--
	}
	if i >= evictPoolSize {
		return
	}
	if d.pool == nil {
		d.pool = make([]evictCand, 0, evictPoolSize+1)
	}
	d.pool = append(d.pool, evictCand{})
	copy(d.pool[i+1:], d.pool[i:])
	d.pool[i] = c
	if len(d.pool) > evictPoolSize {
		d.pool = d.pool[:evictPoolSize]
	}
}
