package dataplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// TestHandoffPauseRecordedPerTakeover: a member that becomes the primary of
// written partitions led by another member records one handoff pause per
// partition, once it serves it — pulled (p0) or promoted from its in-sync
// copy (p1) — and none for fresh partitions: one it led from the start
// (p2), one never written (p3).
func TestHandoffPauseRecordedPerTakeover(t *testing.T) {
	members := []metadata.Member{
		{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
		{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
	}
	table := func(version uint64, parts ...metadata.Partition) *metadata.RoutingTable {
		for i := range parts {
			parts[i].ID = uint32(i)
			parts[i].State = metadata.PartitionActive
		}
		return &metadata.RoutingTable{Version: version, PartitionCount: 4, Replicas: 2, Members: members, Partitions: parts}
	}
	caller := &loopbackCaller{services: map[string]*Service{}}
	inSync := make(chan ReplicaReport, 8)
	start := func(id metadata.NodeID, r *fixedRouting) (*Service, *Engine) {
		e, err := NewEngine(DefaultConfig(), 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		s, err := NewService(ServiceConfig{
			PartitionCount: 4, Engine: e, Routing: r, Caller: caller, BackfillRate: -1,
			MarkWritten: func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
			ReportReplicas: func(_ context.Context, reps []ReplicaReport) (uint64, error) {
				for _, rep := range reps {
					inSync <- rep
				}
				return 0, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		caller.mu.Lock()
		caller.services[string(id)+":1"] = s
		caller.mu.Unlock()
		return s, e
	}
	ra, rb := &fixedRouting{self: "a"}, &fixedRouting{self: "b"}
	ra.t.Store(&metadata.RoutingTable{}) // (not initialized yet)
	rb.t.Store(&metadata.RoutingTable{})
	apply := func(tbl *metadata.RoutingTable, ss ...*Service) {
		ra.t.Store(tbl)
		rb.t.Store(tbl)
		for _, s := range ss {
			s.OnRouting(tbl)
		}
	}
	a, _ := start("a", ra)
	b, eb := start("b", rb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// a leads p0, p1 (written; b syncing backup of p1) and p3 (never
	// written); b leads p2 from the start.
	v1 := func(version uint64, syncing ...metadata.NodeID) *metadata.RoutingTable {
		return table(version,
			metadata.Partition{Primary: "a", LeaderEpoch: 1, Written: true},
			metadata.Partition{Primary: "a", Backups: []metadata.NodeID{"b"}, Syncing: syncing, LeaderEpoch: 1, Written: true},
			metadata.Partition{Primary: "b", LeaderEpoch: 1},
			metadata.Partition{Primary: "a", LeaderEpoch: 1},
		)
	}
	apply(v1(1, "b"), a, b)
	// A key of each written partition, written through the service (so
	// the write counts as acknowledged: b is reported in sync only once
	// it holds it).
	keyOf := map[uint32]string{}
	for i := 0; len(keyOf) < 4; i++ {
		k := fmt.Sprintf("k%d", i)
		if p := metadata.PartitionOf("d", k, 4); keyOf[p] == "" {
			keyOf[p] = k
		}
	}
	for _, pid := range []uint32{0, 1} {
		if _, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: keyOf[pid], Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case rep := <-inSync:
		if !rep.InSync || rep.Member != "b" || rep.Partition != 1 {
			t.Fatalf("report %+v, want b in sync for partition 1", rep)
		}
	case <-ctx.Done():
		t.Fatal("b never reported in sync")
	}
	apply(v1(2), a, b)
	if st := b.Stats(); st.HandoffPause.Count != 0 || len(st.Handoffs) != 0 {
		t.Fatalf("before any move: %d handoffs recorded (%+v), want none", st.HandoffPause.Count, st.Handoffs)
	}

	// Everything moves to b: p0 is pulled, p1 promoted, p3 starts fresh.
	v3 := table(3,
		metadata.Partition{Primary: "b", Backups: []metadata.NodeID{"a"}, Syncing: []metadata.NodeID{"a"}, LeaderEpoch: 2, PrevPrimary: "a", PrevEpoch: 1, Written: true},
		metadata.Partition{Primary: "b", Backups: []metadata.NodeID{"a"}, Syncing: []metadata.NodeID{"a"}, LeaderEpoch: 2, PrevPrimary: "a", PrevEpoch: 1, Written: true, Promoted: true},
		metadata.Partition{Primary: "b", LeaderEpoch: 1},
		metadata.Partition{Primary: "b", LeaderEpoch: 2, PrevPrimary: "a", PrevEpoch: 1},
	)
	applied := time.Now()
	apply(v3, a, b)
	for {
		b.mu.Lock()
		ready := b.mu.ready.get(0) == 2 && b.mu.ready.get(1) == 2
		b.mu.Unlock()
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("b never served the partitions it took over")
		case <-time.After(time.Millisecond):
		}
	}
	elapsed := time.Since(applied)
	for _, pid := range []uint32{0, 1} {
		resp, err := eb.Do(ctx, pid, 2, &Request{Op: OpGet, DMap: "d", Key: keyOf[pid]})
		if err != nil || !resp.Found || string(resp.Value) != "v" {
			t.Fatalf("partition %d on its new primary: %+v, %v; want the value written before the move", pid, resp, err)
		}
	}
	apply(v3, b) // an unchanged table records nothing more
	time.Sleep(20 * time.Millisecond)

	st := b.Stats()
	if st.HandoffPause.Count != 2 || len(st.Handoffs) != 2 {
		t.Fatalf("%d handoff pauses recorded (%+v), want 2 (partitions 0 and 1)", st.HandoffPause.Count, st.Handoffs)
	}
	promoted := map[uint32]bool{}
	for _, h := range st.Handoffs {
		if h.Epoch != 2 || h.Pause < 0 || h.Pause > elapsed || h.At.Before(applied) {
			t.Errorf("handoff %+v: want epoch 2, a pause within the %s it took, from after %s", h, elapsed, applied)
		}
		if _, dup := promoted[h.Partition]; dup {
			t.Errorf("partition %d recorded twice", h.Partition)
		}
		promoted[h.Partition] = h.Promoted
	}
	if p0, ok := promoted[0]; !ok || p0 {
		t.Errorf("partition 0: recorded %v, promoted %v; want recorded, pulled", ok, p0)
	}
	if p1, ok := promoted[1]; !ok || !p1 {
		t.Errorf("partition 1: recorded %v, promoted %v; want recorded, promoted", ok, p1)
	}
	if sum := st.HandoffPause.Sum; sum != st.Handoffs[0].Pause+st.Handoffs[1].Pause {
		t.Errorf("histogram sum %s, want the two pauses' %s", sum, st.Handoffs[0].Pause+st.Handoffs[1].Pause)
	}
	if st := a.Stats(); st.HandoffPause.Count != 0 {
		t.Errorf("the previous primary recorded %d handoffs, want none", st.HandoffPause.Count)
	}
}
