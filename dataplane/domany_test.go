package dataplane

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// manyCluster starts in-process services for ids, partitions spread over
// them round-robin (no backups), talking through a gatedCaller whose gate
// is closed (open it with releaseGate; the test's cleanup does).
func manyCluster(t *testing.T, parts uint32, ids ...metadata.NodeID) (map[metadata.NodeID]*Service, *gatedCaller, *metadata.RoutingTable) {
	t.Helper()
	table := &metadata.RoutingTable{Version: 1, PartitionCount: parts, Replicas: 1}
	for _, id := range ids {
		table.Members = append(table.Members, metadata.Member{ID: id, Incarnation: "1", ClusterAddr: string(id) + ":1", State: metadata.MemberAlive})
	}
	for p := range parts {
		table.Partitions = append(table.Partitions, metadata.Partition{ID: p, Primary: ids[int(p)%len(ids)],
			State: metadata.PartitionActive, LeaderEpoch: 1, Written: true})
	}
	loop := &loopbackCaller{services: map[string]*Service{}}
	caller := &gatedCaller{next: loop, gate: make(chan struct{}), calls: map[string]int{}}
	services := startServices(t, table, caller, loop, ids...)
	t.Cleanup(func() { releaseGate(caller) }) // before the services close
	return services, caller, table
}

// startServices starts an in-process service (and engine) for each of
// ids, serving table and calling through caller; loop delivers calls to
// them by cluster address ("<id>:1"). They close with t.
func startServices(t *testing.T, table *metadata.RoutingTable, caller Caller, loop *loopbackCaller, ids ...metadata.NodeID) map[metadata.NodeID]*Service {
	t.Helper()
	services := map[metadata.NodeID]*Service{}
	for _, id := range ids {
		s, _ := startService(t, table, id, caller, nil)
		loop.mu.Lock()
		loop.services[string(id)+":1"] = s
		loop.mu.Unlock()
		services[id] = s
	}
	return services
}

// startService starts an in-process service (and engine) for member id,
// serving table and calling through caller, its configuration changed by
// tune if not nil (the engine is in the configuration). It closes with t.
func startService(t *testing.T, table *metadata.RoutingTable, id metadata.NodeID, caller Caller, tune func(*ServiceConfig)) (*Service, *Engine) {
	t.Helper()
	e, err := NewEngine(DefaultConfig(), table.PartitionCount, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	r := &fixedRouting{self: id}
	r.t.Store(table)
	cfg := ServiceConfig{
		PartitionCount: table.PartitionCount, Engine: e, Routing: r, Caller: caller,
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.OnRouting(table)
	return s, e
}

func releaseGate(c *gatedCaller) {
	select {
	case <-c.gate:
	default:
		close(c.gate)
	}
}

// TestDoManyRunsEachRequestAsDo: a batch through DoMany gives each
// request the result Do would — writes served here and by two other
// primaries, reads of them from another member, a missing key, an invalid
// request — and the forwarded ones travel to each primary in one batch
// call, not one call each.
func TestDoManyRunsEachRequestAsDo(t *testing.T) {
	const parts, n = 12, 48
	services, caller, _ := manyCluster(t, parts, "a", "b", "c")
	a, b := services["a"], services["b"]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !a.movedReady() || !b.movedReady() {
		select {
		case <-ctx.Done():
			t.Fatal("moved signals never set")
		case <-time.After(time.Millisecond):
		}
	}
	run := func(s *Service, reqs []*Request) ([]*Response, []error) {
		resps, errs := make([]*Response, len(reqs)), make([]error, len(reqs))
		s.DoMany(ctx, reqs, resps, errs)
		return resps, errs
	}

	// n writes through a, on every member's partitions, and one invalid
	// request in the middle.
	var reqs []*Request
	for i := range n {
		reqs = append(reqs, &Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	bad := len(reqs) / 2
	reqs = append(reqs[:bad], append([]*Request{{Op: OpPut, DMap: "", Key: "no-dmap", Value: []byte("x")}}, reqs[bad:]...)...)
	// Every forwarded write is in a call held at the gate (at most
	// maxForwardSenders per primary) or still queued when the gate opens:
	// the queued ones go together.
	forwarded := 0
	for _, r := range reqs {
		if r.DMap != "" && metadata.PartitionOf("d", r.Key, parts)%3 != 0 {
			forwarded++
		}
	}
	var resps []*Response
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		resps, errs = run(a, reqs)
	}()
	for {
		queued := 0
		for _, addr := range []string{"b:1", "c:1"} {
			q := a.forwardQueue(addr)
			q.mu.Lock()
			queued += len(q.pending)
			q.mu.Unlock()
		}
		caller.mu.Lock()
		sent := caller.reqs
		caller.mu.Unlock()
		if queued+sent == forwarded {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d forwarded writes queued and %d sent, want %d in all", queued, sent, forwarded)
		case <-time.After(time.Millisecond):
		}
	}
	releaseGate(caller)
	<-done
	owners := map[metadata.NodeID]int{}
	for i, req := range reqs {
		if i == bad {
			if !errors.Is(errs[i], ErrInvalid) || resps[i] != nil {
				t.Fatalf("invalid request: %+v, %v; want ErrInvalid", resps[i], errs[i])
			}
			continue
		}
		if errs[i] != nil || resps[i] == nil || resps[i].Version == 0 {
			t.Fatalf("put %s: %+v, %v", req.Key, resps[i], errs[i])
		}
		owners[[]metadata.NodeID{"a", "b", "c"}[metadata.PartitionOf("d", req.Key, parts)%3]]++
	}
	if owners["a"] == 0 || owners["b"] == 0 || owners["c"] == 0 {
		t.Fatalf("keys per primary %v: want every member's partitions in the batch", owners)
	}
	caller.mu.Lock()
	batches, singles := caller.calls[MethodDoBatch], caller.calls[MethodDo]
	caller.mu.Unlock()
	if batches == 0 || batches+singles >= forwarded {
		t.Fatalf("%d batch calls and %d single calls for %d forwarded writes: want them batched per primary", batches, singles, owners["b"]+owners["c"])
	}

	// Read them back through b, with a missing key: the values written,
	// the versions the puts answered.
	var gets []*Request
	for i := range n {
		gets = append(gets, &Request{Op: OpGet, DMap: "d", Key: fmt.Sprintf("k%d", i)})
	}
	gets = append(gets, &Request{Op: OpGet, DMap: "d", Key: "missing"})
	got, gerrs := run(b, gets)
	for i := range n {
		want := resps[i]
		if i >= bad {
			want = resps[i+1]
		}
		if gerrs[i] != nil || !got[i].Found || string(got[i].Value) != fmt.Sprintf("v%d", i) || got[i].Version != want.Version {
			t.Fatalf("get k%d = %+v, %v; want v%d at version %d", i, got[i], gerrs[i], i, want.Version)
		}
	}
	if last := len(gets) - 1; !errors.Is(gerrs[last], ErrNotFound) {
		t.Fatalf("get missing: %+v, %v; want ErrNotFound", got[last], gerrs[last])
	}
}

// TestDoManyRetriesThroughDo: a request whose first attempt meets a
// partition not ready yet (being handed over) is run again by Do and
// succeeds once it is; the others of the batch are answered as usual.
func TestDoManyRetriesThroughDo(t *testing.T) {
	const parts = 4
	services, caller, table := manyCluster(t, parts, "a", "b")
	releaseGate(caller)
	a := services["a"]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Partition 0 is a's; mark it not ready, as during a handover.
	a.mu.Lock()
	a.mu.ready.set(0, 0)
	a.mu.Unlock()
	var stuck, other string
	for i := 0; stuck == "" || other == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		switch p := metadata.PartitionOf("d", k, parts); {
		case p == 0 && stuck == "":
			stuck = k
		case p == 2 && other == "":
			other = k // a's too, ready
		}
	}
	reqs := []*Request{
		{Op: OpPut, DMap: "d", Key: stuck, Value: []byte("s")},
		{Op: OpPut, DMap: "d", Key: other, Value: []byte("o")},
	}
	resps, errs := make([]*Response, 2), make([]error, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.DoMany(ctx, reqs, resps, errs)
	}()
	// The stuck write retries (stats) until the partition is ready.
	for a.Stats().Retries[RetryNotReady] == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the write to the partition not ready was never retried")
		case <-time.After(time.Millisecond):
		}
	}
	a.mu.Lock()
	a.mu.ready.set(0, table.Partitions[0].LeaderEpoch)
	a.mu.Unlock()
	<-done
	for i, r := range reqs {
		if errs[i] != nil || resps[i] == nil || resps[i].Version == 0 {
			t.Fatalf("put %s: %+v, %v", r.Key, resps[i], errs[i])
		}
	}
	got, err := a.Do(ctx, &Request{Op: OpGet, DMap: "d", Key: stuck})
	if err != nil || string(got.Value) != "s" {
		t.Fatalf("get %s = %+v, %v; want s", stuck, got, err)
	}
}
