package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
)

// etSeq returns partition p's sequence number.
func etSeq(e *Engine, p uint32) uint64 {
	part := &e.parts[p]
	part.mu.Lock()
	defer part.mu.Unlock()
	return part.seq
}

// etRetried runs req twice on partition 0 at epoch 1 and checks that the
// second run returns the first one's result and applies nothing.
func etRetried(t *testing.T, e *Engine, req *Request) (*Response, error) {
	t.Helper()
	first, err1 := etDo(e, req)
	seq := etSeq(e, 0)
	again := *req
	second, err2 := etDo(e, &again)
	if s := etSeq(e, 0); s != seq {
		t.Fatalf("retry of %s applied again: sequence %d -> %d", req.Op, seq, s)
	}
	etSameOutcome(t, first, err1, second, err2)
	if first != nil && second == first {
		t.Fatal("the retry got the first call's Response itself, not a copy")
	}
	return first, err1
}

// etSameOutcome checks that two results are identical.
func etSameOutcome(t *testing.T, r1 *Response, err1 error, r2 *Response, err2 error) {
	t.Helper()
	switch {
	case (err1 == nil) != (err2 == nil):
		t.Fatalf("outcomes differ: %+v %v, then %+v %v", r1, err1, r2, err2)
	case err1 != nil:
		if CodeOf(err1) != CodeOf(err2) || err1.Error() != err2.Error() || !errors.Is(err2, ErrorOf(CodeOf(err1))) {
			t.Fatalf("errors differ: %v, then %v", err1, err2)
		}
	case !etSameResponse(r1, r2):
		t.Fatalf("responses differ: %+v, then %+v", r1, r2)
	}
}

func TestDedupeRetryReturnsFirstResult(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	etPut(t, e, "m", "old", "previous")

	r, _ := etRetried(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", Value: []byte("v"), RequestID: "put-1"})
	if got := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"}); got.Version != r.Version {
		t.Fatalf("put version %d, stored %d", r.Version, got.Version)
	}

	for range 3 {
		etRetried(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 5, RequestID: "incr-1"})
	}
	if got := etGet(t, e, "m", "n"); got != "5" {
		t.Fatalf("incr retried with one id: %q, want 5 (applied once)", got)
	}
	etRetried(t, e, &Request{Op: OpIncrByFloat, DMap: "m", Key: "f", DeltaFloat: 1.5, RequestID: "incrf-1"})
	if got := etGet(t, e, "m", "f"); got != "1.5" {
		t.Fatalf("incrbyfloat: %q", got)
	}

	r, _ = etRetried(t, e, &Request{Op: OpGetPut, DMap: "m", Key: "old", Value: []byte("new"), RequestID: "getput-1"})
	if !r.Found || string(r.Value) != "previous" {
		t.Fatalf("getput: %+v", r)
	}
	r.Value[0] = 'X' // the caller owns its copy
	r2, _ := etDo(e, &Request{Op: OpGetPut, DMap: "m", Key: "old", Value: []byte("new"), RequestID: "getput-1"})
	if string(r2.Value) != "previous" {
		t.Fatalf("a retry sees the caller's change: %q", r2.Value)
	}

	lk, _ := etRetried(t, e, &Request{Op: OpLock, DMap: "m", Key: "l", TTL: time.Minute, RequestID: "lock-1"})
	if lk.Token == 0 {
		t.Fatal("no token")
	}
	etRetried(t, e, &Request{Op: OpLease, DMap: "m", Key: "l", Token: lk.Token, RequestID: "lease-1"})
	etRetried(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "l", Token: lk.Token, RequestID: "unlock-1"})
	// The lock was released once: a new lock may be taken.
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "l"})

	r, _ = etRetried(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k", RequestID: "del-1"})
	if !r.Deleted {
		t.Fatal("delete did not delete")
	}
	etPut(t, e, "m", "k", "again")
	r, _ = etDo(e, &Request{Op: OpDelete, DMap: "m", Key: "k", RequestID: "del-1"})
	if !r.Deleted || etGet(t, e, "m", "k") != "again" {
		t.Fatalf("a retried delete deleted a later write: %+v", r)
	}

	etRetried(t, e, &Request{Op: OpExpire, DMap: "m", Key: "n", TTL: time.Hour, RequestID: "exp-1"})
	etRetried(t, e, &Request{Op: OpDelete, DMap: "m", Key: "absent", RequestID: "del-absent"})
	etRetried(t, e, &Request{Op: OpDestroy, DMap: "gone", RequestID: "destroy-1"})
	etCheckInvariants(t, e)
}

func TestDedupeDifferentIDsApplyTwice(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	for _, id := range []string{"a", "b", ""} {
		etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: id})
	}
	if got := etGet(t, e, "m", "n"); got != "3" {
		t.Fatalf("three incrs with ids a, b and none: %q", got)
	}
	// Without an id nothing is deduplicated.
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1})
	if got := etGet(t, e, "m", "n"); got != "4" {
		t.Fatalf("incr without id: %q", got)
	}
}

// TestDedupeDefinitiveFailureReplayed: a recorded failure answers a retry
// even after the state that caused it changed.
func TestDedupeDefinitiveFailureReplayed(t *testing.T) {
	e, _ := etEngine(t, Config{Default: DMapConfig{MaxKeys: 1, Eviction: EvictionNone}}, 1)
	v := etPut(t, e, "m", "k", "x")
	tests := []struct {
		req    *Request
		want   error
		change func()
	}{
		{&Request{Op: OpPut, DMap: "m", Key: "k", NX: true, RequestID: "nx"}, ErrKeyExists,
			func() { etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k"}) }},
		{&Request{Op: OpPut, DMap: "m", Key: "k", XX: true, RequestID: "xx"}, ErrNotFound,
			func() { etPut(t, e, "m", "k", "x") }},
		{&Request{Op: OpPut, DMap: "m", Key: "k", HasIfVersion: true, IfVersion: v, RequestID: "cas"}, ErrVersionMismatch,
			func() {}},
		{&Request{Op: OpIncr, DMap: "m", Key: "k", Delta: 1, RequestID: "nan"}, ErrNotANumber,
			func() { etPut(t, e, "m", "k", "1") }},
		{&Request{Op: OpPut, DMap: "m", Key: "other", RequestID: "full"}, ErrFull,
			func() { etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k"}) }},
		{&Request{Op: OpUnlock, DMap: "m", Key: "l", Token: 7, RequestID: "nolock"}, ErrNoSuchLock,
			func() {}},
	}
	for _, tt := range tests {
		_, err1 := etDo(e, tt.req)
		if !errors.Is(err1, tt.want) {
			t.Fatalf("%s %s: %v, want %v", tt.req.RequestID, tt.req.Op, err1, tt.want)
		}
		tt.change()
		seq := etSeq(e, 0)
		again := *tt.req
		r2, err2 := etDo(e, &again)
		etSameOutcome(t, nil, err1, r2, err2)
		if etSeq(e, 0) != seq {
			t.Fatalf("%s: the retry of a failure applied", tt.req.RequestID)
		}
	}
	// ErrLocked too: the retry does not take the lock freed meanwhile.
	lk := etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "l2"})
	_, err1 := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "l2", RequestID: "locked"})
	etMust(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "l2", Token: lk.Token})
	r2, err2 := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "l2", RequestID: "locked"})
	if !errors.Is(err1, ErrLocked) {
		t.Fatal(err1)
	}
	etSameOutcome(t, nil, err1, r2, err2)
}

// TestDedupeTransientFailuresNotRecorded: a fenced request, a lock wait
// ended by its context and an invalid request leave no result: the retry
// runs.
func TestDedupeTransientFailuresNotRecorded(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	ctx := context.Background()
	e.Fence(0, 2)
	req := &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "r1"}
	if _, err := e.Do(ctx, 0, 1, req); !errors.Is(err, ErrFencedEpoch) {
		t.Fatal(err)
	}
	if r, err := e.Do(ctx, 0, 2, req); err != nil || r.Int != 1 {
		t.Fatalf("retry after a fenced attempt: %+v %v", r, err)
	}

	lk, _ := e.Do(ctx, 0, 2, &Request{Op: OpLock, DMap: "m", Key: "l"})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	lockReq := &Request{Op: OpLock, DMap: "m", Key: "l", Wait: time.Hour, RequestID: "w1"}
	_, err := e.Do(wctx, 0, 2, lockReq)
	cancel()
	if !errors.Is(err, ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock wait ended by its context: %v", err)
	}
	if _, err := e.Do(ctx, 0, 2, &Request{Op: OpUnlock, DMap: "m", Key: "l", Token: lk.Token}); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Do(ctx, 0, 2, lockReq); err != nil || r.Token == 0 {
		t.Fatalf("retry of a lock whose wait timed out: %+v %v", r, err)
	}

	// An expire_at too far ahead is refused (ErrInvalid) and not recorded.
	far := &Request{Op: OpPut, DMap: "m", Key: "p", ExpireAt: 1 << 50, RequestID: "far"}
	if _, err := e.Do(ctx, 0, 2, far); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if _, ok := e.parts[0].dedupe.byID["far"]; ok {
		t.Fatal("an invalid request was recorded")
	}
}

func TestDedupeRequestIDValidation(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	long := strings.Repeat("i", MaxRequestIDLen+1)
	for _, op := range []Op{OpPut, OpGet} {
		if _, err := etDo(e, &Request{Op: op, DMap: "m", Key: "k", RequestID: long}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s with a %d-byte request id: %v", op, len(long), err)
		}
	}
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", RequestID: long[:MaxRequestIDLen]})

	// An id reused for a different request is refused, and nothing applies.
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", Value: []byte("1"), RequestID: "same"})
	seq := etSeq(e, 0)
	for _, req := range []*Request{
		{Op: OpPut, DMap: "m", Key: "k", Value: []byte("2"), RequestID: "same"},
		{Op: OpPut, DMap: "m", Key: "k2", Value: []byte("1"), RequestID: "same"},
		{Op: OpPut, DMap: "m2", Key: "k", Value: []byte("1"), RequestID: "same"},
		{Op: OpPut, DMap: "m", Key: "k", Value: []byte("1"), TTL: time.Second, RequestID: "same"},
		{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte("1"), RequestID: "same"},
	} {
		if _, err := etDo(e, req); !errors.Is(err, ErrInvalid) {
			t.Fatalf("id reused for %+v: %v", req, err)
		}
	}
	if etSeq(e, 0) != seq || etGet(t, e, "m", "k") != "1" {
		t.Fatal("a request with a reused id applied")
	}
	// Reads ignore ids (and do not record).
	etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k", RequestID: "read"})
	etPut(t, e, "m", "k", "changed")
	if r := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k", RequestID: "read"}); string(r.Value) != "changed" {
		t.Fatalf("a read was deduplicated: %q", r.Value)
	}
	// Wait is not part of a request's identity.
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "l", RequestID: "lk"})
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "l", Wait: time.Second, RequestID: "lk"})
}

func TestDedupeCapacityEviction(t *testing.T) {
	e, _ := etEngine(t, Config{DedupeEntries: 3}, 1)
	incr := func(id string) int64 {
		t.Helper()
		return etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: id}).Int
	}
	for i := range 4 {
		incr(fmt.Sprint("r", i))
	}
	if n := incr("r3"); n != 4 {
		t.Fatalf("retry of the newest: %d, want 4", n)
	}
	if n := incr("r1"); n != 2 {
		t.Fatalf("retry of a kept one: %d, want 2", n)
	}
	if n := incr("r0"); n != 5 {
		t.Fatalf("retry of the evicted oldest: %d, want 5 (applied again)", n)
	}
	// r0's new result pushed r1 out.
	if n := incr("r1"); n != 6 {
		t.Fatalf("r1 after eviction: %d", n)
	}
	etCheckInvariants(t, e)

	// The byte bound: getput records previous values.
	e2, _ := etEngine(t, Config{DedupeBytes: 1000}, 1)
	big := strings.Repeat("v", 600)
	etPut(t, e2, "m", "k", big)
	etMust(t, e2, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte(big), RequestID: "g1"})
	if tab := &e2.parts[0].dedupe; len(tab.q) != 1 || tab.bytes <= 600 {
		t.Fatalf("one big result: %d entries, %d bytes", len(tab.q), tab.bytes)
	}
	etMust(t, e2, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte("small"), RequestID: "g2"})
	if tab := &e2.parts[0].dedupe; len(tab.q) != 1 || tab.q[0].id != "g2" {
		t.Fatalf("g2 should have pushed g1 out (1000 bytes): %d entries", len(tab.q))
	}
	etCheckInvariants(t, e2)
}

func TestDedupeRetentionWindow(t *testing.T) {
	e, clk := etEngine(t, Config{DedupeWindow: time.Minute}, 1)
	req := &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "r"}
	etMust(t, e, req)
	clk.Advance(time.Minute - time.Nanosecond)
	if n := etMust(t, e, req).Int; n != 1 {
		t.Fatalf("retry within the window: %d", n)
	}
	clk.Advance(time.Nanosecond)
	if n := etMust(t, e, req).Int; n != 2 {
		t.Fatalf("retry after the window: %d, want 2 (applied again)", n)
	}
	if n := etMust(t, e, req).Int; n != 2 {
		t.Fatalf("retry of the new result: %d", n)
	}
	// Results a window older than a new record are dropped with it.
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "old"})
	clk.Advance(2 * time.Minute)
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "new"})
	if tab := &e.parts[0].dedupe; len(tab.q) != 1 || tab.q[0].id != "new" {
		t.Fatalf("after a window: %d entries", len(tab.q))
	}
	// A clock that goes back does not make results recorded out of order.
	clk.Advance(-time.Hour)
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "back"})
	if n := etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: "new"}).Int; n != 4 {
		t.Fatalf("retry after the clock went back: %d", n)
	}
	etCheckInvariants(t, e)
}

// etDedupeHistory runs writes with ids on partition 0 of e at epoch 1 and
// returns them with their outcomes.
func etDedupeHistory(t *testing.T, e *Engine) ([]*Request, []*Response, []error) {
	t.Helper()
	reqs := []*Request{
		{Op: OpIncr, DMap: "m", Key: "n", Delta: 7, RequestID: "incr"},
		{Op: OpPut, DMap: "m", Key: "n", NX: true, RequestID: "nx"},       // key_exists: a record mutation
		{Op: OpDelete, DMap: "m", Key: "absent", RequestID: "del-absent"}, // no-op: a record mutation
		{Op: OpGetPut, DMap: "m", Key: "n", Value: []byte("g"), RequestID: "gp"},
		{Op: OpLock, DMap: "m", Key: "l", TTL: time.Hour, RequestID: "lock"},
		{Op: OpPut, DMap: "m", Key: "evicts", Value: []byte("v"), RequestID: "put"}, // evicts: rides on the delete
	}
	resps := make([]*Response, len(reqs))
	errs := make([]error, len(reqs))
	for i, req := range reqs {
		resps[i], errs[i] = etDo(e, req)
	}
	return reqs, resps, errs
}

func TestDedupeSnapshotInstallKeepsResults(t *testing.T) {
	cfg := Config{Default: DMapConfig{MaxKeys: 1}}
	a, _ := etEngine(t, cfg, 1)
	reqs, resps, errs := etDedupeHistory(t, a)
	snap, err := a.Snapshot(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Requests) != len(reqs) {
		t.Fatalf("snapshot holds %d request results, want %d", len(snap.Requests), len(reqs))
	}
	wire, err := msgpack.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var decoded PartitionSnapshot
	if err := strictmsgpack.Unmarshal(wire, &decoded); err != nil {
		t.Fatal(err)
	}
	b, _ := etEngine(t, cfg, 1)
	if err := b.Install(0, &decoded); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Snapshot(0, 0)
	if diff := etDiffSnapshots(snap, got); diff != "" {
		t.Fatalf("installed: %s", diff)
	}
	etCheckInvariants(t, b)
	// The new primary answers the retries as the old one did.
	seq := etSeq(b, 0)
	for i, req := range reqs {
		r, err := b.Do(context.Background(), 0, 2, req)
		etSameOutcome(t, resps[i], errs[i], r, err)
	}
	if etSeq(b, 0) != seq {
		t.Fatal("retries applied on the new primary")
	}
	// A smaller table keeps the newest results.
	c, _ := etEngine(t, Config{Default: DMapConfig{MaxKeys: 1}, DedupeEntries: 2}, 1)
	if err := c.Install(0, snap); err != nil {
		t.Fatal(err)
	}
	if q := c.parts[0].dedupe.q; len(q) != 2 || q[0].id != "lock" || q[1].id != "put" {
		t.Fatalf("install into a table of 2: %d entries", len(q))
	}
	// Drop forgets them.
	b.Drop(0)
	if len(b.parts[0].dedupe.q) != 0 {
		t.Fatal("Drop kept request results")
	}
}

func TestDedupeSnapshotValidation(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	good := func() *PartitionSnapshot {
		return &PartitionSnapshot{Format: SnapshotFormat, Seq: 3, Fence: 1, Requests: []RequestSnapshot{
			{ID: "a", Result: RequestResult{At: 1, Fingerprint: 9, Response: &Response{Version: 1}}},
			{ID: "b", Result: RequestResult{At: 2, Code: CodeKeyExists, Message: "exists"}},
		}}
	}
	if err := e.Install(0, good()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mut  func(s *PartitionSnapshot)
	}{
		{"empty id", func(s *PartitionSnapshot) { s.Requests[0].ID = "" }},
		{"long id", func(s *PartitionSnapshot) { s.Requests[0].ID = strings.Repeat("i", MaxRequestIDLen+1) }},
		{"duplicate id", func(s *PartitionSnapshot) { s.Requests[1].ID = "a" }},
		{"out of order", func(s *PartitionSnapshot) { s.Requests[1].Result.At = 0 }},
		{"no outcome", func(s *PartitionSnapshot) { s.Requests[0].Result.Response = nil }},
		{"two outcomes", func(s *PartitionSnapshot) { s.Requests[0].Result.Code = CodeKeyExists }},
		{"unrecorded code", func(s *PartitionSnapshot) { s.Requests[1].Result.Code = CodeFencedEpoch }},
		{"unknown code", func(s *PartitionSnapshot) { s.Requests[1].Result.Code = "nope" }},
		{"long message", func(s *PartitionSnapshot) {
			s.Requests[1].Result.Message = strings.Repeat("m", maxResultMessageLen+1)
		}},
		{"too many", func(s *PartitionSnapshot) {
			s.Requests = make([]RequestSnapshot, maxDedupeEntries+1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mut(s)
			before, _ := e.Snapshot(0, 0)
			if err := e.Install(0, s); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			after, _ := e.Snapshot(0, 0)
			if diff := etDiffSnapshots(before, after); diff != "" {
				t.Fatalf("a refused snapshot changed the partition: %s", diff)
			}
		})
	}
}

// TestDedupeMutationReplayKeepsResults: a backup fed the primary's
// mutations holds the same results and, once primary, answers retries as
// the old primary would; the mutations survive the wire.
func TestDedupeMutationReplayKeepsResults(t *testing.T) {
	cfg := Config{Default: DMapConfig{MaxKeys: 1}}
	a, _ := etEngine(t, cfg, 1)
	var ms []Mutation
	a.OnMutation = func(_ uint32, m Mutation) { ms = append(ms, m) }
	reqs, resps, errs := etDedupeHistory(t, a)

	byID := map[string]Mutation{}
	for i, m := range ms {
		if m.Seq != uint64(i+1) {
			t.Fatalf("mutation %d has sequence %d", i, m.Seq)
		}
		if m.RequestID != "" {
			byID[m.RequestID] = m
		}
	}
	if len(byID) != len(reqs) {
		t.Fatalf("%d mutations carry a result, want %d", len(byID), len(reqs))
	}
	for id, kind := range map[string]MutationKind{"nx": MutationRecord, "del-absent": MutationRecord,
		"incr": MutationSet, "lock": MutationLockSet, "put": MutationDelete} {
		if byID[id].Kind != kind {
			t.Errorf("result of %s rides on a %s mutation, want %s", id, byID[id].Kind, kind)
		}
	}
	if last := ms[len(ms)-1]; last.RequestID != "put" {
		t.Errorf("the last mutation (%s) does not carry the last write's result", last.Kind)
	}

	b, _ := etEngine(t, cfg, 1)
	for _, m := range ms {
		wire, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var dm Mutation
		if err := strictmsgpack.Unmarshal(wire, &dm); err != nil {
			t.Fatal(err)
		}
		if err := b.ApplyMutation(0, dm); err != nil {
			t.Fatalf("%s seq %d: %v", dm.Kind, dm.Seq, err)
		}
	}
	sa, _ := a.Snapshot(0, 0)
	sb, _ := b.Snapshot(0, 0)
	if diff := etDiffSnapshots(sa, sb); diff != "" {
		t.Fatalf("backup differs: %s", diff)
	}
	etCheckInvariants(t, b)
	seq := etSeq(b, 0)
	for i, req := range reqs {
		r, err := b.Do(context.Background(), 0, 2, req)
		etSameOutcome(t, resps[i], errs[i], r, err)
	}
	if etSeq(b, 0) != seq {
		t.Fatal("retries applied on the promoted backup")
	}
}

func TestDedupeMutationChecks(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	ok := &RequestResult{At: 1, Response: &Response{}}
	bad := []Mutation{
		{Seq: 1, Kind: MutationRecord},
		{Seq: 1, Kind: MutationRecord, RequestID: "r"},
		{Seq: 1, Kind: MutationRecord, Result: ok},
		{Seq: 1, Kind: MutationRecord, RequestID: strings.Repeat("r", MaxRequestIDLen+1), Result: ok},
		{Seq: 1, Kind: MutationRecord, RequestID: "r", Result: &RequestResult{}},
		{Seq: 1, Kind: MutationRecord, RequestID: "r", Result: &RequestResult{Code: CodeUnavailable}},
		{Seq: 1, Kind: MutationDelete, DMap: "m", Key: "k", RequestID: "r"},
	}
	for i, m := range bad {
		if err := e.ApplyMutation(0, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad mutation %d %+v: %v", i, m, err)
		}
	}
	if err := e.ApplyMutation(0, Mutation{Seq: 1, Kind: MutationRecord, RequestID: "r", Result: ok}); err != nil {
		t.Fatal(err)
	}
	// The applied record answers a retry, and the caller's result is not
	// retained.
	ok.Response.Version = 99
	r := etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k", RequestID: "r"})
	if r.Version != 0 || r.Deleted {
		t.Fatalf("answer from a record: %+v", r)
	}
}

// TestDedupeConcurrentRetries: goroutines retry the same ids at once (run
// with -race): every id applies once.
func TestDedupeConcurrentRetries(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	var rec etRecorder
	e.OnMutation = rec.hook
	const ids, tries = 50, 8
	var wg sync.WaitGroup
	results := make([][tries]int64, ids)
	for i := range ids {
		for j := range tries {
			wg.Go(func() {
				r, err := e.Do(context.Background(), uint32(i%2), 1,
					&Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1, RequestID: fmt.Sprint("id-", i)})
				if err != nil {
					t.Error(err)
					return
				}
				results[i][j] = r.Int
			})
		}
	}
	wg.Wait()
	for p := range uint32(2) {
		r, err := e.Do(context.Background(), p, 1, &Request{Op: OpGet, DMap: "m", Key: "n"})
		if err != nil || string(r.Value) != fmt.Sprint(ids/2) {
			t.Fatalf("partition %d: counter %q %v, want %d", p, r.Value, err, ids/2)
		}
	}
	for i := range results {
		for j := range results[i] {
			if results[i][j] != results[i][0] {
				t.Fatalf("id %d: answers %v", i, results[i])
			}
		}
	}

	// Two attempts of one lock request waiting side by side get the same
	// token when the lock is freed.
	lk := etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "l"})
	tokens := make(chan uint64, 2)
	for range 2 {
		wg.Go(func() {
			r, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "l", Wait: time.Minute, RequestID: "waiter"})
			if err != nil {
				t.Error(err)
				tokens <- 0
				return
			}
			tokens <- r.Token
		})
	}
	etWaitForWaiter(t, e, 0, "m", "l")
	etMust(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "l", Token: lk.Token})
	wg.Wait()
	if t1, t2 := <-tokens, <-tokens; t1 != t2 || t1 == 0 {
		t.Fatalf("the attempts got tokens %d and %d", t1, t2)
	}
	etCheckInvariants(t, e)
	b, _ := etEngine(t, Config{}, 2)
	rec.replay(t, e, b)
}

func TestDedupeConfig(t *testing.T) {
	d := DefaultConfig()
	if d.DedupeEntries != 4096 || d.DedupeBytes != 1<<20 || d.DedupeWindow != 5*time.Minute {
		t.Fatalf("defaults %+v", d)
	}
	if got := (Config{}).withDefaults(); got.DedupeEntries != d.DedupeEntries || got.DedupeBytes != d.DedupeBytes ||
		got.DedupeWindow != d.DedupeWindow {
		t.Fatalf("zero config with defaults %+v", got)
	}
	c := Config{DedupeEntries: -1, DedupeBytes: maxDedupeBytes + 1, DedupeWindow: 25 * time.Hour}
	err := c.Validate()
	for _, want := range []string{"dedupe_entries", "dedupe_bytes", "dedupe_window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	c = Config{DedupeEntries: maxDedupeEntries + 1, DedupeWindow: -1, DedupeBytes: -1}
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}
