package dataplane

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// kvEntry is the header of one stored key/value. It is never allocated as
// a Go struct: newKVEntry allocates one pointer-free []byte holding
//
//	[0:8)   version   uint64
//	[8:16)  expireAt  int64   unix ns; 0 = none
//	[16:24) access    int64   unix ns of the last read or write (LRU, max idle)
//	uvarint len(key), uvarint len(value), key bytes, value bytes
//
// and views its start as a *kvEntry. One allocation per key, in a noscan
// size class (16-byte keys and 100-byte values: 24+1+1+116 = 142 bytes, in
// the 144-byte class) that the garbage collector never scans. The key and
// value bytes are immutable: the strings and value slices handed out (to
// OnMutation, snapshots, scans) view them. Only the three header fields
// change in place, under the partition lock.
type kvEntry struct {
	version  uint64
	expireAt int64
	access   int64
}

const kvHeaderLen = int(unsafe.Sizeof(kvEntry{}))

// newKVEntry stores key (non-empty) and value (copied) in a fresh entry.
func newKVEntry(key string, value []byte, version uint64, expireAt, now int64) *kvEntry {
	var lens [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lens[:], uint64(len(key)))
	n += binary.PutUvarint(lens[n:], uint64(len(value)))
	buf := make([]byte, kvHeaderLen+n+len(key)+len(value))
	copy(buf[kvHeaderLen:], lens[:n])
	copy(buf[kvHeaderLen+n:], key)
	copy(buf[kvHeaderLen+n+len(key):], value)
	e := (*kvEntry)(unsafe.Pointer(unsafe.SliceData(buf)))
	e.version, e.expireAt, e.access = version, expireAt, now
	return e
}

// at returns the byte at offset off of the entry's allocation.
func (e *kvEntry) at(off int) byte { return *(*byte)(unsafe.Add(unsafe.Pointer(e), off)) }

// uvarint decodes the length at off; it reads only the bytes of the varint.
func (e *kvEntry) uvarint(off int) (n, next int) {
	var x uint64
	for shift := uint(0); ; shift += 7 {
		b := e.at(off)
		off++
		if b < 0x80 {
			return int(x | uint64(b)<<shift), off
		}
		x |= uint64(b&0x7f) << shift
	}
}

// layout returns the offset of the key and the key and value lengths.
func (e *kvEntry) layout() (off, klen, vlen int) {
	klen, off = e.uvarint(kvHeaderLen)
	vlen, off = e.uvarint(off)
	return off, klen, vlen
}

// key returns the stored key (a string viewing the entry's bytes).
func (e *kvEntry) key() string {
	off, klen, _ := e.layout()
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(e), off)), klen)
}

// value returns the stored value bytes, which must not be modified; nil
// for an empty value (a zero-length slice there could point just past the
// allocation, at the next object, which the garbage collector must never
// see).
func (e *kvEntry) value() []byte {
	off, klen, vlen := e.layout()
	if vlen == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(e), off+klen)), vlen)
}

// size is what the entry counts against max_bytes: len(key)+len(value).
func (e *kvEntry) size() int64 {
	_, klen, vlen := e.layout()
	return int64(klen) + int64(vlen)
}

func (e *kvEntry) expired(now int64) bool { return e.expireAt != 0 && e.expireAt <= now }

// keyHash orders keys for scans and places them in table buckets: XXH64
// (seed 0) of the key, then the fmix64 finalizer (so it is unrelated to
// metadata.PartitionOf, which hashes the DMap name and key). Every member
// computes the same order, so a scan cursor stays valid across failovers.
func keyHash(key string) uint64 {
	h := xxhash.Sum64String(key)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashKey is the hash the engine uses: keyHash, except in tests, which
// swap in a weak one to exercise collisions.
var hashKey = keyHash

// Table shape. A bucket splits when it reaches kvBucketMax keys, just
// before its slot array (1024 slots then) would have to grow. The
// directory grows to at most one slot per kvDirPerKey keys and
// 1<<kvMaxDepth slots.
const (
	kvBucketMax = 896
	kvDirPerKey = 8
	kvMaxDepth  = 24
	// kvBucketSlots is the slot array of a bucket made by a split.
	kvBucketSlots = 1024
	// kvFirstSlots is the slot array of a table's first bucket.
	kvFirstSlots = 8
)

// kvTable holds one DMap's keys on one partition: an extendible hash table
// of open-addressing buckets keyed by hashKey(key). A key lives in the bucket for the top
// bits of its hash; the directory has 1<<depth slots and a bucket of local
// depth d covers the 1<<(depth-d) slots sharing its d-bit prefix. A bucket
// reaching kvBucketMax keys splits in two (doubling the directory if
// needed), which costs O(kvBucketMax), never a rehash of the whole table.
//
// Keying the buckets by the 64-bit hash rather than the key string makes
// a slot 16 bytes with one pointer (the entry, which holds its key). A key
// whose hash equals that of a different key already in its bucket (a
// 64-bit collision: practically never) goes to the overflow map instead.
//
// A lookup reads the directory, the bucket, one or two slots and the
// entry: three dependent memory reads that miss the cache in a large
// table. (Buckets were Go maps before; a map adds its header, directory
// and table, which made a lookup in a table of 100k keys about twice as
// slow.)
//
// Buckets cover contiguous ranges of the hash space, so walking the hash
// space in order (scan) visits buckets in order, one sort per bucket.
type kvTable struct {
	depth uint8
	dir   []*kvBucket
	n     int
	// over holds colliding entries by key (the strings view the entries'
	// bytes); nil when there are none.
	over map[string]*kvEntry
}

// kvBucket is a linear-probing hash table of (hash, entry) slots: a
// power-of-two slot array at most 7/8 full, searched from slot h&mask;
// an empty slot has a nil entry. Deleting shifts the following run back
// (no tombstones).
type kvBucket struct {
	depth uint8
	n     int
	slots []kvSlot
}

func newKVBucket(depth uint8, slots int) *kvBucket {
	return &kvBucket{depth: depth, slots: make([]kvSlot, slots)}
}

// find returns the slot index of hash h, or -1.
func (b *kvBucket) find(h uint64) int {
	mask := uint64(len(b.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &b.slots[i]
		if s.e == nil {
			return -1
		}
		if s.h == h {
			return int(i)
		}
	}
}

// lookup returns the entry of hash h, or nil.
func (b *kvBucket) lookup(h uint64) *kvEntry {
	if i := b.find(h); i >= 0 {
		return b.slots[i].e
	}
	return nil
}

// insert stores e under h, which must not be in b.
func (b *kvBucket) insert(h uint64, e *kvEntry) {
	if (b.n+1)*8 > len(b.slots)*7 {
		b.grow()
	}
	b.place(h, e)
	b.n++
}

// place puts (h, e) in the first free slot from h's.
func (b *kvBucket) place(h uint64, e *kvEntry) {
	mask := uint64(len(b.slots) - 1)
	i := h & mask
	for b.slots[i].e != nil {
		i = (i + 1) & mask
	}
	b.slots[i] = kvSlot{h, e}
}

// grow doubles the slot array.
func (b *kvBucket) grow() {
	old := b.slots
	b.slots = make([]kvSlot, 2*len(old))
	for _, s := range old {
		if s.e != nil {
			b.place(s.h, s.e)
		}
	}
}

// removeAt empties slot i and moves back the slots after it that would
// otherwise be cut off from their home slot.
func (b *kvBucket) removeAt(i int) {
	mask := len(b.slots) - 1
	b.n--
	for {
		b.slots[i] = kvSlot{}
		j := i
		for {
			j = (j + 1) & mask
			s := b.slots[j]
			if s.e == nil {
				return
			}
			// s stays if its home slot k lies cyclically in (i, j].
			k := int(s.h) & mask
			if (i < j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
				b.slots[i] = s
				i = j
				break
			}
		}
	}
}

// all yields the bucket's (hash, entry) pairs.
func (b *kvBucket) all(yield func(uint64, *kvEntry) bool) {
	for _, s := range b.slots {
		if s.e != nil && !yield(s.h, s.e) {
			return
		}
	}
}

func (t *kvTable) bucket(h uint64) *kvBucket {
	// A shift by 64 yields 0 in Go: with depth 0 every hash maps to slot 0.
	return t.dir[h>>(64-uint(t.depth))]
}

// get returns the entry of key (hash h), or nil.
func (t *kvTable) get(key string, h uint64) *kvEntry {
	if t.n == 0 {
		return nil
	}
	if e := t.bucket(h).lookup(h); e != nil && e.key() == key {
		return e
	}
	if t.over != nil {
		return t.over[key]
	}
	return nil
}

// set stores e (hash h of its key) and returns the entry it replaced, if
// any, which the table no longer references.
func (t *kvTable) set(h uint64, e *kvEntry) *kvEntry {
	if t.dir == nil {
		t.dir = []*kvBucket{newKVBucket(0, kvFirstSlots)}
		t.depth = 0
	}
	b := t.bucket(h)
	i := b.find(h)
	if i < 0 {
		b.insert(h, e)
		t.n++
		if b.n >= kvBucketMax {
			t.split(b, h)
		}
		return nil
	}
	key := e.key()
	if old := b.slots[i].e; old.key() == key {
		b.slots[i].e = e
		return old
	}
	if t.over == nil {
		t.over = make(map[string]*kvEntry)
	}
	prev := t.over[key]
	t.over[key] = e // assigning replaces the stored key string too
	if prev == nil {
		t.n++
	}
	return prev
}

// del removes key (hash h) and returns its entry, or nil.
func (t *kvTable) del(key string, h uint64) *kvEntry {
	if t.n == 0 {
		return nil
	}
	b := t.bucket(h)
	i := b.find(h)
	var e *kvEntry
	if i >= 0 {
		e = b.slots[i].e
	}
	switch {
	case e != nil && e.key() == key:
		b.removeAt(i)
		for k, oe := range t.over { // promote a colliding key
			if hashKey(k) == h {
				b.insert(h, oe)
				delete(t.over, k)
				break
			}
		}
	case t.over[key] != nil:
		e = t.over[key]
		delete(t.over, key)
	default:
		return nil
	}
	if len(t.over) == 0 {
		t.over = nil
	}
	if t.n--; t.n == 0 {
		*t = kvTable{} // free the directory and the buckets
	}
	return e
}

// kvSplitScratch holds the low half of a splitting bucket (see split).
var kvSplitScratch = sync.Pool{New: func() any {
	s := make([]kvSlot, 0, kvBucketMax)
	return &s
}}

type kvSlot struct {
	h uint64
	e *kvEntry
}

// split splits b (which holds hash h) until the bucket holding h holds
// fewer than kvBucketMax keys, or the directory may not grow. The high
// half moves to a new bucket of kvBucketSlots slots; b keeps its slots
// for the low half: cleared and refilled from a pooled scratch slice. So
// a split bucket never grows (it splits first) and a split allocates one
// bucket and frees nothing.
func (t *kvTable) split(b *kvBucket, h uint64) {
	for b.n >= kvBucketMax {
		if b.depth == t.depth {
			if t.depth >= kvMaxDepth || len(t.dir)*2 > max(64, t.n/kvDirPerKey) {
				return // let the bucket grow: only skewed hashes get here
			}
			dir := make([]*kvBucket, 2*len(t.dir))
			for i, x := range t.dir {
				dir[2*i], dir[2*i+1] = x, x
			}
			t.dir, t.depth = dir, t.depth+1
		}
		d := b.depth
		bit := uint64(1) << (63 - d)
		hi := newKVBucket(d+1, kvBucketSlots)
		scratch := kvSplitScratch.Get().(*[]kvSlot)
		lo := (*scratch)[:0]
		for _, s := range b.slots {
			switch {
			case s.e == nil:
			case s.h&bit != 0:
				hi.insert(s.h, s.e)
			default:
				lo = append(lo, s)
			}
		}
		clear(b.slots)
		b.n = 0
		for _, s := range lo {
			b.insert(s.h, s.e)
		}
		clear(lo) // the pool must not keep entries alive
		*scratch = lo[:0]
		kvSplitScratch.Put(scratch)
		b.depth = d + 1
		// b covered the directory slots [first, first+span): the second
		// half now goes to hi.
		span := 1 << (t.depth - d)
		first := int(h>>(64-uint(d))) << (t.depth - d)
		for i := span / 2; i < span; i++ {
			t.dir[first+i] = hi
		}
		if h&bit != 0 {
			b = hi
		}
	}
}

// bucketRange returns the hash range [lo, hi] that b, the bucket of hash
// h, covers.
func bucketRange(b *kvBucket, h uint64) (lo, hi uint64) {
	d := uint(b.depth)
	lo = h >> (64 - d) << (64 - d) // 0 when d == 0
	return lo, lo | (math.MaxUint64 >> d)
}

// sample returns one entry of the table chosen at random (nearly
// uniformly: a random directory slot, then the first entry at or after a
// random slot of its bucket) and its hash, or nil for an empty table.
// Colliding entries are never sampled.
func (t *kvTable) sample() (uint64, *kvEntry) {
	if t.n == 0 {
		return 0, nil
	}
	for range 8 {
		if b := t.dir[rand.IntN(len(t.dir))]; b.n > 0 {
			return b.sample()
		}
	}
	// Mostly empty buckets (after many deletes): walk from a random slot.
	start := rand.IntN(len(t.dir))
	for i := range t.dir {
		if b := t.dir[(start+i)%len(t.dir)]; b.n > 0 {
			return b.sample()
		}
	}
	return 0, nil
}

// sample returns the first entry at or after a random slot of b, which
// is not empty.
func (b *kvBucket) sample() (uint64, *kvEntry) {
	mask := len(b.slots) - 1
	for i := rand.IntN(len(b.slots)); ; i = (i + 1) & mask {
		if s := b.slots[i]; s.e != nil {
			return s.h, s.e
		}
	}
}

// each calls fn for every entry until fn returns false.
func (t *kvTable) each(fn func(h uint64, e *kvEntry) bool) {
	var prev *kvBucket
	for _, b := range t.dir {
		if b == prev {
			continue // consecutive slots of one bucket
		}
		prev = b
		for h, e := range b.all {
			if !fn(h, e) {
				return
			}
		}
	}
	for k, e := range t.over {
		if !fn(hashKey(k), e) {
			return
		}
	}
}
