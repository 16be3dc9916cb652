package dataplane

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// leaseService starts one in-process service leading every partition of
// a parts-partition table, whose lease is what lease reports (given the
// service's engine).
func leaseService(t *testing.T, parts uint32, lease func(e *Engine) bool) (*Service, *Engine) {
	t.Helper()
	table := &metadata.RoutingTable{Version: 1, PartitionCount: parts, Replicas: 1,
		Members: []metadata.Member{{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive}}}
	for p := range parts {
		table.Partitions = append(table.Partitions, metadata.Partition{ID: p, Primary: "a",
			State: metadata.PartitionActive, LeaderEpoch: 1, Written: true})
	}
	s, e := startService(t, table, "a", &loopbackCaller{services: map[string]*Service{}}, func(cfg *ServiceConfig) {
		e := cfg.Engine
		cfg.RouteTimeout = 200 * time.Millisecond
		cfg.LeaseValid = func() bool { return lease(e) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s.mu.ready.get(parts-1) != 1 {
		select {
		case <-ctx.Done():
			t.Fatal("partitions never ready")
		case <-time.After(time.Millisecond):
		}
	}
	return s, e
}

// TestDoManyChecksTheLeaseForTheWholeBatch: the requests of a DoMany
// batch share their lease checks, and sharing them refuses what checking
// each would. Without a lease no request of the batch is applied; a lease
// lost after the batch was applied fails its reads (their values may be
// stale by then) while its writes, applied under the lease, stand.
func TestDoManyChecksTheLeaseForTheWholeBatch(t *testing.T) {
	const parts = 8
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := func(p uint32, tag string) string { // a key of partition p
		for i := 0; ; i++ {
			if k := fmt.Sprintf("%s%d", tag, i); metadata.PartitionOf("d", k, parts) == p {
				return k
			}
		}
	}
	batch := func() []*Request {
		return []*Request{
			{Op: OpPut, DMap: "d", Key: key(0, "w"), Value: []byte("new")},
			{Op: OpGet, DMap: "d", Key: key(1, "r")},
			{Op: OpGet, DMap: "d", Key: key(2, "r")},
		}
	}
	run := func(s *Service, reqs []*Request) ([]*Response, []error) {
		resps, errs := make([]*Response, len(reqs)), make([]error, len(reqs))
		s.DoMany(ctx, reqs, resps, errs)
		return resps, errs
	}

	t.Run("no lease", func(t *testing.T) {
		s, e := leaseService(t, parts, func(*Engine) bool { return false })
		_, errs := run(s, batch())
		for i, err := range errs {
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("request %d: %v, want unavailable", i, err)
			}
		}
		if seq := e.Seq(0); seq != 0 {
			t.Fatalf("the write was applied without a lease (partition 0 at sequence %d)", seq)
		}
	})

	t.Run("lease lost after the batch applied", func(t *testing.T) {
		// The lease holds until partition 0 has its write: the check
		// before the batch passes, the one after it fails.
		s, e := leaseService(t, parts, func(e *Engine) bool { return e.Seq(0) == 0 })
		for _, p := range []uint32{1, 2} {
			if _, err := s.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: key(p, "r"), Value: []byte("old")}); err != nil {
				t.Fatal(err)
			}
		}
		resps, errs := run(s, batch())
		if errs[0] != nil || resps[0] == nil || resps[0].Version == 0 {
			t.Fatalf("write: %+v, %v; want it acknowledged", resps[0], errs[0])
		}
		for i := 1; i < 3; i++ {
			if !errors.Is(errs[i], ErrUnavailable) {
				t.Errorf("read %d: %+v, %v; want unavailable (the lease ran out after it read)", i, resps[i], errs[i])
			}
		}
		if e.Seq(0) != 1 {
			t.Fatalf("partition 0 at sequence %d, want 1", e.Seq(0))
		}
	})

	t.Run("lease held: responses into the caller's storage", func(t *testing.T) {
		s, _ := leaseService(t, parts, func(*Engine) bool { return true })
		for _, p := range []uint32{1, 2} {
			if _, err := s.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: key(p, "r"), Value: fmt.Appendf(nil, "v%d", p)}); err != nil {
				t.Fatal(err)
			}
		}
		reqs := batch()
		storage := make([]Response, len(reqs))
		resps, errs := make([]*Response, len(reqs)), make([]error, len(reqs))
		for i := range resps {
			storage[i] = Response{Found: true, Value: []byte("garbage"), TTL: time.Hour}
			resps[i] = &storage[i]
		}
		s.DoMany(ctx, reqs, resps, errs)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if resps[0].Found || resps[0].Value != nil || resps[0].Version == 0 {
			t.Errorf("write response %+v: want only a version (storage cleared)", resps[0])
		}
		for i, want := range []string{"", "v1", "v2"} {
			if i > 0 && (!resps[i].Found || string(resps[i].Value) != want || resps[i].TTL != 0) {
				t.Errorf("read %d: %+v, want %q without a TTL", i, resps[i], want)
			}
		}
	})
}
