package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// etT is what the helpers need of a test: *testing.T, *testing.B and
// *rapid.T all have it.
type etT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
}

// etClock is a fake clock for engine tests (the "et" prefix keeps these
// helpers apart from the service tests' in the same package).
type etClock struct {
	mu sync.Mutex
	t  time.Time
}

func newETClock() *etClock { return &etClock{t: time.Unix(1_700_000_000, 0)} }

func (c *etClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *etClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// etEngine returns an engine on a fake clock, closed at cleanup.
func etEngine(t testing.TB, cfg Config, partitions uint32) (*Engine, *etClock) {
	t.Helper()
	clk := newETClock()
	e, err := NewEngine(cfg, partitions, clk.Now)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, clk
}

// etDo runs req on partition 0 at epoch 1.
func etDo(e *Engine, req *Request) (*Response, error) {
	return e.Do(context.Background(), 0, 1, req)
}

func etMust(t testing.TB, e *Engine, req *Request) *Response {
	t.Helper()
	resp, err := etDo(e, req)
	if err != nil {
		t.Fatalf("%s %q: %v", req.Op, req.Key, err)
	}
	return resp
}

func etPut(t testing.TB, e *Engine, dmap, key, value string) uint64 {
	t.Helper()
	return etMust(t, e, &Request{Op: OpPut, DMap: dmap, Key: key, Value: []byte(value)}).Version
}

// etGet returns the value of key, or "<missing>".
func etGet(t testing.TB, e *Engine, dmap, key string) string {
	t.Helper()
	resp, err := etDo(e, &Request{Op: OpGet, DMap: dmap, Key: key})
	if err != nil {
		return "<missing>"
	}
	return string(resp.Value)
}

// etSnapshots returns every partition's snapshot (without fencing).
func etSnapshots(t etT, e *Engine) []*PartitionSnapshot {
	t.Helper()
	out := make([]*PartitionSnapshot, e.PartitionCount())
	for p := range e.PartitionCount() {
		s, err := e.Snapshot(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = s
	}
	return out
}

// etDiffSnapshots describes the first difference between a and b, or "".
func etDiffSnapshots(a, b *PartitionSnapshot) string {
	if a.Partition != b.Partition || a.Seq != b.Seq || a.Fence != b.Fence || a.Format != b.Format {
		return fmt.Sprintf("header: p%d seq %d fence %d vs p%d seq %d fence %d", a.Partition, a.Seq, a.Fence, b.Partition, b.Seq, b.Fence)
	}
	if len(a.DMaps) != len(b.DMaps) {
		return fmt.Sprintf("p%d: %d dmaps vs %d", a.Partition, len(a.DMaps), len(b.DMaps))
	}
	for i := range a.DMaps {
		da, db := a.DMaps[i], b.DMaps[i]
		if da.Name != db.Name || len(da.Entries) != len(db.Entries) || len(da.Locks) != len(db.Locks) {
			return fmt.Sprintf("p%d dmap %q (%d keys, %d locks) vs %q (%d keys, %d locks)", a.Partition,
				da.Name, len(da.Entries), len(da.Locks), db.Name, len(db.Entries), len(db.Locks))
		}
		for j := range da.Entries {
			x, y := da.Entries[j], db.Entries[j]
			if x.Key != y.Key || !bytes.Equal(x.Value, y.Value) || x.Version != y.Version || x.ExpireAt != y.ExpireAt {
				return fmt.Sprintf("p%d dmap %q entry %d: %+v vs %+v", a.Partition, da.Name, j, x, y)
			}
		}
		for j := range da.Locks {
			if da.Locks[j] != db.Locks[j] {
				return fmt.Sprintf("p%d dmap %q lock %d: %+v vs %+v", a.Partition, da.Name, j, da.Locks[j], db.Locks[j])
			}
		}
	}
	if len(a.Requests) != len(b.Requests) {
		return fmt.Sprintf("p%d: %d request results vs %d", a.Partition, len(a.Requests), len(b.Requests))
	}
	for i := range a.Requests {
		x, y := a.Requests[i], b.Requests[i]
		if x.ID != y.ID || !etSameResult(&x.Result, &y.Result) {
			return fmt.Sprintf("p%d request %d: %q %s vs %q %s", a.Partition, i, x.ID, etFormatResult(&x.Result), y.ID, etFormatResult(&y.Result))
		}
	}
	return ""
}

// etSameResult reports whether two request results are equal.
func etSameResult(x, y *RequestResult) bool {
	if x.At != y.At || x.Fingerprint != y.Fingerprint || x.Code != y.Code || x.Message != y.Message ||
		(x.Response == nil) != (y.Response == nil) {
		return false
	}
	return x.Response == nil || etSameResponse(x.Response, y.Response)
}

// etSameResponse compares the fields a write's response may set.
func etSameResponse(x, y *Response) bool {
	return x.Found == y.Found && bytes.Equal(x.Value, y.Value) && x.Version == y.Version && x.TTL == y.TTL &&
		x.Deleted == y.Deleted && x.Int == y.Int && x.Float == y.Float && x.Token == y.Token
}

func etFormatResult(r *RequestResult) string {
	if r.Response != nil {
		return fmt.Sprintf("{at %d fp %x resp %+v}", r.At, r.Fingerprint, *r.Response)
	}
	return fmt.Sprintf("{at %d fp %x %s %q}", r.At, r.Fingerprint, r.Code, r.Message)
}

// etCheckDedupe checks a dedupe table's bookkeeping and bounds.
func etCheckDedupe(t etT, e *Engine, p int, tab *dedupeTable) {
	t.Helper()
	var size int64
	for i, ent := range tab.q {
		size += ent.size
		if tab.byID[ent.id] != ent {
			t.Errorf("p%d: dedupe entry %d (%q) is not indexed", p, i, ent.id)
		}
		if i > 0 && ent.res.At < tab.q[i-1].res.At {
			t.Errorf("p%d: dedupe entry %d (%q) recorded before its predecessor", p, i, ent.id)
		}
		if ent.size != ent.res.size(ent.id) {
			t.Errorf("p%d: dedupe entry %q: size %d, want %d", p, ent.id, ent.size, ent.res.size(ent.id))
		}
	}
	if len(tab.byID) != len(tab.q) || size != tab.bytes {
		t.Errorf("p%d: dedupe table: %d indexed, %d queued, %d bytes counted, %d recorded", p, len(tab.byID), len(tab.q), size, tab.bytes)
	}
	if len(tab.q) > e.dedupe.entries || (len(tab.q) > 1 && tab.bytes > e.dedupe.bytes) {
		t.Errorf("p%d: dedupe table over its bounds: %d entries, %d bytes", p, len(tab.q), tab.bytes)
	}
	if n := len(tab.q); n > 1 && tab.q[n-1].res.At-tab.q[0].res.At >= e.dedupe.window {
		t.Errorf("p%d: dedupe table holds entries a window apart", p)
	}
}

// etCheckInvariants checks the engine's internal bookkeeping: key and
// byte counts, the expiry index, the table's directory.
func etCheckInvariants(t etT, e *Engine) {
	t.Helper()
	for p := range e.parts {
		part := &e.parts[p]
		part.mu.Lock()
		for name, d := range part.dmaps {
			n, bytes, withExp := 0, int64(0), 0
			d.tab.each(func(h uint64, ent *kvEntry) bool {
				n++
				k := ent.key()
				bytes += ent.size()
				if hashKey(k) != h {
					t.Errorf("p%d %q: key %q filed under hash %x, not %x", p, name, k, h, hashKey(k))
				}
				if ent.expireAt != 0 {
					withExp++
					if _, ok := d.expires[ent]; !ok {
						t.Errorf("p%d %q: key %q has an expiry but is not in the expiry index", p, name, k)
					}
				}
				if got := d.tab.get(k, h); got != ent {
					t.Errorf("p%d %q: key %q not found through its hash", p, name, k)
				}
				return true
			})
			for b := range d.tab.dir {
				bk := d.tab.dir[b]
				n := 0
				for h := range bk.all {
					n++
					if lo, hi := bucketRange(bk, h); h < lo || h > hi || d.tab.bucket(h) != bk {
						t.Errorf("p%d %q: hash %x in the wrong bucket", p, name, h)
					}
					if bk.lookup(h) == nil {
						t.Errorf("p%d %q: hash %x not found from its home slot", p, name, h)
					}
				}
				if n != bk.n {
					t.Errorf("p%d %q: bucket holds %d entries, counts %d", p, name, n, bk.n)
				}
			}
			if n != d.tab.n || bytes != d.bytes || withExp != len(d.expires) {
				t.Errorf("p%d %q: counted %d keys %d bytes %d with expiry; table says %d keys %d bytes, index %d",
					p, name, n, bytes, withExp, d.tab.n, d.bytes, len(d.expires))
			}
			if d.tab.dir != nil && len(d.tab.dir) != 1<<d.tab.depth {
				t.Errorf("p%d %q: directory of %d slots at depth %d", p, name, len(d.tab.dir), d.tab.depth)
			}
			for k := range d.waited {
				if ls := d.locks[k]; ls == nil || ls.wake == nil {
					t.Errorf("p%d %q: waited lock %q has no wake channel", p, name, k)
				}
			}
		}
		etCheckDedupe(t, e, p, &part.dedupe)
		part.mu.Unlock()
	}
}
