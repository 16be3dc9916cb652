package httpapitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
)

// The fake data plane: one in-memory store shared by every partition,
// linearizable because every operation runs under Cluster.mu. It follows
// the contract of dataplane.Request/Response closely enough for tests of
// the front ends; it does not route, replicate or evict.

// entry is a stored value.
type entry struct {
	value    []byte
	version  uint64
	expireAt time.Time // zero: no expiry
}

// heldLock is a held lock on a key.
type heldLock struct {
	token    uint64
	expireAt time.Time
}

// lockID names a lock: its DMap and key.
type lockID struct{ dmap, key string }

// ScanCall records the arguments of one Scan call.
type ScanCall struct {
	DMap, Match, Cursor string
	Limit               int
}

// dataState is the store; guarded by Cluster.mu.
type dataState struct {
	maps    map[string]map[string]*entry
	locks   map[lockID]*heldLock
	version uint64 // the last version handed out, over every key
	// freed is closed (and replaced) whenever a lock is released, to wake
	// the lock calls waiting for it.
	freed chan struct{}
}

func (c *Cluster) nowLocked() time.Time {
	if c.s.Now != nil {
		return c.s.Now()
	}
	return time.Now()
}

// dataLocked returns the store, creating it on first use. c.mu must be
// held.
func (c *Cluster) dataLocked() *dataState {
	if c.data.maps == nil {
		c.data.maps = make(map[string]map[string]*entry)
		c.data.locks = make(map[lockID]*heldLock)
		c.data.freed = make(chan struct{})
	}
	return &c.data
}

// liveLocked returns the unexpired entry of key, dropping an expired one.
func (c *Cluster) liveLocked(dmap, key string) *entry {
	m := c.dataLocked().maps[dmap]
	e := m[key]
	if e == nil {
		return nil
	}
	if !e.expireAt.IsZero() && !c.nowLocked().Before(e.expireAt) {
		delete(m, key)
		return nil
	}
	return e
}

func (c *Cluster) nextVersionLocked() uint64 {
	c.dataLocked().version++
	return c.data.version
}

// expiryLocked returns the absolute expiry of a TTL or unix-milliseconds
// ExpireAt (zero time: none).
func (c *Cluster) expiryLocked(ttl time.Duration, expireAt int64) time.Time {
	switch {
	case ttl > 0:
		return c.nowLocked().Add(ttl)
	case expireAt > 0:
		return time.UnixMilli(expireAt)
	}
	return time.Time{}
}

// Entry returns what the fake stores for key: a copy of its value, its
// version and remaining TTL (0: none), and whether it exists.
func (c *Cluster) Entry(dmap, key string) (value []byte, version uint64, ttl time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.liveLocked(dmap, key)
	if e == nil {
		return nil, 0, 0, false
	}
	if !e.expireAt.IsZero() {
		ttl = e.expireAt.Sub(c.nowLocked())
	}
	return bytes.Clone(e.value), e.version, ttl, true
}

// checkRequest applies the limits of dataplane to a key request.
func (c *Cluster) checkRequestLocked(req *dataplane.Request) error {
	maxValue := c.s.MaxValueBytes
	if maxValue <= 0 {
		maxValue = dataplane.DefaultMaxValueLen
	}
	switch {
	case req.DMap == "" || req.Key == "":
		return fmt.Errorf("%w: empty DMap name or key", dataplane.ErrInvalid)
	case len(req.DMap) > dataplane.MaxDMapNameLen || len(req.Key) > dataplane.MaxKeyLen || len(req.Value) > maxValue:
		return fmt.Errorf("%w: DMap name, key or value over its limit", dataplane.ErrTooLarge)
	case req.NX && req.XX:
		return fmt.Errorf("%w: nx with xx", dataplane.ErrInvalid)
	case req.TTL < 0 || req.TTL > dataplane.MaxTTL || req.Wait < 0:
		return fmt.Errorf("%w: TTL %s, wait %s", dataplane.ErrInvalid, req.TTL, req.Wait)
	}
	return nil
}

// Do implements httpapi.Cluster: with DataErr nil it runs req on the
// in-memory store. Versions come from one counter, so they increase over
// every key; a missing key's incr starts from 0; if_version 0 on an
// existing key and any other if_version that does not match are
// ErrVersionMismatch; lock tokens are versions too, a lock's lease is its
// TTL or dataplane.DefaultLockLease, and a lock waits up to req.Wait for
// the holder to unlock or its lease to run out.
func (c *Cluster) Do(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error) {
	if err := c.hook(ctx, "Do"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.s.DataCalls++
	rec := *req
	rec.Value = bytes.Clone(req.Value)
	c.s.LastRequest = &rec
	err := c.s.DataErr
	if err == nil {
		err = c.checkRequestLocked(req)
	}
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if req.Op == dataplane.OpLock {
		c.mu.Unlock()
		return c.lock(ctx, req)
	}
	defer c.mu.Unlock()
	return c.doLocked(req)
}

func (c *Cluster) doLocked(req *dataplane.Request) (*dataplane.Response, error) {
	d := c.dataLocked()
	e := c.liveLocked(req.DMap, req.Key)
	store := func(v []byte, expireAt time.Time) uint64 {
		m := d.maps[req.DMap]
		if m == nil {
			m = make(map[string]*entry)
			d.maps[req.DMap] = m
		}
		ver := c.nextVersionLocked()
		m[req.Key] = &entry{value: v, version: ver, expireAt: expireAt}
		return ver
	}
	switch req.Op {
	case dataplane.OpGet:
		if e == nil {
			return nil, fmt.Errorf("%w: %q", dataplane.ErrNotFound, req.Key)
		}
		resp := &dataplane.Response{Found: true, Value: bytes.Clone(e.value), Version: e.version}
		if !e.expireAt.IsZero() {
			resp.TTL = e.expireAt.Sub(c.nowLocked())
		}
		return resp, nil

	case dataplane.OpExists:
		return &dataplane.Response{Found: e != nil}, nil

	case dataplane.OpPut:
		switch {
		case req.NX && e != nil:
			return nil, fmt.Errorf("%w: %q", dataplane.ErrKeyExists, req.Key)
		case req.XX && e == nil:
			return nil, fmt.Errorf("%w: %q", dataplane.ErrNotFound, req.Key)
		case req.HasIfVersion && req.IfVersion == 0 && e != nil:
			return nil, fmt.Errorf("%w: %q exists at version %d", dataplane.ErrVersionMismatch, req.Key, e.version)
		case req.HasIfVersion && req.IfVersion != 0 && (e == nil || e.version != req.IfVersion):
			return nil, fmt.Errorf("%w: %q is not at version %d", dataplane.ErrVersionMismatch, req.Key, req.IfVersion)
		}
		expireAt := c.expiryLocked(req.TTL, req.ExpireAt)
		if req.KeepTTL && e != nil {
			expireAt = e.expireAt
		}
		return &dataplane.Response{Version: store(bytes.Clone(req.Value), expireAt)}, nil

	case dataplane.OpDelete:
		if e == nil {
			return &dataplane.Response{}, nil
		}
		delete(d.maps[req.DMap], req.Key)
		return &dataplane.Response{Deleted: true}, nil

	case dataplane.OpExpire:
		if e == nil {
			return &dataplane.Response{}, nil
		}
		e.expireAt = c.expiryLocked(req.TTL, req.ExpireAt)
		e.version = c.nextVersionLocked()
		return &dataplane.Response{Found: true, Version: e.version}, nil

	case dataplane.OpIncr:
		var cur int64
		var expireAt time.Time
		if e != nil {
			n, err := strconv.ParseInt(string(e.value), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %q", dataplane.ErrNotANumber, req.Key)
			}
			cur, expireAt = n, e.expireAt
		}
		if (req.Delta > 0 && cur > math.MaxInt64-req.Delta) || (req.Delta < 0 && cur < math.MinInt64-req.Delta) {
			return nil, fmt.Errorf("%w: %d + %d", dataplane.ErrOverflow, cur, req.Delta)
		}
		n := cur + req.Delta
		ver := store(strconv.AppendInt(nil, n, 10), expireAt)
		return &dataplane.Response{Int: n, Version: ver}, nil

	case dataplane.OpIncrByFloat:
		var cur float64
		var expireAt time.Time
		if e != nil {
			f, err := strconv.ParseFloat(string(e.value), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%w: %q", dataplane.ErrNotANumber, req.Key)
			}
			cur, expireAt = f, e.expireAt
		}
		f := cur + req.DeltaFloat
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %v + %v", dataplane.ErrOverflow, cur, req.DeltaFloat)
		}
		ver := store(strconv.AppendFloat(nil, f, 'g', -1, 64), expireAt)
		return &dataplane.Response{Float: f, Version: ver}, nil

	case dataplane.OpGetPut:
		resp := &dataplane.Response{}
		if e != nil {
			resp.Found, resp.Value = true, e.value // replaced below, never changed
		}
		resp.Version = store(bytes.Clone(req.Value), time.Time{})
		return resp, nil

	case dataplane.OpUnlock, dataplane.OpLease:
		id := lockID{req.DMap, req.Key}
		l := d.locks[id]
		if l == nil || l.token != req.Token || (!l.expireAt.IsZero() && !c.nowLocked().Before(l.expireAt)) {
			return nil, fmt.Errorf("%w: %s %q token %d", dataplane.ErrNoSuchLock, req.Op, req.Key, req.Token)
		}
		if req.Op == dataplane.OpLease {
			l.expireAt = c.expiryLocked(leaseOf(req), 0)
			return &dataplane.Response{Found: true}, nil
		}
		delete(d.locks, id)
		c.wakeLocked()
		return &dataplane.Response{Found: true}, nil
	}
	return nil, fmt.Errorf("%w: operation %s (%d) is not a key operation", dataplane.ErrInvalid, req.Op, req.Op)
}

// leaseOf is the lease of a lock or lease request: its TTL, or
// dataplane.DefaultLockLease for 0, as the engine does.
func leaseOf(req *dataplane.Request) time.Duration {
	if req.TTL == 0 {
		return dataplane.DefaultLockLease
	}
	return req.TTL
}

// wakeLocked wakes the lock calls waiting for a lock to be released.
func (c *Cluster) wakeLocked() {
	close(c.data.freed)
	c.data.freed = make(chan struct{})
}

// lock takes the lock of req.Key, waiting up to req.Wait for it.
func (c *Cluster) lock(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error) {
	wait := time.NewTimer(req.Wait)
	defer wait.Stop()
	id := lockID{req.DMap, req.Key}
	for {
		c.mu.Lock()
		d := c.dataLocked()
		now := c.nowLocked()
		l := d.locks[id]
		if l == nil || (!l.expireAt.IsZero() && !now.Before(l.expireAt)) {
			token := c.nextVersionLocked()
			d.locks[id] = &heldLock{token: token, expireAt: c.expiryLocked(leaseOf(req), 0)}
			c.mu.Unlock()
			return &dataplane.Response{Token: token, Version: token}, nil
		}
		freed := d.freed
		// With the real clock, also wake when the holder's lease runs out.
		var expired <-chan time.Time
		var expiry *time.Timer
		if !l.expireAt.IsZero() && c.s.Now == nil {
			expiry = time.NewTimer(l.expireAt.Sub(now))
			expired = expiry.C
		}
		c.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-expired:
		case <-wait.C:
			err = fmt.Errorf("%w: %q in %q, waited %s", dataplane.ErrLocked, req.Key, req.DMap, req.Wait)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if expiry != nil {
			expiry.Stop()
		}
		if err != nil {
			return nil, err
		}
	}
}

// Scan implements httpapi.Cluster: with DataErr nil, it pages through the
// live keys of dmap in byte order, at most min(limit, ScanPage) per page;
// the cursor encodes the last key examined.
func (c *Cluster) Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error) {
	if err := c.hook(ctx, "Scan"); err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.DataCalls++
	c.s.LastScan = ScanCall{DMap: dmap, Match: match, Cursor: cursor, Limit: limit}
	if c.s.DataErr != nil {
		return nil, "", c.s.DataErr
	}
	if dmap == "" || limit < 1 || limit > dataplane.MaxScanLimit {
		return nil, "", fmt.Errorf("%w: DMap %q, limit %d", dataplane.ErrInvalid, dmap, limit)
	}
	pattern, err := compileGlob(match)
	if err != nil {
		return nil, "", err
	}
	var after string
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) == 0 {
			return nil, "", fmt.Errorf("%w: cursor %q is not one this fake answered", dataplane.ErrInvalid, cursor)
		}
		after = string(b)
	}
	if c.s.ScanPage > 0 {
		limit = min(limit, c.s.ScanPage)
	}
	var all []string
	for k := range c.dataLocked().maps[dmap] {
		if (cursor == "" || k > after) && c.liveLocked(dmap, k) != nil {
			all = append(all, k)
		}
	}
	slices.Sort(all)
	keys := []string{}
	for i, k := range all {
		if pattern.match(k) {
			keys = append(keys, k)
		}
		if len(keys) == limit && i < len(all)-1 {
			return keys, base64.RawURLEncoding.EncodeToString([]byte(k)), nil
		}
	}
	return keys, "", nil
}

// Destroy implements httpapi.Cluster: with DataErr nil, it drops dmap's
// keys and locks (waking lock waiters).
func (c *Cluster) Destroy(ctx context.Context, dmap string) error {
	if err := c.hook(ctx, "Destroy"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.DataCalls++
	c.s.Destroyed = append(c.s.Destroyed, dmap)
	if c.s.DataErr != nil {
		return c.s.DataErr
	}
	if dmap == "" || len(dmap) > dataplane.MaxDMapNameLen {
		return fmt.Errorf("%w: DMap name %q", dataplane.ErrInvalid, dmap)
	}
	d := c.dataLocked()
	delete(d.maps, dmap)
	for id := range d.locks {
		if id.dmap == dmap {
			delete(d.locks, id)
		}
	}
	c.wakeLocked()
	return nil
}

// glob is a compiled Redis-style pattern: * any bytes, ? one byte,
// [abc] [a-z] [^a] a class, \x the byte x.
type glob []globToken

type globToken struct {
	kind   byte // '*', '?', '[' or 'l' (literal)
	lit    byte
	negate bool
	ranges [][2]byte
}

var errBadPattern = errors.New("malformed match pattern")

func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{{kind: '*'}}, nil // no pattern: every key
	}
	var g glob
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			if len(g) == 0 || g[len(g)-1].kind != '*' {
				g = append(g, globToken{kind: '*'})
			}
		case '?':
			g = append(g, globToken{kind: '?'})
		case '\\':
			if i+1 == len(p) {
				return nil, fmt.Errorf("%w: %w: %q ends with a backslash", dataplane.ErrInvalid, errBadPattern, p)
			}
			i++
			g = append(g, globToken{kind: 'l', lit: p[i]})
		case '[':
			t := globToken{kind: '['}
			j := i + 1
			if j < len(p) && p[j] == '^' {
				t.negate = true
				j++
			}
			for ; j < len(p) && (p[j] != ']' || j == i+1+boolInt(t.negate)); j++ {
				lo := p[j]
				if lo == '\\' && j+1 < len(p) {
					j++
					lo = p[j]
				}
				hi := lo
				if j+2 < len(p) && p[j+1] == '-' && p[j+2] != ']' {
					hi = p[j+2]
					j += 2
				}
				if hi < lo {
					lo, hi = hi, lo
				}
				t.ranges = append(t.ranges, [2]byte{lo, hi})
			}
			if j >= len(p) {
				return nil, fmt.Errorf("%w: %w: %q has an unclosed [", dataplane.ErrInvalid, errBadPattern, p)
			}
			i = j
			g = append(g, t)
		default:
			g = append(g, globToken{kind: 'l', lit: c})
		}
	}
	return g, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t globToken) matchByte(c byte) bool {
	switch t.kind {
	case '?':
		return true
	case 'l':
		return t.lit == c
	}
	in := false
	for _, r := range t.ranges {
		if r[0] <= c && c <= r[1] {
			in = true
			break
		}
	}
	return in != t.negate
}

// match reports whether s matches g: every token but * matches one byte,
// so the classic backtrack-to-the-last-star walk is exact and linear per
// star.
func (g glob) match(s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(g) && g[pi].kind == '*':
			star, mark = pi, si
			pi++
		case pi < len(g) && g[pi].matchByte(s[si]):
			pi++
			si++
		case star >= 0:
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(g) && g[pi].kind == '*' {
		pi++
	}
	return pi == len(g)
}
