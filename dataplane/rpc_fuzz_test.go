package dataplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// FuzzServeRPC feeds arbitrary bodies to every cluster RPC a member serves
// to its peers (requests, replication batches with copies in chunks,
// transfers, releases), as the primary and as a backup of a partition:
// whatever a peer sends, the member answers or refuses, never panics, and
// keeps serving its own requests.
func FuzzServeRPC(f *testing.F) {
	methods := []string{MethodDo, MethodReplicate, MethodTransfer, MethodRelease, "dmap.unknown", MethodDoBatch}
	seed := func(method byte, v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(method, b)
	}
	seed(0, Request{Op: OpPut, DMap: "d", Key: "k", Value: []byte("v"), RoutingVersion: 1, LeaderEpoch: 1})
	seed(1, replicateRequest{From: "b", Version: 1, Items: []replItem{{P: 1, Epoch: 1, Chunk: 0, More: true,
		Snap: &PartitionSnapshot{Format: SnapshotFormat, Partition: 1, Seq: 3, Fence: 1, DMaps: []DMapSnapshot{{Name: "d", Entries: []EntrySnapshot{{Key: "k", Value: []byte("v"), Version: 1}}}}}}}})
	seed(1, replicateRequest{From: "b", Version: 1, Items: []replItem{{P: 1, Epoch: 1, Muts: []Mutation{{Seq: 4, Epoch: 1}}}}})
	seed(2, transferRequest{P: 0, Epoch: 1})
	seed(3, transferRequest{P: 0, Epoch: 1})
	f.Add(byte(4), []byte{0xc1})
	put, _ := msgpack.Marshal(Request{Op: OpPut, DMap: "d", Key: "k", Value: []byte("v"), RoutingVersion: 1, LeaderEpoch: 1})
	get, _ := msgpack.Marshal(Request{Op: OpGet, DMap: "d", Key: "x"})
	f.Add(byte(5), appendBatchRequest(nil, []*fwdCall{{body: put}, {body: get}}))
	f.Add(byte(5), appendBatchRequest(nil, []*fwdCall{{body: put}, {body: []byte{0xc1}}}))

	table := &metadata.RoutingTable{Version: 1, PartitionCount: 2, Replicas: 2,
		Members: []metadata.Member{
			{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
			{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
		},
		Partitions: []metadata.Partition{
			{ID: 0, Primary: "a", State: metadata.PartitionActive, LeaderEpoch: 1, Written: true},
			{ID: 1, Primary: "b", Backups: []metadata.NodeID{"a"}, Syncing: []metadata.NodeID{"a"}, State: metadata.PartitionActive, LeaderEpoch: 1, Written: true},
		},
	}
	e, err := NewEngine(DefaultConfig(), 2, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	r := &fixedRouting{self: "a"}
	r.t.Store(table)
	s, err := NewService(ServiceConfig{
		PartitionCount: 2, Engine: e, Routing: r, Caller: &loopbackCaller{},
		RouteTimeout:   50 * time.Millisecond,
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
		LeaseValid:     func() bool { return true },
	})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	s.OnRouting(table)
	own := "x" // a key of partition 0, led here
	for i := 0; metadata.PartitionOf("own", own, 2) != 0; i++ {
		own = fmt.Sprintf("x%d", i)
	}

	f.Fuzz(func(t *testing.T, method byte, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, _ = s.ServeRPC(ctx, methods[int(method)%len(methods)], body)
		cancel()
		// The member still serves its own partition.
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := s.Do(ctx, &Request{Op: OpPut, DMap: "own", Key: own, Value: []byte("y")}); err != nil {
			t.Fatalf("put after a peer's message: %v", err)
		}
	})
}
