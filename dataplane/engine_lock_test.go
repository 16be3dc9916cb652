package dataplane

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestEngineLockBasics(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	lock := func(key string, ttl time.Duration) (*Response, error) {
		return etDo(e, &Request{Op: OpLock, DMap: "m", Key: key, TTL: ttl})
	}
	r1, err := lock("k", 10*time.Second)
	if err != nil || r1.Token == 0 {
		t.Fatalf("lock: %+v, %v", r1, err)
	}
	// Held: refused at once without Wait.
	if _, err := lock("k", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	// Locks are separate from values.
	if _, err := etDo(e, &Request{Op: OpGet, DMap: "m", Key: "k"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lock created a value: %v", err)
	}
	etPut(t, e, "m", "k", "value")
	if _, err := lock("k", 0); !errors.Is(err, ErrLocked) {
		t.Fatal("a put released the lock")
	}
	// Wrong token: refused.
	if _, err := etDo(e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r1.Token + 1}); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("unlock with a wrong token: %v", err)
	}
	if _, err := etDo(e, &Request{Op: OpLease, DMap: "m", Key: "k", Token: r1.Token + 1, TTL: time.Minute}); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("lease with a wrong token: %v", err)
	}
	// Lease extends, keeping the token.
	clk.Advance(9 * time.Second)
	l := etMust(t, e, &Request{Op: OpLease, DMap: "m", Key: "k", Token: r1.Token, TTL: 10 * time.Second})
	if !l.Found || l.Token != r1.Token {
		t.Fatalf("lease %+v", l)
	}
	clk.Advance(9 * time.Second) // 18s after the lock: held thanks to the lease
	if _, err := lock("k", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("lease did not extend: %v", err)
	}
	// Unlock with the token; then it can be taken again with a bigger token.
	if u := etMust(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r1.Token}); !u.Found {
		t.Fatal("unlock not found")
	}
	if _, err := etDo(e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r1.Token}); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("second unlock: %v", err)
	}
	r2, err := lock("k", time.Second)
	if err != nil || r2.Token <= r1.Token {
		t.Fatalf("relock: %+v %v (token must exceed %d)", r2, err, r1.Token)
	}
	// An expired lease frees the lock; the old token no longer works.
	clk.Advance(time.Second)
	r3, err := lock("k", 0)
	if err != nil || r3.Token <= r2.Token {
		t.Fatalf("lock after expiry: %+v %v", r3, err)
	}
	if _, err := etDo(e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r2.Token}); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("unlock with an expired holder's token: %v", err)
	}
	// TTL 0 takes the default lease.
	clk.Advance(DefaultLockLease - time.Nanosecond)
	if _, err := lock("k", 0); !errors.Is(err, ErrLocked) {
		t.Fatal("default lease shorter than DefaultLockLease")
	}
	clk.Advance(time.Nanosecond)
	if _, err := lock("k", 0); err != nil {
		t.Fatalf("default lease longer than DefaultLockLease: %v", err)
	}
	// Unlock of an expired lock: refused, and it is cleaned up.
	clk.Advance(DefaultLockLease)
	if st := e.Stats(); st.Locks != 1 {
		t.Fatalf("locks %d", st.Locks)
	}
}

func TestEngineLockTokensIncreaseAcrossEpochs(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	ctx := context.Background()
	var last uint64
	for epoch := uint64(1); epoch < 5; epoch++ {
		r, err := e.Do(ctx, 0, epoch, &Request{Op: OpLock, DMap: "m", Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Token <= last {
			t.Fatalf("epoch %d: token %d not above %d", epoch, r.Token, last)
		}
		last = r.Token
		if _, err := e.Do(ctx, 0, epoch, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r.Token}); err != nil {
			t.Fatal(err)
		}
	}
}

// etWaitForWaiter waits (with a deadline) until someone waits for lock key.
func etWaitForWaiter(t *testing.T, e *Engine, p uint32, dmap, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		part := &e.parts[p]
		part.mu.Lock()
		d := part.dmaps[dmap]
		_, ok := d.waited[key]
		part.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no waiter appeared")
}

func TestEngineLockWaitWakesOnUnlock(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	r1 := etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	type result struct {
		r   *Response
		err error
	}
	done := make(chan result)
	go func() {
		r, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- result{r, err}
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	etMust(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: r1.Token})
	res := <-done
	if res.err != nil || res.r.Token <= r1.Token {
		t.Fatalf("waiter: %+v %v", res.r, res.err)
	}
	etCheckInvariants(t, e)
}

func TestEngineLockWaitWakesOnExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, clk := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	done := make(chan error)
	go func() {
		_, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- err
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	// The fake clock passes the lease; the background cycle notices and
	// wakes the waiter, which takes the lock.
	clk.Advance(time.Hour)
	if n := e.expireCycle(time.Second); n != 1 {
		t.Fatalf("cycle removed %d, want the expired lock", n)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestEngineLockWaitTimesOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	start := time.Now()
	_, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: 20 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("did not wait")
	}
}

func TestEngineLockWaitContextCanceled(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := e.Do(ctx, 0, 1, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- err
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	cancel()
	err := <-done
	if !errors.Is(err, ErrLocked) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrLocked and context.Canceled", err)
	}
}

func TestEngineLockWaitFenced(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	done := make(chan error)
	go func() {
		_, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- err
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	e.Fence(0, 2)
	if err := <-done; !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("waiter after fence: %v", err)
	}
}

func TestEngineLockWaitEngineClosed(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	done := make(chan error)
	go func() {
		_, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- err
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	_ = e.Close()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("waiter after close: %v", err)
	}
}

func TestEngineLockWaitManyWaiters(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, _ := etEngine(t, Config{}, 1)
	const n = 8
	tokens := make(chan uint64, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			r, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour, TTL: time.Hour})
			if err != nil {
				errs <- err
				return
			}
			tokens <- r.Token
		}()
	}
	// Each holder releases in turn; every waiter gets the lock once, with
	// strictly increasing tokens.
	var last uint64
	for range n {
		select {
		case tok := <-tokens:
			if tok <= last {
				t.Fatalf("token %d after %d", tok, last)
			}
			last = tok
			etMust(t, e, &Request{Op: OpUnlock, DMap: "m", Key: "k", Token: tok})
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter never got the lock")
		}
	}
}
