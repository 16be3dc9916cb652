package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// fixedRouting serves one table, swapped by set.
type fixedRouting struct {
	self metadata.NodeID
	t    atomic.Pointer[metadata.RoutingTable]
}

func (r *fixedRouting) ID() metadata.NodeID             { return r.self }
func (r *fixedRouting) Routing() *metadata.RoutingTable { return r.t.Load() }
func (r *fixedRouting) WaitRouting(ctx context.Context, version uint64) (*metadata.RoutingTable, error) {
	for {
		if t := r.t.Load(); t.Version >= version {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// loopbackCaller delivers calls to in-process services by cluster address,
// through their ServeRPC, encoded as on the wire.
type loopbackCaller struct {
	mu       sync.Mutex
	services map[string]*Service
}

func (c *loopbackCaller) Call(ctx context.Context, addr, method string, req, resp any) error {
	c.mu.Lock()
	s := c.services[addr]
	c.mu.Unlock()
	if s == nil {
		return fmt.Errorf("no member at %s", addr)
	}
	body, ok := req.(msgpack.RawMessage)
	if !ok {
		var err error
		if body, err = msgpack.Marshal(req); err != nil {
			return err
		}
	}
	out, err := s.ServeRPC(ctx, method, body)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(out, resp)
}

// TestBackfillCopyTravelsInChunks: a new backup of a partition much larger
// than one chunk receives its copy in many replicate calls, installs it
// whole after the last one, and is then reported in sync holding every
// key (a copy in one call would exceed the transport's frame limit for a
// large partition).
func TestBackfillCopyTravelsInChunks(t *testing.T) {
	const keys, valueLen, chunk = 200, 500, 8 << 10
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
	caller := &loopbackCaller{services: map[string]*Service{}}
	inSync := make(chan ReplicaReport, 4)
	start := func(id metadata.NodeID, r *fixedRouting) (*Service, *Engine) {
		e, err := NewEngine(DefaultConfig(), 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		s, err := NewService(ServiceConfig{
			PartitionCount: 1, Engine: e, Routing: r, Caller: caller, BackfillChunkBytes: chunk, BackfillRate: -1,
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
	v1 := table(1)
	ra.t.Store(v1)
	rb.t.Store(v1)
	a, _ := start("a", ra)
	b, eb := start("b", rb)
	a.OnRouting(v1)
	b.OnRouting(v1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	value := make([]byte, valueLen)
	for i := range keys {
		if _, err := a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("k%03d", i), Value: value}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}

	// b becomes a syncing backup: its copy goes out in chunks.
	v2 := table(2, "b")
	rb.t.Store(v2)
	b.OnRouting(v2)
	ra.t.Store(v2)
	a.OnRouting(v2)
	select {
	case rep := <-inSync:
		if !rep.InSync || rep.Member != "b" || rep.Partition != 0 {
			t.Fatalf("report %+v, want b in sync for partition 0", rep)
		}
	case <-ctx.Done():
		t.Fatal("b never reported in sync")
	}
	st := a.Stats()
	if min := uint64(keys * valueLen / chunk); st.SentBatches[LaneBackfill] < min {
		t.Errorf("copy sent in %d batches, want at least %d (chunks of %d bytes)", st.SentBatches[LaneBackfill], min, chunk)
	}
	got := 0
	if err := eb.BackfillSnapshot(0, func(s *PartitionSnapshot) {
		for _, d := range s.DMaps {
			got += len(d.Entries)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got != keys {
		t.Fatalf("backup holds %d keys, want %d", got, keys)
	}
	b.mu.Lock()
	staged := len(b.mu.staging)
	b.mu.Unlock()
	if staged != 0 {
		t.Errorf("%d copies still staged after the install", staged)
	}
}

// TestChunkOutOfOrderIsRefused: a chunk that does not follow the staged
// ones (lost, reordered, or from another copy) drops the staged copy and is
// refused, so the primary reports the backup out of sync instead of the
// backup installing a copy with a hole.
func TestChunkOutOfOrderIsRefused(t *testing.T) {
	s := &Service{}
	s.mu.staging = map[uint32]*stagedCopy{}
	chunk := func(n uint32, more bool, seq uint64) *replItem {
		return &replItem{P: 0, Epoch: 1, Chunk: n, More: more,
			Snap: &PartitionSnapshot{Format: SnapshotFormat, Seq: seq, Fence: 1, DMaps: []DMapSnapshot{{Name: "d"}}}}
	}
	if _, err := s.stageChunk("a", chunk(1, true, 5)); !errors.Is(err, errNotAttached) {
		t.Fatalf("chunk 1 without chunk 0: %v, want errNotAttached", err)
	}
	if _, err := s.stageChunk("a", chunk(0, true, 5)); !errors.Is(err, errChunkStaged) {
		t.Fatalf("chunk 0: %v, want errChunkStaged", err)
	}
	if _, err := s.stageChunk("a", chunk(2, false, 5)); !errors.Is(err, errNotAttached) {
		t.Fatalf("chunk 2 after chunk 0: %v, want errNotAttached", err)
	}
	if len(s.mu.staging) != 0 {
		t.Fatal("the staged copy was kept after a chunk out of order")
	}
	if _, err := s.stageChunk("a", chunk(0, true, 5)); !errors.Is(err, errChunkStaged) {
		t.Fatal(err)
	}
	if _, err := s.stageChunk("b", chunk(1, false, 5)); !errors.Is(err, errNotAttached) {
		t.Fatalf("chunk 1 from another primary: %v, want errNotAttached", err)
	}
	if _, err := s.stageChunk("a", chunk(0, true, 5)); !errors.Is(err, errChunkStaged) {
		t.Fatal(err)
	}
	whole, err := s.stageChunk("a", chunk(1, false, 5))
	if err != nil || whole == nil || len(whole.DMaps) != 1 {
		t.Fatalf("last chunk: %v, %+v; want the merged copy with one DMap", err, whole)
	}
}
