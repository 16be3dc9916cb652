package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEvictMaxKeysLRU(t *testing.T) {
	e, _ := etEngine(t, Config{Default: DMapConfig{MaxKeys: 10}}, 1)
	for i := range 30 {
		k := fmt.Sprint(i)
		etPut(t, e, "m", k, "v")
		if got := etGet(t, e, "m", k); got != "v" {
			t.Fatalf("the key just written (%s) was evicted", k)
		}
	}
	st := e.Stats().DMaps["m"]
	if st.Keys != 10 || st.Evictions != 20 {
		t.Fatalf("stats %+v, want 10 keys, 20 evictions", st)
	}
	etCheckInvariants(t, e)
}

func TestEvictMaxBytesLRU(t *testing.T) {
	e, _ := etEngine(t, Config{DMaps: map[string]DMapConfig{"m": {MaxBytes: 1000}}}, 1)
	val := strings.Repeat("x", 98)
	for i := range 50 {
		etPut(t, e, "m", fmt.Sprintf("%02d", i), val) // 100 bytes each
	}
	st := e.Stats().DMaps["m"]
	if st.Bytes > 1000 || st.Keys != 10 || st.Evictions != 40 {
		t.Fatalf("stats %+v, want 10 keys within 1000 bytes", st)
	}
	// A bigger value evicts several.
	etPut(t, e, "m", "big", strings.Repeat("y", 497))
	if st := e.Stats().DMaps["m"]; st.Bytes > 1000 || st.Keys != 6 {
		t.Fatalf("after a 500-byte entry: %+v", st)
	}
	// One entry over max_bytes can never fit.
	if _, err := etDo(e, &Request{Op: OpPut, DMap: "m", Key: "huge", Value: make([]byte, 1000)}); !errors.Is(err, ErrFull) {
		t.Fatalf("entry over max_bytes: %v", err)
	}
	etCheckInvariants(t, e)
}

func TestEvictNoneRefuses(t *testing.T) {
	e, _ := etEngine(t, Config{Default: DMapConfig{MaxKeys: 3, MaxBytes: 30, Eviction: EvictionNone}}, 1)
	for i := range 3 {
		etPut(t, e, "m", fmt.Sprint(i), "12345")
	}
	if _, err := etDo(e, &Request{Op: OpPut, DMap: "m", Key: "3", Value: []byte("v")}); !errors.Is(err, ErrFull) {
		t.Fatalf("4th key: %v", err)
	}
	if _, err := etDo(e, &Request{Op: OpIncr, DMap: "m", Key: "n", Delta: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("incr creating a 4th key: %v", err)
	}
	etPut(t, e, "m", "0", "abc") // overwrite, smaller: fine
	if _, err := etDo(e, &Request{Op: OpPut, DMap: "m", Key: "1", Value: []byte(strings.Repeat("z", 20))}); !errors.Is(err, ErrFull) {
		t.Fatalf("growing over max_bytes: %v", err)
	}
	etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "2"})
	etPut(t, e, "m", "3", "v")
	if st := e.Stats().DMaps["m"]; st.Evictions != 0 || st.Keys != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestEvictLRUPrefersIdleKeys: with the default 5 samples, evictions fall
// mostly on keys not used recently.
func TestEvictLRUPrefersIdleKeys(t *testing.T) {
	e, clk := etEngine(t, Config{Default: DMapConfig{MaxKeys: 200}}, 1)
	for i := range 200 {
		etPut(t, e, "m", fmt.Sprintf("old-%d", i), "v")
		clk.Advance(time.Millisecond)
	}
	for i := range 100 { // the even half is used again
		etGet(t, e, "m", fmt.Sprintf("old-%d", 2*i))
		clk.Advance(time.Millisecond)
	}
	for i := range 100 {
		etPut(t, e, "m", fmt.Sprintf("new-%d", i), "v")
		clk.Advance(time.Millisecond)
	}
	used, idle := 0, 0
	for i := range 200 {
		if etGet(t, e, "m", fmt.Sprintf("old-%d", i)) != "<missing>" {
			if i%2 == 0 {
				used++
			} else {
				idle++
			}
		}
	}
	t.Logf("survivors: %d of 100 recently used, %d of 100 idle", used, idle)
	// Exact LRU would keep all 100 used and no idle key. Sampling 5 keys
	// per eviction alone keeps about 75 and 25; with the candidate pool
	// about 85 and 15 (500 samples over ~250 keys never see ~14% of the
	// idle keys); over 500 runs the worst was 77 and 23.
	if used < 70 || idle > 30 || used-idle < 45 {
		t.Fatalf("survivors: %d used, %d idle: LRU does not prefer idle keys", used, idle)
	}
}

// TestEvictPrefersExpired: a sampled expired key goes first and counts as
// an expiration.
func TestEvictPrefersExpired(t *testing.T) {
	e, clk := etEngine(t, Config{Default: DMapConfig{MaxKeys: 2, LRUSamples: 64}}, 1)
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "a", TTL: time.Second})
	clk.Advance(time.Millisecond)
	etPut(t, e, "m", "b", "v")
	clk.Advance(time.Second)
	etPut(t, e, "m", "c", "v")
	if got := etGet(t, e, "m", "b"); got != "v" {
		t.Fatal("evicted a live key while an expired one was there")
	}
	if st := e.Stats().DMaps["m"]; st.Expirations != 1 || st.Evictions != 0 {
		t.Fatalf("stats %+v", st)
	}
}
