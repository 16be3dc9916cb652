package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// etDriverConfig exercises every policy: "a" max bytes, "b" max keys and
// max idle, "c" no eviction, the rest a default TTL on some keys.
func etDriverConfig() Config {
	return Config{
		Default: DMapConfig{LRUSamples: 3},
		DMaps: map[string]DMapConfig{
			"a": {MaxBytes: 120},
			"b": {MaxKeys: 4, MaxIdle: 5 * time.Second},
			"c": {MaxKeys: 3, MaxBytes: 60, Eviction: EvictionNone},
			"d": {TTL: 3 * time.Second},
		},
		ExpirySamples: 4,
		// Small dedupe bounds, so that retries meet evicted results too.
		DedupeEntries: 6,
		DedupeBytes:   1500,
		DedupeWindow:  20 * time.Second,
	}
}

// etRequestIDs numbers the request ids drivers make (unique across the
// drivers sharing an engine).
var etRequestIDs atomic.Uint64

// etSent is a write with a request id a driver made, to retry.
type etSent struct {
	p   uint32
	req Request
}

// etDriver turns bytes into engine operations: a fuzzer's input or a
// pseudo-random stream. It never fails on an operation's error (refusals
// are part of the game); it fails the test on errors no input may cause.
type etDriver struct {
	e      *Engine
	clk    *etClock
	in     []byte
	epochs []uint64 // per partition, the epoch requests use
	tokens []uint64 // lock tokens seen
	sent   []etSent // recent writes with a request id
	// strict: the driver is the engine's only user, so it may check that a
	// retry whose result the engine holds gets it, unapplied.
	strict bool
	// replayed counts the retries strict checking saw answered from the
	// dedupe table; retried counts every retry.
	replayed, retried int
}

func newETDriver(e *Engine, clk *etClock, in []byte) *etDriver {
	d := &etDriver{e: e, clk: clk, in: in, epochs: make([]uint64, e.PartitionCount())}
	for i := range d.epochs {
		d.epochs[i] = 1
	}
	return d
}

func (d *etDriver) byte() byte {
	if len(d.in) == 0 {
		return 0
	}
	b := d.in[0]
	d.in = d.in[1:]
	return b
}

func (d *etDriver) done() bool { return len(d.in) == 0 }

// step runs one operation and returns the error Do returned (nil for
// non-Do steps). It reports impossible results with t.Errorf (it may run
// on goroutines other than the test's).
func (d *etDriver) step(t etT) error {
	op := d.byte()
	p := uint32(d.byte()) % d.e.PartitionCount()
	dmap := string(rune('a' + d.byte()%5))
	key := fmt.Sprintf("k%d", d.byte()%12)
	req := &Request{DMap: dmap, Key: key}
	flags := d.byte()
	var retry bool
	switch op % 22 {
	case 0, 1, 2:
		req.Op = OpPut
		req.Value = make([]byte, int(d.byte())%50)
		for i := range req.Value {
			req.Value[i] = 'a' + byte(i%26)
		}
		req.NX, req.XX = flags&1 != 0, flags&2 != 0 && flags&1 == 0
		switch (flags >> 2) & 3 {
		case 1:
			req.TTL = time.Duration(d.byte()%10) * time.Second
		case 2:
			req.ExpireAt = d.clk.Now().UnixMilli() + int64(d.byte()%20)*500 - 2000
		case 3:
			req.KeepTTL = true
		}
		if flags&16 != 0 {
			req.HasIfVersion = true
			if flags&32 != 0 {
				req.IfVersion = MakeVersion(d.epochs[p], uint64(d.byte()))
			}
		}
	case 3, 4:
		req.Op = OpGet
	case 5:
		req.Op = OpDelete
	case 6:
		req.Op = OpExpire
		if flags&1 != 0 {
			req.TTL = time.Duration(d.byte()%10) * time.Second
		}
	case 7:
		req.Op = OpIncr
		req.Delta = int64(int8(d.byte()))
		if flags&1 != 0 {
			req.Delta = 1 << 62
		}
	case 8:
		req.Op = OpIncrByFloat
		req.DeltaFloat = float64(int8(d.byte())) / 4
	case 9:
		req.Op = OpGetPut
		req.Value = []byte(key)
	case 10:
		req.Op = OpLock
		req.TTL = time.Duration(d.byte()%10) * time.Second
	case 11, 12:
		req.Op = OpUnlock
		if flags&1 != 0 {
			req.Op = OpLease
		}
		if len(d.tokens) > 0 {
			req.Token = d.tokens[int(d.byte())%len(d.tokens)]
		}
	case 13:
		req.Op = OpScan
		req.Limit = int(d.byte() % 5)
		req.Match = []string{"", "k1*", "k[0-5]", "*"}[flags%4]
	case 14:
		req.Op = OpExists
	case 15:
		if flags%8 == 0 {
			req.Op = OpDestroy
		} else {
			req.Op = OpGet
		}
	case 16, 17:
		d.clk.Advance(time.Duration(d.byte()) * 50 * time.Millisecond)
		return nil
	case 18:
		d.e.expireCycle(time.Second)
		return nil
	case 19:
		// A failover: the partition's epoch grows (rarely, to keep room).
		if flags%4 == 0 && d.epochs[p] < 100 {
			d.epochs[p]++
		}
		return nil
	case 20, 21:
		// A client retries a write whose outcome it did not learn.
		if len(d.sent) == 0 {
			return nil
		}
		s := d.sent[int(flags)%len(d.sent)]
		p, retry = s.p, true
		req = new(Request)
		*req = s.req
	}
	if !retry && req.Op.IsWrite() && d.byte()%3 != 0 {
		req.RequestID = fmt.Sprintf("rid-%d", etRequestIDs.Add(1))
	}
	var want *RequestResult
	var seq uint64
	if retry && d.strict {
		part := &d.e.parts[p]
		part.mu.Lock()
		if r := part.dedupe.lookup(req.RequestID, d.e.nowNanos(), d.e.dedupe); r != nil {
			c := *r
			want = &c
		}
		seq = part.seq
		part.mu.Unlock()
	}
	resp, err := d.e.Do(context.Background(), p, d.epochs[p], req)
	if retry {
		d.retried++
	}
	if want != nil {
		d.replayed++
		d.checkReplayed(t, p, seq, req, want, resp, err)
	}
	if req.RequestID != "" && !retry {
		if len(d.sent) == 32 {
			d.sent = append(d.sent[:0], d.sent[1:]...)
		}
		d.sent = append(d.sent, etSent{p: p, req: *req})
	}
	if err != nil {
		if CodeOf(err) == "" {
			t.Errorf("%s: error without a sentinel: %v", req.Op, err)
		}
		if errors.Is(err, ErrInvalid) && req.Op != OpPut {
			t.Errorf("%s: the driver only makes valid requests: %v", req.Op, err)
		}
		return err
	}
	if resp == nil {
		t.Errorf("%s: nil response without error", req.Op)
		return nil
	}
	if req.Op == OpLock {
		d.tokens = append(d.tokens, resp.Token)
	}
	return nil
}

// checkReplayed checks that a retry the engine held a result for (want)
// got it and changed nothing (the sequence number stayed seq).
func (d *etDriver) checkReplayed(t etT, p uint32, seq uint64, req *Request, want *RequestResult, resp *Response, err error) {
	part := &d.e.parts[p]
	part.mu.Lock()
	after := part.seq
	part.mu.Unlock()
	if after != seq {
		t.Errorf("retry of %s %q (%s): sequence %d -> %d", req.Op, req.Key, req.RequestID, seq, after)
	}
	switch {
	case want.Response != nil && (err != nil || resp == nil || !etSameResponse(resp, want.Response)):
		t.Errorf("retry of %s %q (%s): %+v %v, recorded %s", req.Op, req.Key, req.RequestID, resp, err, etFormatResult(want))
	case want.Response == nil && (err == nil || CodeOf(err) != want.Code || err.Error() != want.Message):
		t.Errorf("retry of %s %q (%s): %+v %v, recorded %s", req.Op, req.Key, req.RequestID, resp, err, etFormatResult(want))
	}
}

// etRecorder records OnMutation's calls per partition.
type etRecorder struct {
	mu  sync.Mutex
	per map[uint32][]Mutation
}

func (r *etRecorder) hook(p uint32, m Mutation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.per == nil {
		r.per = map[uint32][]Mutation{}
	}
	r.per[p] = append(r.per[p], m)
}

// replay applies the recorded mutations to b and checks that b ends in the
// same state as a.
func (r *etRecorder) replay(t etT, a, b *Engine) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, ms := range r.per {
		for i, m := range ms {
			if err := b.ApplyMutation(p, m); err != nil {
				t.Fatalf("partition %d mutation %d (%s seq %d): %v", p, i, m.Kind, m.Seq, err)
			}
		}
	}
	sa := etSnapshots(t, a)
	for p := range sa {
		b.Fence(uint32(p), sa[p].Fence) // fences travel apart from mutations
		sbp, _ := b.Snapshot(uint32(p), 0)
		if diff := etDiffSnapshots(sa[p], sbp); diff != "" {
			t.Fatalf("replica differs: %s", diff)
		}
	}
}
