package dataplane

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestMutationReplayEquivalence: applying the mutations engine A reports
// to engine B, in order, gives B exactly A's state, for random operation
// sequences (every op kind, expiry, evictions, destroys, failovers).
func TestMutationReplayEquivalence(t *testing.T) {
	kinds := map[MutationKind]int{}
	var replayed, retried int
	rapid.Check(t, func(rt *rapid.T) {
		// Either bytes rapid can shrink, or a long pseudo-random stream.
		in := rapid.SliceOfN(rapid.Byte(), 0, 3000).Draw(rt, "ops")
		if seed := rapid.Uint64().Draw(rt, "seed"); seed%2 == 0 {
			r := rand.New(rand.NewPCG(seed, 1))
			in = make([]byte, rapid.IntRange(1000, 20000).Draw(rt, "len"))
			for i := range in {
				in[i] = byte(r.Uint32())
			}
		}
		clk := newETClock()
		a, err := NewEngine(etDriverConfig(), 3, clk.Now)
		if err != nil {
			rt.Fatal(err)
		}
		var rec etRecorder
		a.OnMutation = rec.hook
		b, err := NewEngine(etDriverConfig(), 3, newETClock().Now)
		if err != nil {
			rt.Fatal(err)
		}
		drv := newETDriver(a, clk, in)
		drv.strict = true
		for !drv.done() {
			drv.step(rt)
		}
		etCheckInvariants(rt, a)
		rec.replay(rt, a, b)
		etCheckInvariants(rt, b)
		replayed, retried = replayed+drv.replayed, retried+drv.retried
		for _, ms := range rec.per {
			for _, m := range ms {
				kinds[m.Kind]++
			}
		}
	})
	for k := MutationSet; k <= MutationRecord; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %s mutation was tested: %v", k, kinds)
		}
	}
	if replayed == 0 || replayed == retried {
		t.Errorf("of %d retries %d were answered from the dedupe table: want some, not all", retried, replayed)
	}
	t.Logf("mutations replayed: %v; retries %d, answered from the dedupe table %d", kinds, retried, replayed)
}

func TestMutationHookReportsEveryWrite(t *testing.T) {
	e, clk := etEngine(t, Config{Default: DMapConfig{MaxKeys: 2}}, 1)
	var got []Mutation
	e.OnMutation = func(p uint32, m Mutation) { got = append(got, m) }
	ctx := context.Background()
	do := func(req *Request) {
		t.Helper()
		if _, err := e.Do(ctx, 0, 2, req); err != nil {
			t.Fatal(err)
		}
	}
	do(&Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("1"), TTL: time.Second})
	do(&Request{Op: OpGet, DMap: "m", Key: "a"}) // no mutation
	do(&Request{Op: OpPut, DMap: "m", Key: "b", Value: []byte("2")})
	clk.Advance(time.Second)
	do(&Request{Op: OpExists, DMap: "m", Key: "a"}) // lazy expiry: a delete
	do(&Request{Op: OpPut, DMap: "m", Key: "c", Value: []byte("3")})
	do(&Request{Op: OpPut, DMap: "m", Key: "d", Value: []byte("4")}) // evicts b or c
	do(&Request{Op: OpExpire, DMap: "m", Key: "d", TTL: time.Minute})
	r, _ := e.Do(ctx, 0, 2, &Request{Op: OpLock, DMap: "m", Key: "l"})
	do(&Request{Op: OpLease, DMap: "m", Key: "l", Token: r.Token})
	do(&Request{Op: OpUnlock, DMap: "m", Key: "l", Token: r.Token})
	do(&Request{Op: OpDestroy, DMap: "m"})
	want := []MutationKind{MutationSet, MutationSet, MutationDelete, MutationSet, MutationSet, MutationDelete,
		MutationExpire, MutationLockSet, MutationLockSet, MutationLockDelete, MutationDestroy}
	if len(got) != len(want) {
		t.Fatalf("got %d mutations %v, want %d", len(got), got, len(want))
	}
	for i, m := range got {
		if m.Kind != want[i] || m.Seq != uint64(i+1) || m.Epoch != 2 || m.DMap != "m" {
			t.Errorf("mutation %d: %+v, want kind %s seq %d epoch 2", i, m, want[i], i+1)
		}
	}
	if got[7].Version != r.Token || got[8].Version != r.Token {
		t.Errorf("lock and lease versions %d, %d; token %d", got[7].Version, got[8].Version, r.Token)
	}
	if got[5].Key != "b" && got[5].Key != "c" {
		t.Errorf("eviction of %q", got[5].Key)
	}
}

func TestApplyMutationErrors(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	set := func(seq, epoch uint64) Mutation {
		return Mutation{Seq: seq, Epoch: epoch, Kind: MutationSet, DMap: "m", Key: "k", Value: []byte("v"), Version: MakeVersion(epoch, seq)}
	}
	if err := e.ApplyMutation(0, set(1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := e.ApplyMutation(0, set(3, 3)); !errors.Is(err, ErrSeqGap) {
		t.Fatalf("gap: %v", err)
	}
	if err := e.ApplyMutation(0, set(1, 3)); !errors.Is(err, ErrSeqGap) {
		t.Fatalf("replayed: %v", err)
	}
	if err := e.ApplyMutation(0, set(2, 2)); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("older epoch: %v", err)
	}
	if err := e.ApplyMutation(0, set(2, 4)); err != nil {
		t.Fatal(err)
	}
	// The fence rose to 4 with it.
	if _, err := e.Do(context.Background(), 0, 3, &Request{Op: OpGet, DMap: "m", Key: "k"}); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("Do at epoch 3 after a mutation of epoch 4: %v", err)
	}
	bad := []Mutation{
		{Seq: 1, Kind: 0, DMap: "m", Key: "k"},
		{Seq: 1, Kind: 99, DMap: "m", Key: "k"},
		{Seq: 0, Kind: MutationDelete, DMap: "m", Key: "k"},
		{Seq: 1, Kind: MutationDelete, Key: "k"},
		{Seq: 1, Kind: MutationDelete, DMap: "m"},
		{Seq: 1, Kind: MutationDelete, DMap: "m", Key: strings.Repeat("k", MaxKeyLen+1)},
		{Seq: 1, Kind: MutationSet, DMap: "m", Key: "k"}, // no version
		{Seq: 1, Kind: MutationSet, DMap: "m", Key: "k", Version: 1, ExpireAt: -1},
		{Seq: 1, Kind: MutationLockSet, DMap: "m", Key: "k", Version: 1}, // no lease
		{Seq: 1, Epoch: MaxEpoch, Kind: MutationDelete, DMap: "m", Key: "k"},
		{Seq: maxSeq + 1, Kind: MutationDelete, DMap: "m", Key: "k"},
	}
	for i, m := range bad {
		if err := e.ApplyMutation(1, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad mutation %d %+v: %v", i, m, err)
		}
	}
	if err := e.ApplyMutation(7, set(1, 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("partition out of range: %v", err)
	}
	if e.Holds(1) {
		t.Error("refused mutations changed partition 1")
	}
}

// TestApplyMutationMakesBackup: a partition fed by ApplyMutation is not
// expired by the background cycle (its primary does that) until a Do
// serves it.
func TestApplyMutationMakesBackup(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	exp := clk.Now().Add(time.Second).UnixNano()
	if err := e.ApplyMutation(0, Mutation{Seq: 1, Epoch: 1, Kind: MutationSet, DMap: "m", Key: "k", Version: MakeVersion(1, 1), ExpireAt: exp}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if n := e.expireCycle(time.Second); n != 0 {
		t.Fatalf("a backup expired %d keys", n)
	}
	if st := e.Stats(); st.Keys != 1 {
		t.Fatalf("keys %d", st.Keys)
	}
	etMust(t, e, &Request{Op: OpExists, DMap: "m", Key: "other"}) // now primary
	if n := e.expireCycle(time.Second); n != 1 {
		t.Fatalf("the primary expired %d keys, want 1", n)
	}
}

func TestMutationKindString(t *testing.T) {
	for k, want := range map[MutationKind]string{MutationSet: "set", MutationDelete: "delete", MutationExpire: "expire",
		MutationLockSet: "lockset", MutationLockDelete: "lockdel", MutationDestroy: "destroy", MutationRecord: "record",
		42: "MutationKind(42)"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}

// TestEngineConcurrentDo: many goroutines run random operations on a few
// partitions (run with -race); the engine's bookkeeping stays consistent,
// and the mutations it reported rebuild the same state on a replica.
func TestEngineConcurrentDo(t *testing.T) {
	clk := newETClock()
	e, err := NewEngine(etDriverConfig(), 4, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var rec etRecorder
	e.OnMutation = rec.hook
	const workers, steps = 8, 2000
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			in := make([]byte, steps*8)
			for i := range in {
				in[i] = byte(r.Uint32())
			}
			drv := newETDriver(e, clk, in)
			for !drv.done() {
				drv.step(t)
			}
		}()
	}
	// Counters are exact under contention.
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				// Epoch 100: at or above any epoch the drivers reach.
				if _, err := e.Do(context.Background(), 3, 100, &Request{Op: OpIncr, DMap: "counters", Key: "n", Delta: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 2 * workers {
		<-done
	}
	etCheckInvariants(t, e)
	if r, err := e.Do(context.Background(), 3, 100, &Request{Op: OpGet, DMap: "counters", Key: "n"}); err != nil || string(r.Value) != "1600" {
		t.Fatalf("counter: %v %q, want 1600", err, r.Value)
	}
	b, _ := NewEngine(etDriverConfig(), 4, clk.Now)
	rec.replay(t, e, b)
}
