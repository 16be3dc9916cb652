package dataplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
)

func TestSnapshotInstallRoundTrip(t *testing.T) {
	a, clk := etEngine(t, Config{}, 2)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		etPut(t, a, "m", k, "value-"+k)
	}
	etMust(t, a, &Request{Op: OpPut, DMap: "m", Key: "ttl", Value: []byte("x"), TTL: time.Minute})
	etMust(t, a, &Request{Op: OpPut, DMap: "m", Key: "empty"})
	etPut(t, a, "other", "a", "1")
	lk := etMust(t, a, &Request{Op: OpLock, DMap: "m", Key: "a", TTL: time.Minute})
	etMust(t, a, &Request{Op: OpLock, DMap: "locksonly", Key: "z"})

	snap, err := a.Snapshot(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Fence != 4 || snap.Seq != 8 || len(snap.DMaps) != 3 {
		t.Fatalf("snapshot header: fence %d seq %d dmaps %d", snap.Fence, snap.Seq, len(snap.DMaps))
	}
	// Snapshot fenced the partition at 4.
	if _, err := a.Do(ctx, 0, 1, &Request{Op: OpPut, DMap: "m", Key: "late"}); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("write after snapshot at an older epoch: %v", err)
	}
	// Over the wire (the service decodes with strictmsgpack).
	wire, err := msgpack.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var decoded PartitionSnapshot
	if err := strictmsgpack.Unmarshal(wire, &decoded); err != nil {
		t.Fatal(err)
	}
	b, _ := etEngine(t, Config{}, 2)
	etPut(t, b, "stale", "x", "old data, replaced by Install")
	if err := b.Install(0, &decoded); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Snapshot(0, 0)
	if diff := etDiffSnapshots(snap, got); diff != "" {
		t.Fatalf("installed state differs: %s", diff)
	}
	etCheckInvariants(t, b)
	// The new primary serves it at the new epoch: values, TTLs, locks and
	// the sequence carry over.
	r, err := b.Do(ctx, 0, 4, &Request{Op: OpGet, DMap: "m", Key: "ttl"})
	if err != nil || string(r.Value) != "x" || r.TTL != time.Minute {
		t.Fatalf("get ttl key: %+v %v", r, err)
	}
	if _, err := b.Do(ctx, 0, 4, &Request{Op: OpLock, DMap: "m", Key: "a"}); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock not carried over: %v", err)
	}
	if _, err := b.Do(ctx, 0, 4, &Request{Op: OpUnlock, DMap: "m", Key: "a", Token: lk.Token}); err != nil {
		t.Fatalf("the holder's token is still valid: %v", err)
	}
	w, _ := b.Do(ctx, 0, 4, &Request{Op: OpPut, DMap: "m", Key: "new"})
	if w.Version != MakeVersion(4, snap.Seq+2) {
		t.Fatalf("first write after install: version %d, want %d", w.Version, MakeVersion(4, snap.Seq+2))
	}
	if _, err := b.Do(ctx, 0, 3, &Request{Op: OpGet, DMap: "m", Key: "a"}); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("install kept the snapshot's fence: %v", err)
	}
	// Expiry continues by the clock after the move.
	clk.Advance(time.Minute)
	if got := etGet(t, a, "m", "ttl"); got != "<missing>" {
		t.Fatal("ttl key did not expire on a")
	}
	_ = clk
}

func TestSnapshotEmptyAndDrop(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	if e.Holds(1) {
		t.Fatal("holds a fresh partition")
	}
	s, err := e.Snapshot(1, 0)
	if err != nil || s.Seq != 0 || len(s.DMaps) != 0 {
		t.Fatalf("empty snapshot %+v %v", s, err)
	}
	if _, err := e.Snapshot(2, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snapshot out of range: %v", err)
	}
	if _, err := e.Do(context.Background(), 1, 1, &Request{Op: OpPut, DMap: "m", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if !e.Holds(1) || e.Holds(0) {
		t.Fatal("holds")
	}
	e.Drop(1)
	if e.Holds(1) {
		t.Fatal("holds after Drop")
	}
	if st := e.Stats(); st.Keys != 0 || st.Partitions != 0 {
		t.Fatalf("stats after drop %+v", st)
	}
	// An empty snapshot installs as nothing held.
	if err := e.Install(1, s); err != nil || e.Holds(1) {
		t.Fatalf("install empty: %v holds %v", err, e.Holds(1))
	}
}

func TestInstallValidation(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	good := func() *PartitionSnapshot {
		return &PartitionSnapshot{Format: SnapshotFormat, Partition: 1, Seq: 10, Fence: 2, DMaps: []DMapSnapshot{{
			Name:    "m",
			Entries: []EntrySnapshot{{Key: "k", Value: []byte("v"), Version: MakeVersion(2, 5)}},
			Locks:   []LockSnapshot{{Key: "k", Token: MakeVersion(1, 3), ExpireAt: 1}},
		}}}
	}
	if err := e.Install(1, good()); err != nil {
		t.Fatalf("good snapshot: %v", err)
	}
	tests := []struct {
		name string
		mut  func(s *PartitionSnapshot)
	}{
		{"format", func(s *PartitionSnapshot) { s.Format = 2 }},
		{"partition", func(s *PartitionSnapshot) { s.Partition = 0 }},
		{"seq", func(s *PartitionSnapshot) { s.Seq = maxSeq + 1 }},
		{"fence", func(s *PartitionSnapshot) { s.Fence = MaxEpoch }},
		{"empty dmap name", func(s *PartitionSnapshot) { s.DMaps[0].Name = "" }},
		{"long dmap name", func(s *PartitionSnapshot) { s.DMaps[0].Name = strings.Repeat("n", MaxDMapNameLen+1) }},
		{"duplicate dmap", func(s *PartitionSnapshot) { s.DMaps = append(s.DMaps, s.DMaps[0]) }},
		{"empty key", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].Key = "" }},
		{"long key", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].Key = strings.Repeat("k", MaxKeyLen+1) }},
		{"duplicate key", func(s *PartitionSnapshot) {
			s.DMaps[0].Entries = append(s.DMaps[0].Entries, s.DMaps[0].Entries[0])
		}},
		{"version zero", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].Version = 0 }},
		{"version beyond seq", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].Version = MakeVersion(2, 11) }},
		{"version beyond fence", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].Version = MakeVersion(3, 1) }},
		{"negative expiry", func(s *PartitionSnapshot) { s.DMaps[0].Entries[0].ExpireAt = -1 }},
		{"lock without lease", func(s *PartitionSnapshot) { s.DMaps[0].Locks[0].ExpireAt = 0 }},
		{"lock token beyond seq", func(s *PartitionSnapshot) { s.DMaps[0].Locks[0].Token = MakeVersion(1, 99) }},
		{"duplicate lock", func(s *PartitionSnapshot) { s.DMaps[0].Locks = append(s.DMaps[0].Locks, s.DMaps[0].Locks[0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mut(s)
			before, _ := e.Snapshot(1, 0)
			if err := e.Install(1, s); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			after, _ := e.Snapshot(1, 0)
			if diff := etDiffSnapshots(before, after); diff != "" {
				t.Fatalf("a refused snapshot changed the partition: %s", diff)
			}
		})
	}
	if err := e.Install(1, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil snapshot: %v", err)
	}
	if err := e.Install(5, good()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("partition out of range: %v", err)
	}
}

// TestInstallWakesLockWaiters: a waiter for a lock on a partition that is
// replaced re-checks against the new state.
func TestInstallWakesLockWaiters(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "k", TTL: time.Hour})
	done := make(chan error)
	go func() {
		_, err := etDo(e, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: time.Hour})
		done <- err
	}()
	etWaitForWaiter(t, e, 0, "m", "k")
	if err := e.Install(0, &PartitionSnapshot{Format: SnapshotFormat, Seq: 100, Fence: 1}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter after install of a partition without the lock: %v", err)
	}
}

// FuzzSnapshotInstall: any bytes decoded as a snapshot either install
// cleanly (and read back the same) or are refused; never a panic.
func FuzzSnapshotInstall(f *testing.F) {
	e0, _ := etEngine(f, Config{}, 1)
	etPut(f, e0, "m", "k", "v")
	etMust(f, e0, &Request{Op: OpPut, DMap: "m", Key: "t", TTL: time.Second})
	etMust(f, e0, &Request{Op: OpLock, DMap: "m", Key: "l"})
	s, _ := e0.Snapshot(0, 1)
	seed, _ := msgpack.Marshal(s)
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s PartitionSnapshot
		if err := strictmsgpack.Unmarshal(b, &s); err != nil {
			return
		}
		e, _ := etEngine(t, Config{}, 1)
		if err := e.Install(0, &s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal without ErrInvalid: %v", err)
			}
			return
		}
		etCheckInvariants(t, e)
		got, _ := e.Snapshot(0, 0)
		if got.Seq != s.Seq || got.Fence != s.Fence {
			t.Fatalf("seq/fence %d/%d, want %d/%d", got.Seq, got.Fence, s.Seq, s.Fence)
		}
		// Reads and writes work on whatever was installed.
		_, _ = e.Do(context.Background(), 0, s.Fence, &Request{Op: OpScan, DMap: "m"})
		_, _ = e.Do(context.Background(), 0, s.Fence, &Request{Op: OpPut, DMap: "m", Key: "k"})
	})
}
