package dataplane

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// etScanAll pages through dmap on partition 0 and returns every key.
func etScanAll(t testing.TB, e *Engine, dmap, match string, limit int) []string {
	t.Helper()
	var keys []string
	cursor := ""
	for pages := 0; ; pages++ {
		r, err := etDo(e, &Request{Op: OpScan, DMap: dmap, Match: match, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if limit > 0 && len(r.Keys) > limit {
			t.Fatalf("page of %d keys, limit %d", len(r.Keys), limit)
		}
		keys = append(keys, r.Keys...)
		if r.Cursor == "" {
			return keys
		}
		if r.Cursor <= cursor {
			t.Fatalf("cursor went from %q back to %q", cursor, r.Cursor)
		}
		cursor = r.Cursor
		if pages > 1_000_000 {
			t.Fatal("scan does not end")
		}
	}
}

func TestEngineScanBasics(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	if r := etMust(t, e, &Request{Op: OpScan, DMap: "m"}); len(r.Keys) != 0 || r.Cursor != "" {
		t.Fatalf("empty scan %+v", r)
	}
	want := []string{}
	for i := range 250 {
		k := fmt.Sprintf("user:%03d", i)
		etPut(t, e, "m", k, "v")
		want = append(want, k)
	}
	etPut(t, e, "m", "other", "v")
	etPut(t, e, "m", "gone", "v")
	etMust(t, e, &Request{Op: OpExpire, DMap: "m", Key: "gone", TTL: time.Second})
	etPut(t, e, "elsewhere", "user:999", "v")
	clk.Advance(time.Second)

	got := etScanAll(t, e, "m", "user:*", 7)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("scan user:* got %d keys, want %d", len(got), len(want))
	}
	// Default limit is 100, and the expired key is not returned.
	r := etMust(t, e, &Request{Op: OpScan, DMap: "m"})
	if len(r.Keys) != DefaultScanLimit || r.Cursor == "" {
		t.Fatalf("first default page: %d keys, cursor %q", len(r.Keys), r.Cursor)
	}
	all := etScanAll(t, e, "m", "", 0)
	if len(all) != 251 || slices.Contains(all, "gone") {
		t.Fatalf("full scan: %d keys (gone included: %v)", len(all), slices.Contains(all, "gone"))
	}
	if got := etScanAll(t, e, "m", "user:1?[05]", 1000); len(got) != 20 {
		t.Fatalf("user:1?[05] matched %d keys, want 20: %v", len(got), got)
	}
	// A cursor past the end ends the scan.
	if r := etMust(t, e, &Request{Op: OpScan, DMap: "m", Cursor: "ffffffffffffffff"}); len(r.Keys) != 0 || r.Cursor != "" {
		t.Fatalf("scan past the end %+v", r)
	}
}

// TestEngineScanBigPartition scans a partition big enough for its table to
// split many times, with pages smaller and larger than a bucket.
func TestEngineScanBigPartition(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	const n = 20000
	for i := range n {
		etPut(t, e, "m", fmt.Sprintf("key-%d", i), "v")
	}
	part := &e.parts[0]
	if d := part.dmaps["m"]; d.tab.depth < 3 {
		t.Fatalf("table depth %d after %d keys: it did not split", d.tab.depth, n)
	}
	etCheckInvariants(t, e)
	for _, limit := range []int{1000, 10000, 3} {
		if limit == 3 && testing.Short() {
			continue
		}
		got := etScanAll(t, e, "m", "", limit)
		if len(got) != n {
			t.Fatalf("limit %d: %d keys, want %d", limit, len(got), n)
		}
		seen := make(map[string]bool, n)
		for _, k := range got {
			if seen[k] {
				t.Fatalf("limit %d: %q twice", limit, k)
			}
			seen[k] = true
		}
	}
	// A selective pattern returns short pages with a cursor rather than
	// reading everything at once.
	r := etMust(t, e, &Request{Op: OpScan, DMap: "m", Match: "nomatch*", Limit: 10})
	if len(r.Keys) != 0 || r.Cursor == "" {
		t.Fatalf("selective page: %d keys, cursor %q", len(r.Keys), r.Cursor)
	}
}

// TestEngineScanExactlyOnce is the scan property: random keys, random
// page sizes, every key exactly once.
func TestEngineScanExactlyOnce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e, err := NewEngine(Config{}, 1, newETClock().Now)
		if err != nil {
			rt.Fatal(err)
		}
		keys := rapid.SliceOfDistinct(rapid.StringN(1, 12, -1), rapid.ID[string]).Draw(rt, "keys")
		if rapid.Bool().Draw(rt, "many") {
			// Enough keys to split the table.
			for i := range rapid.IntRange(900, 3000).Draw(rt, "extra") {
				keys = append(keys, fmt.Sprintf("extra/%d", i))
			}
		}
		for _, k := range keys {
			if _, err := etDo(e, &Request{Op: OpPut, DMap: "m", Key: k}); err != nil {
				rt.Fatal(err)
			}
		}
		seen := make(map[string]int, len(keys))
		cursor := ""
		for {
			limit := rapid.IntRange(1, 50).Draw(rt, "limit")
			if rapid.IntRange(0, 20).Draw(rt, "big") == 0 {
				limit = rapid.IntRange(1, 3000).Draw(rt, "biglimit")
			}
			r, err := etDo(e, &Request{Op: OpScan, DMap: "m", Cursor: cursor, Limit: limit})
			if err != nil {
				rt.Fatal(err)
			}
			if len(r.Keys) > limit {
				rt.Fatalf("page of %d, limit %d", len(r.Keys), limit)
			}
			for _, k := range r.Keys {
				seen[k]++
			}
			if r.Cursor == "" {
				break
			}
			cursor = r.Cursor
		}
		for _, k := range keys {
			if seen[k] != 1 {
				rt.Fatalf("key %q seen %d times", k, seen[k])
			}
		}
		if len(seen) != len(keys) {
			rt.Fatalf("scan returned %d distinct keys, want %d", len(seen), len(keys))
		}
	})
}

// TestEngineScanConcurrentWrites: keys present for the whole scan appear
// exactly once while other keys are written and deleted concurrently.
func TestEngineScanConcurrentWrites(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	const stable = 3000
	for i := range stable {
		etPut(t, e, "m", fmt.Sprintf("stable-%d", i), "v")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("churn-%d", i%5000)
			if i%3 == 0 {
				_, _ = etDo(e, &Request{Op: OpDelete, DMap: "m", Key: k})
			} else {
				_, _ = etDo(e, &Request{Op: OpPut, DMap: "m", Key: k})
			}
		}
	}()
	seen := map[string]int{}
	for _, k := range etScanAll(t, e, "m", "stable-*", 17) {
		seen[k]++
	}
	cancel()
	wg.Wait()
	for i := range stable {
		if k := fmt.Sprintf("stable-%d", i); seen[k] != 1 {
			t.Fatalf("%s seen %d times", k, seen[k])
		}
	}
}

func TestScanCursorFormat(t *testing.T) {
	for _, h := range []uint64{0, 1, 0xdeadbeef, 1<<64 - 2} {
		c := formatScanCursor(h)
		pos, done, err := parseScanCursor(c)
		if err != nil || done || pos != h+1 || len(c) != 16 {
			t.Fatalf("%x: %q -> %d %v %v", h, c, pos, done, err)
		}
	}
	if _, done, _ := parseScanCursor(formatScanCursor(1<<64 - 1)); !done {
		t.Fatal("max cursor not done")
	}
	for _, bad := range []string{"x", "0123456789abcdeg", "+123456789abcdef", "0123456789abcdef0"} {
		if _, _, err := parseScanCursor(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
