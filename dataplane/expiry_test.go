package dataplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestExpiryCycleRemovesExpiredKeys(t *testing.T) {
	e, clk := etEngine(t, Config{}, 4)
	ctx := context.Background()
	const n = 2000
	for i := range n {
		p := uint32(i % 4)
		if _, err := e.Do(ctx, p, 1, &Request{Op: OpPut, DMap: "m", Key: fmt.Sprintf("ttl-%d", i), TTL: time.Second}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Do(ctx, p, 1, &Request{Op: OpPut, DMap: "m", Key: fmt.Sprintf("keep-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if removed := e.expireCycle(time.Second); removed != 0 {
		t.Fatalf("removed %d keys before they expired", removed)
	}
	clk.Advance(time.Second)
	// Each visit removes up to 16 rounds × 20 samples per DMap; with every
	// sample expired, cycles keep going until the index is empty.
	cycles := 0
	for e.Stats().Keys > n {
		if cycles++; cycles > 20 {
			t.Fatalf("%d keys left after %d cycles", e.Stats().Keys, cycles)
		}
		e.expireCycle(time.Second)
	}
	st := e.Stats()
	if st.Keys != n || st.Expirations != n {
		t.Fatalf("stats %+v, want %d keys and %d expirations", st, n, n)
	}
	etCheckInvariants(t, e)
	for p := range e.parts {
		if d := e.parts[p].dmaps["m"]; d.expires != nil {
			t.Fatalf("partition %d: expiry index not released", p)
		}
	}
}

// TestExpiryCycleStopsOnFewExpired: when at most 25% of a sample expired,
// a visit takes one round: most expired keys are left for later cycles or
// for lazy expiry.
func TestExpiryCycleStopsOnFewExpired(t *testing.T) {
	e, clk := etEngine(t, Config{ExpirySamples: 20}, 1)
	for i := range 1000 {
		ttl := time.Hour
		if i%20 == 0 { // 5% expire
			ttl = time.Second
		}
		etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: fmt.Sprint(i), TTL: ttl})
	}
	clk.Advance(time.Second)
	if removed := e.expireCycle(time.Second); removed > 20 {
		t.Fatalf("one cycle removed %d keys; with 5%% expired it should stop after one round of 20", removed)
	}
}

func TestExpiryCycleOnlyOnActivePrimary(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", TTL: time.Second})
	clk.Advance(time.Second)
	e.Fence(0, 2) // the partition moved to a newer primary
	if removed := e.expireCycle(time.Second); removed != 0 {
		t.Fatalf("a fenced partition expired %d keys", removed)
	}
	// Serving it again at the new epoch makes it active.
	if _, err := e.Do(context.Background(), 0, 2, &Request{Op: OpExists, DMap: "m", Key: "other"}); err != nil {
		t.Fatal(err)
	}
	var got []Mutation
	e.OnMutation = func(_ uint32, m Mutation) { got = append(got, m) }
	if removed := e.expireCycle(time.Second); removed != 1 {
		t.Fatalf("removed %d, want 1", removed)
	}
	if len(got) != 1 || got[0].Kind != MutationDelete || got[0].Epoch != 2 || got[0].Key != "k" {
		t.Fatalf("background mutation %+v", got)
	}
}

func TestExpiryCycleRemovesAbandonedLocks(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	for i := range 10 {
		etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: fmt.Sprint(i), TTL: time.Second})
	}
	clk.Advance(time.Second)
	e.expireCycle(time.Second)
	if st := e.Stats(); st.Locks != 0 {
		t.Fatalf("%d expired locks left", st.Locks)
	}
}

func TestMaxIdle(t *testing.T) {
	e, clk := etEngine(t, Config{DMaps: map[string]DMapConfig{"idle": {MaxIdle: 10 * time.Second}}}, 1)
	etPut(t, e, "idle", "read", "v")
	etPut(t, e, "idle", "unread", "v")
	etPut(t, e, "plain", "unread", "v")
	for range 3 {
		clk.Advance(6 * time.Second)
		if got := etGet(t, e, "idle", "read"); got != "v" {
			t.Fatal("a key read every 6s was evicted")
		}
	}
	if got := etGet(t, e, "idle", "unread"); got != "<missing>" {
		t.Fatal("an idle key survived")
	}
	if got := etGet(t, e, "plain", "unread"); got != "v" {
		t.Fatal("max idle applied to another dmap")
	}
	if st := e.Stats().DMaps["idle"]; st.Evictions != 1 || st.Keys != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Writes count as access; the background cycle evicts idle keys.
	for i := range 500 {
		etPut(t, e, "idle", fmt.Sprint(i), "v")
	}
	clk.Advance(11 * time.Second)
	for cycles := 0; e.Stats().DMaps["idle"].Keys > 0; cycles++ {
		if cycles > 50 {
			t.Fatalf("%d idle keys left", e.Stats().DMaps["idle"].Keys)
		}
		e.expireCycle(time.Second)
	}
	// Scan does not return idle keys either.
	etPut(t, e, "idle", "x", "v")
	clk.Advance(11 * time.Second)
	if r := etMust(t, e, &Request{Op: OpScan, DMap: "idle"}); len(r.Keys) != 0 {
		t.Fatalf("scan returned idle keys %v", r.Keys)
	}
}

// TestExpiryGoroutine: Start runs the cycle in the background; Close stops
// and waits for it.
func TestExpiryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newETClock()
	e, err := NewEngine(Config{ExpiryInterval: time.Millisecond}, 2, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	e.Start() // once
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", TTL: time.Second})
	clk.Advance(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().Keys != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background cycle did not expire the key")
		}
		time.Sleep(time.Millisecond)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
