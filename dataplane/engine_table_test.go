package dataplane

import (
	"fmt"
	"testing"
	"time"
)

// etWeakHash makes keys collide: only the first two bytes count, and
// hashes share their top bits, so buckets overflow and split.
func etWeakHash(t *testing.T) {
	t.Helper()
	hashKey = func(k string) uint64 {
		var h uint64
		for i := 0; i < len(k) && i < 2; i++ {
			h = h<<8 | uint64(k[i])
		}
		return h << 40
	}
	t.Cleanup(func() { hashKey = keyHash })
}

func TestKVEntryLayout(t *testing.T) {
	for _, kl := range []int{1, 2, 127, 128, 300, MaxKeyLen} {
		for _, vl := range []int{0, 1, 100, 127, 128, 16384, 1 << 20} {
			key := string(make([]byte, kl))
			val := make([]byte, vl)
			for i := range val {
				val[i] = byte(i)
			}
			e := newKVEntry(key, val, 7, 8, 9)
			if e.key() != key || string(e.value()) != string(val) || e.size() != int64(kl+vl) ||
				e.version != 7 || e.expireAt != 8 || e.access != 9 {
				t.Fatalf("key %d value %d: round trip failed", kl, vl)
			}
			if vl == 0 && e.value() != nil {
				t.Fatal("empty value is not nil")
			}
		}
	}
}

// TestTableCollisions runs the engine with a hash under which many keys
// collide: lookups, overwrites, deletes, scans, snapshots and replay stay
// exact.
func TestTableCollisions(t *testing.T) {
	etWeakHash(t)
	e, clk := etEngine(t, Config{}, 1)
	var rec etRecorder
	e.OnMutation = rec.hook
	const n = 3000
	for i := range n {
		// "ab..." keys all share one hash; the rest spread over 2 bytes.
		etPut(t, e, "m", fmt.Sprintf("ab%d", i%50), fmt.Sprint(i))
		etPut(t, e, "m", fmt.Sprintf("%c%c-%d", 'a'+i%7, 'a'+i%13, i), "v")
	}
	etCheckInvariants(t, e)
	for i := range 50 {
		if got := etGet(t, e, "m", fmt.Sprintf("ab%d", i)); got != fmt.Sprint(n-50+i) {
			t.Fatalf("ab%d = %q", i, got)
		}
	}
	if d := e.parts[0].dmaps["m"]; len(d.tab.over) == 0 {
		t.Fatal("no collisions: the weak hash does not work")
	}
	// Deleting a bucket's key promotes a colliding one.
	for i := range 25 {
		etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: fmt.Sprintf("ab%d", i)})
	}
	etMust(t, e, &Request{Op: OpExpire, DMap: "m", Key: "ab30", TTL: time.Second})
	clk.Advance(time.Second)
	etCheckInvariants(t, e)
	for i := range 50 {
		want := fmt.Sprint(n - 50 + i)
		if i < 25 || i == 30 {
			want = "<missing>"
		}
		if got := etGet(t, e, "m", fmt.Sprintf("ab%d", i)); got != want {
			t.Fatalf("ab%d = %q, want %q", i, got, want)
		}
	}
	// Scans return every key exactly once, even with whole pages of keys
	// sharing a hash (such a page exceeds its limit instead of splitting).
	seen := map[string]int{}
	cursor := ""
	for {
		r := etMust(t, e, &Request{Op: OpScan, DMap: "m", Cursor: cursor, Limit: 7})
		for _, k := range r.Keys {
			seen[k]++
		}
		if cursor = r.Cursor; cursor == "" {
			break
		}
	}
	if st := e.Stats(); len(seen) != int(st.Keys) {
		t.Fatalf("scan saw %d keys, engine holds %d", len(seen), st.Keys)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%q seen %d times", k, c)
		}
	}
	b, _ := etEngine(t, Config{}, 1)
	rec.replay(t, e, b)
	// Snapshot and install keep colliding keys.
	s, _ := e.Snapshot(0, 0)
	c, _ := etEngine(t, Config{}, 1)
	if err := c.Install(0, s); err != nil {
		t.Fatal(err)
	}
	etCheckInvariants(t, c)
	s2, _ := c.Snapshot(0, 0)
	if diff := etDiffSnapshots(s, s2); diff != "" {
		t.Fatal(diff)
	}
}

func TestTableCollisionsReplay(t *testing.T) {
	etWeakHash(t)
	for seed := range 20 {
		clk := newETClock()
		a, _ := NewEngine(etDriverConfig(), 2, clk.Now)
		var rec etRecorder
		a.OnMutation = rec.hook
		in := make([]byte, 20000)
		x := uint32(seed*7919 + 1)
		for i := range in {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			in[i] = byte(x)
		}
		drv := newETDriver(a, clk, in)
		drv.strict = true
		for !drv.done() {
			drv.step(t)
		}
		etCheckInvariants(t, a)
		b, _ := NewEngine(etDriverConfig(), 2, newETClock().Now)
		rec.replay(t, a, b)
	}
}

func TestTableShrinksWhenEmptied(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	for i := range 5000 {
		etPut(t, e, "m", fmt.Sprint(i), "v")
	}
	for i := range 5000 {
		etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: fmt.Sprint(i)})
	}
	if d := e.parts[0].dmaps["m"]; d.tab.dir != nil || d.bytes != 0 {
		t.Fatalf("emptied table keeps %d directory slots, %d bytes", len(d.tab.dir), d.bytes)
	}
}
