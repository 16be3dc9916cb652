package dataplane

import (
	"context"
	"fmt"
	"testing"

	"github.com/olric-raft/olric-raft/metadata"
)

// BenchmarkServiceDoLocal: the request path of a member that leads every
// partition and has no backups (a single member): routing, lease, engine,
// the replication check. go test -run '^$' -bench ServiceDoLocal -benchmem ./dataplane
func BenchmarkServiceDoLocal(b *testing.B) {
	const parts = 271
	e, err := NewEngine(DefaultConfig(), parts, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	t := &metadata.RoutingTable{Version: 1, PartitionCount: parts, Replicas: 1,
		Members: []metadata.Member{{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive}}}
	for p := range uint32(parts) {
		t.Partitions = append(t.Partitions, metadata.Partition{ID: p, Primary: "a", State: metadata.PartitionActive, LeaderEpoch: 1, Written: true})
	}
	r := &fixedRouting{self: "a"}
	r.t.Store(t)
	s, err := NewService(ServiceConfig{
		PartitionCount: parts, Engine: e, Routing: r, Caller: &loopbackCaller{},
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
		LeaseValid:     func() bool { return true },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.OnRouting(t)
	ctx := context.Background()
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
	}
	value := make([]byte, 100)
	for _, k := range keys {
		if _, err := s.Do(ctx, &Request{Op: OpPut, DMap: "default", Key: k, Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	for _, op := range []Op{OpPut, OpGet} {
		b.Run(op.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := Request{Op: op, DMap: "default", Key: keys[i%len(keys)]}
				if op == OpPut {
					req.Value = value
				}
				if _, err := s.Do(ctx, &req); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
	}
}
