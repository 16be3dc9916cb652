package dataplane

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// replicateGate holds the first len(release) replicate calls to backup
// addr until the test closes their release channel; each call's number
// is sent on arrived when it reaches the gate.
type replicateGate struct {
	inner   *loopbackCaller
	addr    string
	arrived chan int
	release []chan struct{}
	mu      sync.Mutex
	n       int
}

func (c *replicateGate) Call(ctx context.Context, addr, method string, req, resp any) error {
	if method == MethodReplicate && addr == c.addr {
		c.mu.Lock()
		i := c.n
		c.n++
		c.mu.Unlock()
		c.arrived <- i
		if i < len(c.release) {
			select {
			case <-c.release[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return c.inner.Call(ctx, addr, method, req, resp)
}

// TestSyncingBackupReportedInSyncOnlyWithAckedWrites: a write the
// primary acknowledged while a new backup was still taking its copy (so
// it did not wait for it) is queued behind that copy. The backup must not
// be reported in sync when its copy is applied, only once it holds that
// write too: the leader may promote an in-sync backup at once (a planned
// move or a failover), and the write would be lost. And once it holds its
// copy and what was queued behind it, a new write waits for it (before the
// leader has committed it in sync). Found by the Jepsen harness
// (kill-leader): a restarted member that took long to answer its copy was
// reported in sync and made primary of a partition whose last write was
// still queued for it; the write was gone.
func TestSyncingBackupReportedInSyncOnlyWithAckedWrites(t *testing.T) {
	table := func(version uint64, backups ...metadata.NodeID) *metadata.RoutingTable {
		return &metadata.RoutingTable{Version: version, PartitionCount: 1, Replicas: 2,
			Members: []metadata.Member{
				{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
				{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
			},
			Partitions: []metadata.Partition{{ID: 0, Primary: "a", Backups: backups, Syncing: backups,
				State: metadata.PartitionActive, LeaderEpoch: 1, Written: true}},
		}
	}
	loop := &loopbackCaller{services: map[string]*Service{}}
	gate := &replicateGate{inner: loop, addr: "b:1", arrived: make(chan int, 64),
		release: []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}}
	t.Cleanup(func() {
		for _, ch := range gate.release {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
	type inSyncReport struct {
		rep       ReplicaReport
		backupSeq uint64
	}
	reports := make(chan inSyncReport, 8)
	var eb *Engine
	start := func(id metadata.NodeID, r *fixedRouting) (*Service, *Engine) {
		e, err := NewEngine(DefaultConfig(), 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		s, err := NewService(ServiceConfig{
			PartitionCount: 1, Engine: e, Routing: r, Caller: gate, BackfillRate: -1,
			MarkWritten: func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
			ReportReplicas: func(_ context.Context, reps []ReplicaReport) (uint64, error) {
				for _, rep := range reps {
					// What the backup holds at the moment it is reported.
					reports <- inSyncReport{rep: rep, backupSeq: eb.Seq(0)}
				}
				return 0, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		loop.mu.Lock()
		loop.services[string(id)+":1"] = s
		loop.mu.Unlock()
		return s, e
	}
	ra, rb := &fixedRouting{self: "a"}, &fixedRouting{self: "b"}
	v1 := table(1)
	ra.t.Store(v1)
	rb.t.Store(v1)
	a, ea := start("a", ra)
	var b *Service
	b, eb = start("b", rb)
	a.OnRouting(v1)
	b.OnRouting(v1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	put := func(key string) uint64 {
		t.Helper()
		if _, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: key, Value: []byte(key)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return ea.Seq(0)
	}
	arrive := func(want int) {
		t.Helper()
		select {
		case got := <-gate.arrived:
			if got != want {
				t.Fatalf("replicate call %d reached the gate, want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("replicate call %d never came", want)
		}
	}
	put("k0")

	// b becomes a syncing backup: its copy is call 0, held at the gate.
	v2 := table(2, "b")
	rb.t.Store(v2)
	b.OnRouting(v2)
	ra.t.Store(v2)
	a.OnRouting(v2)
	arrive(0)
	// Acknowledged without b: it is syncing and has no copy yet.
	k1 := put("k1")
	close(gate.release[0])
	// Call 1 carries k1; it is sent once call 0 (the copy) is answered
	// and handled.
	arrive(1)
	a.rep.mu.Lock()
	peer := a.rep.parts[0].peers["b"]
	reported := peer != nil && peer.reported
	a.rep.mu.Unlock()
	if reported {
		t.Fatalf("b reported in sync with its copy applied but k1 (sequence %d) still queued for it", k1)
	}
	a.rep.mu.Lock()
	joined, target := peer != nil && peer.joined, uint64(0)
	if peer != nil {
		target = peer.syncTarget
	}
	a.rep.mu.Unlock()
	if !joined || target != k1 {
		// With its copy applied it joins at once (k1 moved to the fast
		// lane), with k1 as its target.
		t.Fatalf("b after its copy: joined %v with target %d, want joined with target %d", joined, target, k1)
	}
	select {
	case r := <-reports:
		t.Fatalf("report %+v while k1 is still queued for b", r.rep)
	default:
	}
	close(gate.release[1])
	select {
	case got := <-reports:
		if !got.rep.InSync || got.rep.Member != "b" {
			t.Fatalf("report %+v, want b in sync", got.rep)
		}
		if got.backupSeq < k1 {
			t.Fatalf("b reported in sync at sequence %d, before k1 (sequence %d) reached it", got.backupSeq, k1)
		}
	case <-ctx.Done():
		t.Fatal("b never reported in sync")
	}

	// b holds what it was sent: a new write waits for it (before the
	// leader commits it in sync, and the table still says syncing).
	type putResult struct {
		seq, backupSeq uint64
		err            error
	}
	done := make(chan putResult, 1)
	go func() {
		_, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: "k2", Value: []byte("k2")})
		done <- putResult{seq: ea.Seq(0), backupSeq: eb.Seq(0), err: err}
	}()
	arrive(2) // k2's mutation, held
	// Release it once k2 returned (it did not wait for b) or is waiting
	// for an acknowledgement (its partition's wait channel is made).
	var early *putResult
	for early == nil {
		a.rep.mu.Lock()
		waiting := a.rep.parts[0].changed != nil
		a.rep.mu.Unlock()
		if waiting {
			break
		}
		select {
		case r := <-done:
			early = &r
		case <-ctx.Done():
			t.Fatal("k2 neither returned nor waited")
		case <-time.After(time.Millisecond):
		}
	}
	close(gate.release[2])
	r := early
	if r == nil {
		select {
		case got := <-done:
			r = &got
		case <-ctx.Done():
			t.Fatal("k2 never acknowledged")
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.backupSeq < r.seq {
		t.Fatalf("k2 acknowledged with b at sequence %d, want %d: a backup holding its copy was not waited for", r.backupSeq, r.seq)
	}
}

// TestSyncingBackupJoinsUnderContinuousWrites: a new backup of a
// partition that takes writes all the time (100 of them queued behind its
// copy when the copy is delivered, and more coming from four writers) is
// still reported in sync: it joins with its copy applied, and its target
// is reached while the writes go on.
func TestSyncingBackupJoinsUnderContinuousWrites(t *testing.T) {
	table := func(version uint64, backups ...metadata.NodeID) *metadata.RoutingTable {
		return &metadata.RoutingTable{Version: version, PartitionCount: 1, Replicas: 2,
			Members: []metadata.Member{
				{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
				{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
			},
			Partitions: []metadata.Partition{{ID: 0, Primary: "a", Backups: backups, Syncing: backups,
				State: metadata.PartitionActive, LeaderEpoch: 1, Written: true}},
		}
	}
	loop := &loopbackCaller{services: map[string]*Service{}}
	// The copy (call 0) is held until writes are queued behind it.
	gate := &replicateGate{inner: loop, addr: "b:1", arrived: make(chan int, 1<<16), release: []chan struct{}{make(chan struct{})}}
	var released sync.Once
	release := func() { released.Do(func() { close(gate.release[0]) }) }
	t.Cleanup(release)
	reports := make(chan ReplicaReport, 8)
	start := func(id metadata.NodeID, r *fixedRouting) *Service {
		e, err := NewEngine(DefaultConfig(), 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		s, err := NewService(ServiceConfig{
			PartitionCount: 1, Engine: e, Routing: r, Caller: gate,
			MarkWritten: func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
			ReportReplicas: func(_ context.Context, reps []ReplicaReport) (uint64, error) {
				for _, rep := range reps {
					reports <- rep
				}
				return 0, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		loop.mu.Lock()
		loop.services[string(id)+":1"] = s
		loop.mu.Unlock()
		return s
	}
	ra, rb := &fixedRouting{self: "a"}, &fixedRouting{self: "b"}
	v1 := table(1)
	ra.t.Store(v1)
	rb.t.Store(v1)
	a, b := start("a", ra), start("b", rb)
	a.OnRouting(v1)
	b.OnRouting(v1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 1000 {
		if _, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("k%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("w%d-%d", w, i%100), Value: []byte("v")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	v2 := table(2, "b")
	rb.t.Store(v2)
	b.OnRouting(v2)
	ra.t.Store(v2)
	a.OnRouting(v2)
	select {
	case <-gate.arrived: // the copy
	case <-ctx.Done():
		t.Fatal("the copy was never sent")
	}
	for {
		a.rep.mu.Lock()
		queued := 0
		if peer := a.rep.parts[0].peers["b"]; peer != nil {
			queued = peer.bulkQueued
		}
		a.rep.mu.Unlock()
		if queued >= 100 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d writes queued behind the copy, want 100", queued)
		case <-time.After(time.Millisecond):
		}
	}
	release()
	select {
	case rep := <-reports:
		if !rep.InSync || rep.Member != "b" {
			t.Fatalf("report %+v, want b in sync", rep)
		}
	case <-ctx.Done():
		t.Fatal("b never reported in sync while writes went on")
	}
}
