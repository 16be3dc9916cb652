package fsm_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

func TestWaitAppliedAlreadyThere(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // even a finished context gets an answer that is already there
	for _, idx := range []uint64{0, 1} {
		tbl, err := f.WaitApplied(ctx, idx)
		if err != nil || tbl.Version != 1 {
			t.Fatalf("WaitApplied(%d) = %v, %v", idx, tbl, err)
		}
	}
}

func TestWaitAppliedDeadline(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	tbl, err := f.WaitApplied(ctx, 2)
	if !errors.Is(err, context.DeadlineExceeded) || tbl != nil {
		t.Fatalf("got %v, %v; want DeadlineExceeded", tbl, err)
	}
}

func TestWaitAppliedCancel(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.WaitApplied(ctx, 100)
		errc <- err
	}()
	// Advancing below the target must not release the waiter.
	f.Apply(&raft.Log{Index: 2, Type: raft.LogNoop})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want Canceled", err)
	}
}

// TestWaitAppliedWakes starts waiters for many indexes, then applies logs
// one by one: each waiter returns once its index is applied, with a table
// that includes it.
func TestWaitAppliedWakes(t *testing.T) {
	f := newInitialized(t, 8, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const last = 40
	type got struct {
		want uint64
		tbl  *metadata.RoutingTable
		err  error
	}
	results := make(chan got, 3*last)
	var wg sync.WaitGroup
	for idx := uint64(2); idx <= last; idx++ {
		for range 3 {
			wg.Go(func() {
				tbl, err := f.WaitApplied(ctx, idx)
				if err == nil && f.AppliedIndex() < idx {
					err = errors.New("returned before the index was applied")
				}
				results <- got{idx, tbl, err}
			})
		}
	}
	for idx := uint64(2); idx <= last; idx++ {
		if idx%3 == 0 { // rejected and non-command logs wake waiters too
			f.Apply(&raft.Log{Index: idx, Type: raft.LogNoop})
			continue
		}
		cur := f.Routing()
		pid := uint32(idx % 8)
		mustApplyQuiet(t, f, idx, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version,
			Partitions: []metadata.Partition{moveChange(cur, pid, cur.Partitions[pid].Backups[0])}})
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Fatalf("WaitApplied(%d): %v", r.want, r.err)
		}
		if r.want%3 != 0 && r.tbl.Version < r.want {
			t.Fatalf("WaitApplied(%d) returned version %d", r.want, r.tbl.Version)
		}
	}
}

func TestSubscribeNewestWins(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	updates, cancel := f.Subscribe()
	defer cancel()
	select {
	case tbl := <-updates:
		t.Fatalf("offered version %d before any new table", tbl.Version)
	default:
	}
	// Nobody reads: Apply must not block, and only the newest stays.
	for idx := uint64(2); idx <= 6; idx++ {
		cur := f.Routing()
		m, _ := cur.Member("n1")
		m.Voter = !m.Voter
		mustApplyQuiet(t, f, idx, fsm.CommandSetVoter, fsm.Change{ExpectVersion: cur.Version, Upsert: []metadata.Member{m}})
	}
	f.Apply(&raft.Log{Index: 7, Type: raft.LogNoop}) // publishes nothing
	if got := <-updates; got.Version != 6 || got != f.Routing() {
		t.Fatalf("got version %d, want the newest (6)", got.Version)
	}
	select {
	case tbl := <-updates:
		t.Fatalf("second table (version %d) queued", tbl.Version)
	default:
	}
	if d := f.DroppedUpdates(); d != 4 {
		t.Fatalf("dropped %d, want 4", d)
	}
	cancel()
	cancel() // idempotent
	if _, open := <-updates; open {
		t.Fatalf("channel open after cancel")
	}
	// Publishing after cancel is fine.
	cur := f.Routing()
	mustApplyQuiet(t, f, 8, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version})
}

// TestSubscribeConcurrent reads updates while tables are published: the
// versions seen only go up, and the last one seen is the last published.
func TestSubscribeConcurrent(t *testing.T) {
	f := newInitialized(t, 8, 3, 2)
	const last = 300
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		ch, cancel := f.Subscribe()
		defer cancel()
		wg.Go(func() {
			var seen uint64
			for tbl := range ch {
				if tbl.Version <= seen {
					errs <- errors.New("version went back")
					return
				}
				seen = tbl.Version
				if seen == last {
					return
				}
			}
		})
	}
	// A subscriber that comes and goes while tables are published.
	wg.Go(func() {
		for range 100 {
			_, cancel := f.Subscribe()
			cancel()
		}
	})
	for idx := uint64(2); idx <= last; idx++ {
		cur := f.Routing()
		pid := uint32(idx % 8)
		mustApplyQuiet(t, f, idx, fsm.CommandRebalance, fsm.Change{ExpectVersion: cur.Version,
			Partitions: []metadata.Partition{moveChange(cur, pid, cur.Partitions[pid].Backups[0])}})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
