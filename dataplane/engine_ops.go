package dataplane

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// opCtx is one operation (or one background cycle visit) on a partition,
// with its lock held: the epoch its mutations carry and the time it reads.
type opCtx struct {
	e     *Engine
	p     uint32
	part  *partition
	epoch uint64
	now   int64 // unix ns, read once per operation
	// A write with a request id (dedupeBegin): its id and fingerprint, and
	// its mutations, applied but held back from OnMutation until
	// dedupeFinish.
	rid  string
	fp   uint64
	hold bool
	held []Mutation
	// hashed is the key whose hash is hash (from the operation's lookup),
	// for emit: a write hashes its key once.
	hashed string
	hash   uint64
	// out, if not nil, is where get and put write their response (the
	// caller's storage; see DoMany).
	out *Response
}

// response returns where the operation's response goes: o.out, cleared,
// or a new one.
func (o *opCtx) response() *Response {
	if o.out != nil {
		*o.out = Response{}
		return o.out
	}
	return new(Response)
}

// keyHash returns hashKey(key), computed once per operation for its key.
func (o *opCtx) keyHash(key string) uint64 {
	if o.hash != 0 && len(key) == len(o.hashed) && key == o.hashed {
		return o.hash
	}
	o.hashed, o.hash = key, hashKey(key)
	return o.hash
}

// emit completes m (its sequence number and epoch, and the new version of
// a set, an expire or a new lock), applies it and reports it to
// OnMutation (or holds it for dedupeFinish).
func (o *opCtx) emit(m *Mutation) {
	m.Seq = o.part.seq + 1
	m.Epoch = o.epoch
	switch m.Kind {
	case MutationSet, MutationExpire:
		m.Version = MakeVersion(o.epoch, m.Seq)
	case MutationLockSet:
		if m.Version == 0 { // a new lock; a lease keeps its token
			m.Version = MakeVersion(o.epoch, m.Seq)
		}
	}
	var h uint64
	if m.Kind != MutationDestroy {
		h = o.keyHash(m.Key)
	}
	o.e.applyMutation(o.part, m, o.now, h)
	if o.hold {
		o.held = append(o.held, *m)
	} else if h := o.e.OnMutation; h != nil {
		h(o.p, *m)
	}
}

// remove deletes key (stored key string) from d as a mutation.
func (o *opCtx) remove(d *dmapStore, key string) {
	o.emit(&Mutation{Kind: MutationDelete, DMap: d.name, Key: key})
}

// idle reports whether ent has been neither read nor written for longer
// than d's max idle.
func (o *opCtx) idle(d *dmapStore, ent *kvEntry) bool {
	return d.pol.maxIdle > 0 && o.now-ent.access > d.pol.maxIdle
}

// live returns d's entry for key (hash h) if it is live. An expired or
// idle entry is deleted on the way (lazy expiry, as a mutation), counted,
// and reported missing. d may be nil.
func (o *opCtx) live(d *dmapStore, key string, h uint64) *kvEntry {
	if d == nil {
		return nil
	}
	ent := d.tab.get(key, h)
	if ent == nil {
		return nil
	}
	switch {
	case ent.expired(o.now):
		o.remove(d, ent.key())
		d.ctr.expirations.Add(1)
		return nil
	case o.idle(d, ent):
		o.remove(d, ent.key())
		d.ctr.evictions.Add(1)
		return nil
	}
	return ent
}

func (o *opCtx) policy(name string) *dmapPolicy {
	if d := o.part.dmap(name); d != nil {
		return d.pol
	}
	return o.e.policyFor(name)
}

// defaultExpiry is the expiry of a value written without one.
func (o *opCtx) defaultExpiry(pol *dmapPolicy) int64 {
	if pol.ttl > 0 {
		return o.now + pol.ttl
	}
	return 0
}

// absExpiry converts req's TTL or ExpireAt (unix ms) to unix ns; 0 if
// neither is set.
func (o *opCtx) absExpiry(req *Request) (int64, error) {
	switch {
	case req.TTL > 0:
		return o.now + int64(req.TTL), nil
	case req.ExpireAt > 0:
		if req.ExpireAt > (o.now+int64(MaxTTL))/int64(time.Millisecond) {
			return 0, fmt.Errorf("%w: expire_at %d is more than %s ahead", ErrInvalid, req.ExpireAt, MaxTTL)
		}
		return req.ExpireAt * int64(time.Millisecond), nil
	}
	return 0, nil
}

// admit checks that storing a klen+vlen byte entry in DMap name, replacing
// cur (nil for a new key), is allowed by its policy: one entry must fit
// max_bytes; with eviction "none" the write must not take the DMap over a
// limit (writes that do not add keys or bytes always pass).
func (o *opCtx) admit(name string, cur *kvEntry, klen, vlen int) error {
	pol := o.policy(name)
	if !pol.limited() {
		return nil
	}
	size := int64(klen) + int64(vlen)
	if pol.maxBytes > 0 && size > pol.maxBytes {
		return fmt.Errorf("%w: entry of %d bytes is over dmap %q's max_bytes %d", ErrFull, size, name, pol.maxBytes)
	}
	if pol.lru {
		return nil
	}
	var keys, bytes int64
	if d := o.part.dmap(name); d != nil {
		keys, bytes = int64(d.tab.n), d.bytes
	}
	if cur == nil {
		if pol.maxKeys > 0 && keys+1 > pol.maxKeys {
			return fmt.Errorf("%w: dmap %q holds %d keys on partition %d (max_keys, eviction none)", ErrFull, name, keys, o.p)
		}
	} else {
		size -= cur.size()
	}
	if pol.maxBytes > 0 && size > 0 && bytes+size > pol.maxBytes {
		return fmt.Errorf("%w: dmap %q holds %d bytes on partition %d, max_bytes %d (eviction none)", ErrFull, name, bytes, o.p, pol.maxBytes)
	}
	return nil
}

// set stores value under key (a new version) with expiry exp, then evicts
// what the DMap's limits require; it returns the new version.
func (o *opCtx) set(name, key string, value []byte, exp int64) uint64 {
	m := Mutation{Kind: MutationSet, DMap: name, Key: key, Value: value, ExpireAt: exp}
	o.emit(&m)
	o.enforceLimits(name, m.Key)
	return m.Version
}

func (o *opCtx) get(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	ent := o.live(d, req.Key, o.keyHash(req.Key))
	if ent == nil {
		return nil, &missingKeyError{key: req.Key, dmap: req.DMap}
	}
	ent.access = o.now
	resp := o.response()
	resp.Found, resp.Value, resp.Version = true, ent.value(), ent.version
	if ent.expireAt != 0 {
		resp.TTL = time.Duration(ent.expireAt - o.now)
	}
	return resp, nil
}

func (o *opCtx) exists(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	ent := o.live(d, req.Key, o.keyHash(req.Key))
	if ent == nil {
		return &Response{}, nil
	}
	ent.access = o.now
	return &Response{Found: true, Version: ent.version}, nil
}

// put: NX, XX and IfVersion are checked against the live key; then the
// expiry is TTL, ExpireAt, the current one (KeepTTL on an existing key) or
// the DMap's default TTL. An expiry not in the future deletes the key
// (Redis SET EX/EXAT semantics) and returns version 0.
func (o *opCtx) put(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	cur := o.live(d, req.Key, o.keyHash(req.Key))
	switch {
	case req.NX && cur != nil:
		return nil, fmt.Errorf("%w: %s in dmap %q (nx)", ErrKeyExists, quoteKey(req.Key), req.DMap)
	case req.XX && cur == nil:
		return nil, fmt.Errorf("%w: %s in dmap %q (xx)", ErrNotFound, quoteKey(req.Key), req.DMap)
	}
	if req.HasIfVersion {
		switch {
		case req.IfVersion == 0 && cur != nil:
			return nil, fmt.Errorf("%w: %s exists at version %d, expected absent", ErrVersionMismatch, quoteKey(req.Key), cur.version)
		case req.IfVersion != 0 && cur == nil:
			return nil, fmt.Errorf("%w: %s is absent, expected version %d", ErrVersionMismatch, quoteKey(req.Key), req.IfVersion)
		case req.IfVersion != 0 && cur.version != req.IfVersion:
			return nil, fmt.Errorf("%w: %s is at version %d, expected %d", ErrVersionMismatch, quoteKey(req.Key), cur.version, req.IfVersion)
		}
	}
	exp, err := o.absExpiry(req)
	if err != nil {
		return nil, err
	}
	switch {
	case exp != 0:
		if exp <= o.now {
			if cur != nil {
				o.remove(d, cur.key())
			}
			return &Response{}, nil
		}
	case req.KeepTTL && cur != nil:
		exp = cur.expireAt
	default:
		exp = o.defaultExpiry(o.policy(req.DMap))
	}
	if err := o.admit(req.DMap, cur, len(req.Key), len(req.Value)); err != nil {
		return nil, err
	}
	v := o.set(req.DMap, req.Key, req.Value, exp)
	resp := o.response()
	resp.Version = v
	return resp, nil
}

func (o *opCtx) del(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	ent := o.live(d, req.Key, o.keyHash(req.Key))
	if ent == nil {
		return &Response{}, nil
	}
	o.remove(d, ent.key())
	return &Response{Deleted: true}, nil
}

// expire sets (TTL or ExpireAt) or removes (neither) a live key's expiry;
// it is a write: the version changes. An expiry not in the future deletes
// the key.
func (o *opCtx) expire(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	ent := o.live(d, req.Key, o.keyHash(req.Key))
	if ent == nil {
		return &Response{}, nil
	}
	exp, err := o.absExpiry(req)
	if err != nil {
		return nil, err
	}
	key := ent.key()
	if exp != 0 && exp <= o.now {
		o.remove(d, key)
		return &Response{Found: true}, nil
	}
	m := Mutation{Kind: MutationExpire, DMap: req.DMap, Key: key, ExpireAt: exp}
	o.emit(&m)
	return &Response{Found: true, Version: m.Version}, nil
}

// incr adds Delta to the key's base-10 int64 value (a missing key counts
// as 0), stores the result as decimal text and keeps the key's expiry (a
// new key gets the DMap's default TTL).
func (o *opCtx) incr(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	cur := o.live(d, req.Key, o.keyHash(req.Key))
	var n int64
	exp := o.defaultExpiry(o.policy(req.DMap))
	if cur != nil {
		var ok bool
		if n, ok = parseCanonicalInt(cur.value()); !ok {
			return nil, fmt.Errorf("%w: %s does not hold a base-10 64-bit integer", ErrNotANumber, quoteKey(req.Key))
		}
		exp = cur.expireAt
	}
	if (req.Delta > 0 && n > math.MaxInt64-req.Delta) || (req.Delta < 0 && n < math.MinInt64-req.Delta) {
		return nil, fmt.Errorf("%w: %d %+d", ErrOverflow, n, req.Delta)
	}
	n += req.Delta
	value := strconv.AppendInt(make([]byte, 0, 20), n, 10)
	if err := o.admit(req.DMap, cur, len(req.Key), len(value)); err != nil {
		return nil, err
	}
	v := o.set(req.DMap, req.Key, value, exp)
	return &Response{Found: cur != nil, Int: n, Version: v}, nil
}

// incrByFloat adds DeltaFloat to the key's float value (missing = 0),
// like Redis INCRBYFLOAT: a NaN or infinite result fails with ErrOverflow;
// the result is stored as the shortest decimal that reads back as the
// same float64, never in exponent notation (strconv 'f', -1), e.g. "10.6",
// "3", "0.0001". The key's expiry is kept.
func (o *opCtx) incrByFloat(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	cur := o.live(d, req.Key, o.keyHash(req.Key))
	var f float64
	exp := o.defaultExpiry(o.policy(req.DMap))
	if cur != nil {
		var err error
		f, err = strconv.ParseFloat(bytesView(cur.value()), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %s does not hold a valid float", ErrNotANumber, quoteKey(req.Key))
		}
		exp = cur.expireAt
	}
	f += req.DeltaFloat
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: increment would produce NaN or infinity", ErrOverflow)
	}
	value := strconv.AppendFloat(make([]byte, 0, 24), f, 'f', -1, 64)
	if err := o.admit(req.DMap, cur, len(req.Key), len(value)); err != nil {
		return nil, err
	}
	v := o.set(req.DMap, req.Key, value, exp)
	return &Response{Found: cur != nil, Float: f, Version: v}, nil
}

// getPut stores Value (clearing the key's expiry; the DMap's default TTL
// applies) and returns the previous value.
func (o *opCtx) getPut(req *Request) (*Response, error) {
	d := o.part.dmap(req.DMap)
	cur := o.live(d, req.Key, o.keyHash(req.Key))
	if err := o.admit(req.DMap, cur, len(req.Key), len(req.Value)); err != nil {
		return nil, err
	}
	resp := &Response{}
	if cur != nil {
		resp.Found, resp.Value = true, cur.value()
	}
	resp.Version = o.set(req.DMap, req.Key, req.Value, o.defaultExpiry(o.policy(req.DMap)))
	return resp, nil
}

// heldLock returns the live lock key held with token, deleting it (as a
// mutation) if its lease ran out.
func (o *opCtx) heldLock(req *Request) (*dmapStore, *lockState, error) {
	d := o.part.dmap(req.DMap)
	var ls *lockState
	if d != nil {
		ls = d.locks[req.Key]
	}
	if ls == nil || ls.token != req.Token {
		return nil, nil, fmt.Errorf("%w: lock %s in dmap %q, token %d", ErrNoSuchLock, quoteKey(req.Key), req.DMap, req.Token)
	}
	if ls.expireAt <= o.now {
		o.emit(&Mutation{Kind: MutationLockDelete, DMap: req.DMap, Key: req.Key})
		return nil, nil, fmt.Errorf("%w: the lease of lock %s with token %d ran out", ErrNoSuchLock, quoteKey(req.Key), req.Token)
	}
	return d, ls, nil
}

func (o *opCtx) unlock(req *Request) (*Response, error) {
	if _, _, err := o.heldLock(req); err != nil {
		return nil, err
	}
	o.emit(&Mutation{Kind: MutationLockDelete, DMap: req.DMap, Key: req.Key})
	return &Response{Found: true}, nil
}

// lease extends a held lock to TTL from now (DefaultLockLease when 0),
// keeping its token.
func (o *opCtx) lease(req *Request) (*Response, error) {
	_, ls, err := o.heldLock(req)
	if err != nil {
		return nil, err
	}
	m := Mutation{Kind: MutationLockSet, DMap: req.DMap, Key: req.Key, Version: ls.token, ExpireAt: o.now + int64(leaseOf(req))}
	o.emit(&m)
	return &Response{Found: true, Token: ls.token, Version: ls.token}, nil
}

func (o *opCtx) destroy(req *Request) (*Response, error) {
	if o.part.dmap(req.DMap) == nil {
		return &Response{}, nil
	}
	o.emit(&Mutation{Kind: MutationDestroy, DMap: req.DMap})
	return &Response{Found: true}, nil
}

func leaseOf(req *Request) time.Duration {
	if req.TTL == 0 {
		return DefaultLockLease
	}
	return req.TTL
}

// parseCanonicalInt parses b as a base-10 int64 written canonically (as
// strconv.FormatInt writes it: no sign on positives, no leading zeros, no
// spaces), as Redis INCR requires.
func parseCanonicalInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(bytesView(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	return n, string(strconv.AppendInt(buf[:0], n, 10)) == bytesView(b)
}

// bytesView views immutable bytes (stored values) as a string.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// quoteKey quotes a key for an error message, shortened to 64 bytes.
// missingKeyError is get's ErrNotFound. Misses are frequent (a cache
// looked up before it is filled) and most callers only test errors.Is:
// the message is built only when it is read.
type missingKeyError struct{ key, dmap string }

func (e *missingKeyError) Error() string {
	return fmt.Sprintf("%v: %s in dmap %q", ErrNotFound, quoteKey(e.key), e.dmap)
}

func (e *missingKeyError) Unwrap() error { return ErrNotFound }

func quoteKey(k string) string {
	if len(k) > 64 {
		return strconv.Quote(k[:64]) + "…"
	}
	return strconv.Quote(k)
}
