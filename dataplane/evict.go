package dataplane

// enforceLimits evicts from DMap name until it is within its max_keys and
// max_bytes, if its policy is LRU, never evicting keep (the key just
// written; admit made sure it fits alone). Each eviction samples the
// policy's LRUSamples keys and deletes (as a mutation) the least recently
// used, or at once one found expired — Redis's approximated LRU, without
// its candidate pool.
func (o *opCtx) enforceLimits(name, keep string) {
	d := o.part.dmaps[name]
	if d == nil || !d.pol.lru {
		return
	}
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

// victim picks the key to evict from d: the least recently accessed of a
// sample, other than keep; expired reports that it had expired anyway.
func (o *opCtx) victim(d *dmapStore, keep string) (key string, expired bool) {
	var best *kvEntry
	for range d.pol.samples {
		k, ent := d.tab.sample()
		if ent == nil || k == keep {
			continue
		}
		if ent.expired(o.now) {
			return k, true
		}
		if best == nil || ent.access < best.access {
			key, best = k, ent
		}
	}
	if best == nil && d.tab.n > 1 {
		// Every sample hit keep (a tiny table): take any other key.
		d.tab.each(func(k string, _ *kvEntry) bool {
			if k != keep {
				key = k
				return false
			}
			return true
		})
	}
	return key, false
}
