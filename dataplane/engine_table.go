package dataplane

import (
	"math"
	"math/rand/v2"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// kvEntry is the header of one stored key/value. It is never allocated as
// a Go struct: newKVEntry allocates one pointer-free []byte holding
//
//	[0:8)   version   uint64
//	[8:16)  expireAt  int64   unix ns; 0 = none
//	[16:24) access    int64   unix ns of the last read or write (LRU, max idle)
//	[24:28) vlen      uint32
//	[28:28+len(key))          key bytes
//	[28+len(key):+vlen)       value bytes
//
// and views its start as a *kvEntry. One allocation per key, in a noscan
// size class (16-byte keys and 100-byte values: 144 bytes), which the
// garbage collector never scans. The key and value bytes are immutable:
// the map key of the entry and every value slice handed out (to
// OnMutation, to snapshots) point into them. Only the header fields
// change in place, and only under the partition lock.
//
// The struct's size (32) includes 4 bytes of padding that overlap the
// first key bytes; fields are only ever read and written one at a time,
// never as a whole struct, so the padding is never touched.
type kvEntry struct {
	version  uint64
	expireAt int64
	access   int64
	vlen     uint32
}

const (
	kvHeaderLen = 28
	kvMinAlloc  = int(unsafe.Sizeof(kvEntry{}))
)

// newKVEntry stores key and value (copied) in a fresh entry and returns it
// with the stored key (a string viewing the entry's key bytes).
func newKVEntry(key string, value []byte, version uint64, expireAt, now int64) (*kvEntry, string) {
	buf := make([]byte, max(kvHeaderLen+len(key)+len(value), kvMinAlloc))
	copy(buf[kvHeaderLen:], key)
	copy(buf[kvHeaderLen+len(key):], value)
	e := (*kvEntry)(unsafe.Pointer(unsafe.SliceData(buf)))
	e.version, e.expireAt, e.access, e.vlen = version, expireAt, now, uint32(len(value))
	return e, unsafe.String(&buf[kvHeaderLen], len(key))
}

// key returns the entry's stored key; klen is its length (the length of
// the key it was looked up with).
func (e *kvEntry) key(klen int) string {
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(e), kvHeaderLen)), klen)
}

// value returns the stored value bytes (nil for an empty value: a
// zero-length slice there could point just past the allocation, at the
// next object, which the garbage collector must never see). They must not
// be modified.
func (e *kvEntry) value(klen int) []byte {
	if e.vlen == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(e), kvHeaderLen+klen)), e.vlen)
}

// size is what the entry counts against max_bytes.
func (e *kvEntry) size(klen int) int64 { return int64(klen) + int64(e.vlen) }

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

// Table shape. A bucket is one Go map of at most kvBucketMax keys, so its
// map is one swiss table of 1024 slots when full; the directory grows up to
// one slot per kvDirPerKey keys and at most 1<<kvMaxDepth slots.
const (
	kvBucketMax = 896
	kvDirPerKey = 8
	kvMaxDepth  = 24
)

// kvTable holds one DMap's keys on one partition: an extendible hash table
// of Go maps. A key lives in the bucket for the top bits of keyHash(key);
// the directory has 1<<depth slots and a bucket of local depth d covers
// the 1<<(depth-d) slots sharing its d-bit prefix. A bucket over
// kvBucketMax keys splits in two (doubling the directory if needed), which
// costs O(kvBucketMax), never a rehash of the whole table.
//
// Buckets cover contiguous ranges of the hash space, so walking the hash
// space in order (scan) visits buckets in order and sorts one bucket at a
// time.
type kvTable struct {
	depth uint8
	dir   []*kvBucket
	n     int
}

type kvBucket struct {
	depth uint8
	m     map[string]*kvEntry
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
	return t.bucket(h).m[key]
}

// set stores e under key, which must view e's own key bytes (so the map
// retains no other memory), and returns the entry it replaced, if any.
// Go's map assignment replaces the stored key string too, so the replaced
// entry is no longer referenced by the table.
func (t *kvTable) set(key string, h uint64, e *kvEntry) *kvEntry {
	if t.dir == nil {
		t.dir = []*kvBucket{{m: make(map[string]*kvEntry)}}
		t.depth = 0
	}
	b := t.bucket(h)
	old := b.m[key]
	b.m[key] = e
	if old == nil {
		t.n++
		if len(b.m) > kvBucketMax {
			t.split(b, h)
		}
	}
	return old
}

// del removes key (hash h) and returns its entry, or nil.
func (t *kvTable) del(key string, h uint64) *kvEntry {
	if t.n == 0 {
		return nil
	}
	b := t.bucket(h)
	old, ok := b.m[key]
	if !ok {
		return nil
	}
	delete(b.m, key)
	t.n--
	if t.n == 0 {
		*t = kvTable{} // free the directory and the maps' memory
	}
	return old
}

// split splits b (which holds the key of hash h) until the bucket holding
// h is within kvBucketMax, or the directory may not grow.
func (t *kvTable) split(b *kvBucket, h uint64) {
	for len(b.m) > kvBucketMax {
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
		lo := &kvBucket{depth: d + 1, m: make(map[string]*kvEntry, len(b.m)/2)}
		hi := &kvBucket{depth: d + 1, m: make(map[string]*kvEntry, len(b.m)/2)}
		for k, e := range b.m {
			if keyHash(k)&bit != 0 {
				hi.m[k] = e
			} else {
				lo.m[k] = e
			}
		}
		// b covers the directory slots [first, first+span): the first half
		// goes to lo, the second to hi.
		span := 1 << (t.depth - d)
		first := int(h>>(64-uint(d))) << (t.depth - d)
		for i := range span {
			if i < span/2 {
				t.dir[first+i] = lo
			} else {
				t.dir[first+i] = hi
			}
		}
		if h&bit != 0 {
			b = hi
		} else {
			b = lo
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

// sample returns one key of the table chosen at random (nearly uniformly:
// a random directory slot, then the first key of a map iteration, which Go
// starts at a random position), or "" and nil for an empty table.
func (t *kvTable) sample() (string, *kvEntry) {
	if t.n == 0 {
		return "", nil
	}
	for range 8 {
		b := t.dir[rand.IntN(len(t.dir))]
		for k, e := range b.m {
			return k, e
		}
	}
	// Mostly empty buckets (after many deletes): walk from a random slot.
	start := rand.IntN(len(t.dir))
	for i := range t.dir {
		for k, e := range t.dir[(start+i)%len(t.dir)].m {
			return k, e
		}
	}
	return "", nil
}

// each calls fn for every entry until fn returns false.
func (t *kvTable) each(fn func(k string, e *kvEntry) bool) {
	var prev *kvBucket
	for _, b := range t.dir {
		if b == prev {
			continue // consecutive slots of one bucket
		}
		prev = b
		for k, e := range b.m {
			if !fn(k, e) {
				return
			}
		}
	}
}
