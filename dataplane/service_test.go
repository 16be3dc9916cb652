package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// scriptedRouting returns tables in order: the first script entries once
// each, then the last one for ever.
type scriptedRouting struct {
	mu     sync.Mutex
	self   metadata.NodeID
	script []*metadata.RoutingTable
	calls  int
}

func (r *scriptedRouting) ID() metadata.NodeID { return r.self }

func (r *scriptedRouting) Routing() *metadata.RoutingTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.script[min(r.calls, len(r.script)-1)]
	r.calls++
	return t
}

func (r *scriptedRouting) WaitRouting(ctx context.Context, version uint64) (*metadata.RoutingTable, error) {
	t := r.Routing()
	if t.Version >= version {
		return t, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// answeringCaller answers every dmap.do with value.
type answeringCaller struct {
	value []byte
	calls int
}

func (c *answeringCaller) Call(_ context.Context, _, method string, _, resp any) error {
	if method != MethodDo {
		return errors.New("unexpected method " + method)
	}
	c.calls++
	b, _ := msgpack.Marshal(rpcReply{Resp: &Response{Found: true, Value: c.value}})
	return msgpack.Unmarshal(b, resp)
}

func oneOwnerTable(version uint64, primary metadata.NodeID, epoch uint64) *metadata.RoutingTable {
	t := &metadata.RoutingTable{Version: version, PartitionCount: 1, Replicas: 1,
		Members: []metadata.Member{
			{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
			{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
		},
		Partitions: []metadata.Partition{{ID: 0, Primary: primary, State: metadata.PartitionActive, LeaderEpoch: epoch, Written: true}},
	}
	return t
}

// TestServiceReadRechecksRoutingAfterLease: a read that started from a
// table in which this member leads the partition, and finds by the time it
// checks its lease (current) that the committed table moved the partition
// on, does not answer from its old copy: it retries on the new primary.
// (A member resuming from SIGSTOP renews its lease — which waits for the
// failover to be applied — while a request that loaded the old table waits
// for a CPU; found by the Jepsen harness.)
func TestServiceReadRechecksRoutingAfterLease(t *testing.T) {
	e, err := NewEngine(DefaultConfig(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	old := oneOwnerTable(10, "a", 1)
	moved := oneOwnerTable(20, "b", 2)
	routing := &scriptedRouting{self: "a", script: []*metadata.RoutingTable{old}}
	caller := &answeringCaller{value: []byte("new")}
	s, err := NewService(ServiceConfig{
		PartitionCount: 1, Engine: e, Routing: routing, Caller: caller,
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.OnRouting(old)
	if _, err := e.Do(context.Background(), 0, 1, &Request{Op: OpPut, DMap: "d", Key: "k", Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	// Do and local load the old table; every later look sees the move
	// (whose OnRouting, i.e. the fence, has not run yet).
	routing.mu.Lock()
	routing.calls = 0
	routing.script = []*metadata.RoutingTable{old, old, moved}
	routing.mu.Unlock()
	resp, err := s.Do(context.Background(), &Request{Op: OpGet, DMap: "d", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Value) != "new" || caller.calls != 1 {
		t.Fatalf("read = %q after %d forwards; want \"new\" from the new primary (the old copy is stale)", resp.Value, caller.calls)
	}
}

// TestIndeterminateWinsOverOtherCodes: a write whose outcome is unknown
// travels as indeterminate even when its error also wraps unavailable (a
// primary whose backups did not acknowledge in time), so no forwarder or
// client takes it for a definite failure.
func TestIndeterminateWinsOverOtherCodes(t *testing.T) {
	for _, other := range []error{ErrUnavailable, ErrStaleRouting, ErrFencedEpoch, ErrInvalid} {
		err := fmt.Errorf("%w: %w", ErrIndeterminate, fmt.Errorf("%w: backups did not acknowledge", other))
		if got := CodeOf(err); got != CodeIndeterminate {
			t.Errorf("CodeOf(indeterminate wrapping %v) = %q, want %q", other, got, CodeIndeterminate)
		}
	}
}
