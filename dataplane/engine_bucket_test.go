package dataplane

import (
	"testing"

	"pgregory.net/rapid"
)

// TestBucketMatchesMap drives one open-addressing bucket with random
// inserts, replacements and deletes and checks it against a Go map after
// every step: every stored hash is found, deleted ones are gone, the count
// and the iteration match. Hashes are drawn so that their home slots
// collide and runs wrap around the end of the slot array, where
// backward-shift deletion is easiest to get wrong.
func TestBucketMatchesMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := newKVBucket(0, rapid.SampledFrom([]int{1, 2, 8, 16}).Draw(t, "slots"))
		model := map[uint64]*kvEntry{}
		// Few home slots (the low bits), distinct high bits.
		hash := rapid.Custom(func(t *rapid.T) uint64 {
			home := rapid.Uint64Range(0, 7).Draw(t, "home")
			tag := rapid.Uint64Range(0, 5).Draw(t, "tag")
			return tag<<32 | home | rapid.SampledFrom([]uint64{0, 8, 16, 0xfff8}).Draw(t, "spread")
		})
		for step := range rapid.IntRange(1, 200).Draw(t, "steps") {
			h := hash.Draw(t, "h")
			switch op := rapid.IntRange(0, 2).Draw(t, "op"); {
			case op < 2: // insert or replace
				e := newKVEntry("k", nil, uint64(step), 0, 0)
				if i := b.find(h); i >= 0 {
					b.slots[i].e = e
				} else {
					b.insert(h, e)
				}
				model[h] = e
			default:
				if i := b.find(h); i >= 0 {
					b.removeAt(i)
				}
				delete(model, h)
			}
			if b.n != len(model) {
				t.Fatalf("step %d: bucket counts %d, model %d", step, b.n, len(model))
			}
			if b.n*8 > len(b.slots)*7 {
				t.Fatalf("step %d: %d entries in %d slots, over 7/8", step, b.n, len(b.slots))
			}
			for mh, me := range model {
				if got := b.lookup(mh); got != me {
					t.Fatalf("step %d: hash %x gives %p, want %p", step, mh, got, me)
				}
			}
			seen := 0
			for bh, be := range b.all {
				if model[bh] != be {
					t.Fatalf("step %d: iteration yields hash %x not in the model", step, bh)
				}
				seen++
			}
			if seen != len(model) {
				t.Fatalf("step %d: iteration yields %d entries, model %d", step, seen, len(model))
			}
			for _, gone := range []uint64{h, h ^ 1<<40} {
				if _, ok := model[gone]; !ok && b.lookup(gone) != nil {
					t.Fatalf("step %d: absent hash %x found", step, gone)
				}
			}
		}
	})
}
