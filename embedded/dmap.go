package embedded

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
)

// ScanPageSize is how many keys Scan asks the cluster for at a time.
const ScanPageSize = 1000

// DMap is a distributed map: its keys are spread over the cluster's
// partitions, each served by its primary. Operations run on the key's
// primary, this member or another one (over the cluster port).
type DMap struct {
	m    *Member
	name string
}

// Name returns the DMap's name.
func (d *DMap) Name() string { return d.name }

// Entry is a value read from a DMap.
type Entry struct {
	Key string
	// Value is the stored bytes (the caller may keep and modify them).
	Value []byte
	// Version changes with every write of the key and only grows. Zero in
	// GetPut's previous entry.
	Version uint64
	// TTL is the remaining time to live; zero means none (and is always
	// zero in GetPut's previous entry).
	TTL time.Duration
}

// PutOption modifies a Put.
type PutOption func(*putOptions)

type putOptions struct {
	ttl          time.Duration
	expireAt     time.Time
	keepTTL      bool
	nx, xx       bool
	ifVersion    uint64
	hasIfVersion bool
}

// WithTTL makes the key expire after d (zero: no expiry, the default; a
// put without WithTTL, WithExpireAt or KeepTTL removes an earlier expiry,
// unless the DMap has a default TTL).
func WithTTL(d time.Duration) PutOption { return func(o *putOptions) { o.ttl = d } }

// WithExpireAt makes the key expire at t (to the millisecond). A time not
// in the future deletes the key, as Redis's EXAT does.
func WithExpireAt(t time.Time) PutOption { return func(o *putOptions) { o.expireAt = t } }

// KeepTTL keeps the key's current expiry (Redis KEEPTTL).
func KeepTTL() PutOption { return func(o *putOptions) { o.keepTTL = true } }

// NX makes the put happen only if the key does not exist (else
// dataplane.ErrKeyExists).
func NX() PutOption { return func(o *putOptions) { o.nx = true } }

// XX makes the put happen only if the key exists (else
// dataplane.ErrNotFound).
func XX() PutOption { return func(o *putOptions) { o.xx = true } }

// IfVersion makes the put a compare-and-set: it happens only if the key's
// version is v, where 0 means "the key must not exist" (else
// dataplane.ErrVersionMismatch).
func IfVersion(v uint64) PutOption {
	return func(o *putOptions) { o.ifVersion, o.hasIfVersion = v, true }
}

// request builds a request on key, checking what can be checked here.
func (d *DMap) request(op dataplane.Op, key string) (*dataplane.Request, error) {
	switch {
	case d.name == "":
		return nil, fmt.Errorf("%w: empty dmap name", dataplane.ErrInvalid)
	case len(d.name) > dataplane.MaxDMapNameLen:
		return nil, fmt.Errorf("%w: dmap name of %d bytes, limit %d", dataplane.ErrTooLarge, len(d.name), dataplane.MaxDMapNameLen)
	case key == "":
		return nil, fmt.Errorf("%w: empty key", dataplane.ErrInvalid)
	case len(key) > dataplane.MaxKeyLen:
		return nil, fmt.Errorf("%w: key of %d bytes, limit %d", dataplane.ErrTooLarge, len(key), dataplane.MaxKeyLen)
	}
	return &dataplane.Request{Op: op, DMap: d.name, Key: key}, nil
}

func (d *DMap) checkValue(v []byte) error {
	if limit := d.m.maxValueLen(); len(v) > limit {
		return fmt.Errorf("%w: value of %d bytes, limit %d", dataplane.ErrTooLarge, len(v), limit)
	}
	return nil
}

func checkTTL(what string, ttl time.Duration) error {
	if ttl < 0 || ttl > dataplane.MaxTTL {
		return fmt.Errorf("%w: %s %s out of range [0, %s]", dataplane.ErrInvalid, what, ttl, dataplane.MaxTTL)
	}
	return nil
}

// Put stores value under key and returns the key's new version (0 when
// WithExpireAt was in the past and the key was deleted instead).
func (d *DMap) Put(ctx context.Context, key string, value []byte, opts ...PutOption) (uint64, error) {
	req, err := d.request(dataplane.OpPut, key)
	if err != nil {
		return 0, err
	}
	var o putOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := d.checkValue(value); err != nil {
		return 0, err
	}
	if err := checkTTL("ttl", o.ttl); err != nil {
		return 0, err
	}
	hasExpireAt := !o.expireAt.IsZero()
	switch {
	case o.nx && o.xx:
		return 0, fmt.Errorf("%w: NX and XX exclude each other", dataplane.ErrInvalid)
	case o.hasIfVersion && (o.nx || o.xx):
		return 0, fmt.Errorf("%w: IfVersion with NX or XX (IfVersion(0) means the key must not exist)", dataplane.ErrInvalid)
	case o.ttl > 0 && hasExpireAt:
		return 0, fmt.Errorf("%w: WithTTL and WithExpireAt exclude each other", dataplane.ErrInvalid)
	case o.keepTTL && (o.ttl > 0 || hasExpireAt):
		return 0, fmt.Errorf("%w: KeepTTL with WithTTL or WithExpireAt", dataplane.ErrInvalid)
	case hasExpireAt && o.expireAt.UnixMilli() <= 0:
		return 0, fmt.Errorf("%w: expiry %s before 1970", dataplane.ErrInvalid, o.expireAt)
	}
	req.Value, req.TTL, req.KeepTTL = value, o.ttl, o.keepTTL
	if hasExpireAt {
		req.ExpireAt = o.expireAt.UnixMilli()
	}
	req.NX, req.XX = o.nx, o.xx
	req.IfVersion, req.HasIfVersion = o.ifVersion, o.hasIfVersion
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	return resp.Version, nil
}

// Get returns the value of key; dataplane.ErrNotFound when there is none.
func (d *DMap) Get(ctx context.Context, key string) (*Entry, error) {
	req, err := d.request(dataplane.OpGet, key)
	if err != nil {
		return nil, err
	}
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	// The caller owns the Entry; resp.Value may view the stored bytes.
	return &Entry{Key: key, Value: slices.Clone(resp.Value), Version: resp.Version, TTL: resp.TTL}, nil
}

// Delete removes key and reports whether it existed.
func (d *DMap) Delete(ctx context.Context, key string) (bool, error) {
	req, err := d.request(dataplane.OpDelete, key)
	if err != nil {
		return false, err
	}
	resp, err := d.m.node.Do(ctx, req)
	if errors.Is(err, dataplane.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return resp.Deleted, nil
}

// Incr adds delta (negative to decrement) to the integer stored under key
// (a missing key counts as 0) and returns the new value and version;
// dataplane.ErrNotANumber or ErrOverflow when the value is not an integer
// or the sum does not fit an int64.
func (d *DMap) Incr(ctx context.Context, key string, delta int64) (int64, uint64, error) {
	req, err := d.request(dataplane.OpIncr, key)
	if err != nil {
		return 0, 0, err
	}
	req.Delta = delta
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	return resp.Int, resp.Version, nil
}

// IncrByFloat adds delta to the number stored under key (a missing key
// counts as 0) and returns the new value and version.
func (d *DMap) IncrByFloat(ctx context.Context, key string, delta float64) (float64, uint64, error) {
	req, err := d.request(dataplane.OpIncrByFloat, key)
	if err != nil {
		return 0, 0, err
	}
	req.DeltaFloat = delta
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	return resp.Float, resp.Version, nil
}

// Expire sets the time to live of key to ttl (zero removes the expiry)
// and reports whether the key exists.
func (d *DMap) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	req, err := d.request(dataplane.OpExpire, key)
	if err != nil {
		return false, err
	}
	if err := checkTTL("ttl", ttl); err != nil {
		return false, err
	}
	req.TTL = ttl
	resp, err := d.m.node.Do(ctx, req)
	if errors.Is(err, dataplane.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return resp.Found, nil
}

// GetPut stores value under key and returns the entry it replaced (nil
// when the key did not exist) and the key's new version.
func (d *DMap) GetPut(ctx context.Context, key string, value []byte) (*Entry, uint64, error) {
	req, err := d.request(dataplane.OpGetPut, key)
	if err != nil {
		return nil, 0, err
	}
	if err := d.checkValue(value); err != nil {
		return nil, 0, err
	}
	req.Value = value
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	if !resp.Found {
		return nil, resp.Version, nil
	}
	return &Entry{Key: key, Value: slices.Clone(resp.Value)}, resp.Version, nil
}

// Lock is a held lock of a DMap.
type Lock struct {
	d     *DMap
	key   string
	token uint64
}

// Lock takes the lock named key and returns it with its fencing token.
// The lock expires after ttl unless extended with Lease (zero: the data
// plane's default lease, 30s). Lock waits up to wait for the current
// holder to release it (zero: try once), then fails with
// dataplane.ErrLocked. Locks are a namespace apart from values: locking
// key does not touch the value stored under key.
func (d *DMap) Lock(ctx context.Context, key string, ttl, wait time.Duration) (*Lock, error) {
	req, err := d.request(dataplane.OpLock, key)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(checkTTL("ttl", ttl), checkTTL("wait", wait)); err != nil {
		return nil, err
	}
	req.TTL, req.Wait = ttl, wait
	resp, err := d.m.node.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Lock{d: d, key: key, token: resp.Token}, nil
}

// Key returns the lock's name.
func (l *Lock) Key() string { return l.key }

// Token returns the fencing token: it grows with every holder of the
// lock. Send it along with whatever the lock protects, so that the
// protected resource can refuse a holder whose lease ran out.
func (l *Lock) Token() uint64 { return l.token }

// Unlock releases the lock; dataplane.ErrNoSuchLock if it is no longer
// held with this token (released, or its lease ran out).
func (l *Lock) Unlock(ctx context.Context) error {
	return l.withToken(ctx, dataplane.OpUnlock, 0)
}

// Lease makes the lock expire ttl from now (zero: the default lease);
// dataplane.ErrNoSuchLock if it is no longer held with this token.
func (l *Lock) Lease(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("ttl", ttl); err != nil {
		return err
	}
	return l.withToken(ctx, dataplane.OpLease, ttl)
}

func (l *Lock) withToken(ctx context.Context, op dataplane.Op, ttl time.Duration) error {
	req, err := l.d.request(op, l.key)
	if err != nil {
		return err
	}
	req.Token, req.TTL = l.token, ttl
	resp, err := l.d.m.node.Do(ctx, req)
	if errors.Is(err, dataplane.ErrNotFound) || (err == nil && !resp.Found) {
		return fmt.Errorf("%w: %s %q in %q with token %d", dataplane.ErrNoSuchLock, op, l.key, l.d.name, l.token)
	}
	return err
}

// Scan iterates over the keys matching match (Redis glob syntax: * ? [abc]
// \x; empty: every key), partition after partition. Keys written or
// deleted during the scan may or may not be listed; the others are listed
// exactly once. On an error it yields ("", err) and stops; breaking out
// of the loop stops the scan.
//
//	for key, err := range users.Scan(ctx, "user:*") {
//		if err != nil { ... }
//	}
func (d *DMap) Scan(ctx context.Context, match string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if d.name == "" {
			yield("", fmt.Errorf("%w: empty dmap name", dataplane.ErrInvalid))
			return
		}
		cursor := ""
		for {
			keys, next, err := d.m.node.Scan(ctx, d.name, match, cursor, ScanPageSize)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range keys {
				if !yield(k, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// Destroy removes every key of the DMap, on every partition.
func (d *DMap) Destroy(ctx context.Context) error {
	return d.m.node.Destroy(ctx, d.name)
}
