package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/metadata"
)

// gatedCaller counts calls by method and holds every call to a member
// until the gate opens.
type gatedCaller struct {
	next *loopbackCaller
	gate chan struct{}

	mu      sync.Mutex
	calls   map[string]int
	held    int // calls made (each waits for the gate)
	reqs    int // requests in those calls
	batched int // requests that travelled in MethodDoBatch calls
}

func (c *gatedCaller) Call(ctx context.Context, addr, method string, req, resp any) error {
	c.mu.Lock()
	c.calls[method]++
	if method == MethodDoBatch {
		var b batchRequestIn
		if err := msgpack.Unmarshal(req.(msgpack.RawMessage), &b); err != nil {
			c.mu.Unlock()
			return err
		}
		c.batched += len(b.Reqs)
		c.reqs += len(b.Reqs)
	} else {
		c.reqs++
	}
	c.held++
	c.mu.Unlock()
	<-c.gate
	return c.next.Call(ctx, addr, method, req, resp)
}

// TestForwardedRequestsTravelInBatches: requests forwarded at the same
// time to one primary are coalesced into dmap.do_batch calls while
// earlier calls are in flight, and every caller gets its own result.
func TestForwardedRequestsTravelInBatches(t *testing.T) {
	const parts, n = 4, 60
	table := &metadata.RoutingTable{Version: 1, PartitionCount: parts, Replicas: 1,
		Members: []metadata.Member{
			{ID: "a", Incarnation: "1", ClusterAddr: "a:1", State: metadata.MemberAlive},
			{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive},
		},
	}
	for p := range uint32(parts) {
		primary := metadata.NodeID("a")
		if p >= parts/2 {
			primary = "b"
		}
		table.Partitions = append(table.Partitions, metadata.Partition{ID: p, Primary: primary,
			State: metadata.PartitionActive, LeaderEpoch: 1, Written: true})
	}
	loop := &loopbackCaller{services: map[string]*Service{}}
	caller := &gatedCaller{next: loop, gate: make(chan struct{}), calls: map[string]int{}}
	services := startServices(t, table, caller, loop, "a", "b")
	a := services["a"]
	var openGate sync.Once
	release := func() { openGate.Do(func() { close(caller.gate) }) }
	t.Cleanup(release) // before the services close (cleanups run last first)
	// Keys led by b.
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("k%d", i)
		if metadata.PartitionOf("d", k, parts) >= parts/2 {
			keys = append(keys, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// a's forwarding needs its moved signals (watchEpochs) to be set.
	for !a.movedReady() {
		select {
		case <-ctx.Done():
			t.Fatal("moved signals never set")
		case <-time.After(time.Millisecond):
		}
	}

	var wg sync.WaitGroup
	results := make([]*Response, n)
	errs := make([]error, n)
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = a.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: k, Value: []byte("value-of-" + k)})
		}()
	}
	// Every request is either in a held call (at most maxForwardSenders
	// calls, each waiting at the gate) or queued. As n > maxForwardSenders,
	// some call carries several, or several are left queued and go
	// together once the gate opens: either way, a batch.
	q := a.forwardQueue("b:1")
	for {
		q.mu.Lock()
		queued := len(q.pending)
		q.mu.Unlock()
		caller.mu.Lock()
		sent := caller.reqs
		caller.mu.Unlock()
		if queued+sent == n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d requests queued and %d sent, want %d in all", queued, sent, n)
		case <-time.After(time.Millisecond):
		}
	}
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("put %s: %v", keys[i], errs[i])
		}
	}
	caller.mu.Lock()
	batches, singles, batched := caller.calls[MethodDoBatch], caller.calls[MethodDo], caller.batched
	caller.mu.Unlock()
	if batches == 0 || batched+singles != n {
		t.Fatalf("%d batches carrying %d requests and %d single calls; want batches, %d requests in all", batches, batched, singles, n)
	}
	// Each caller got its own result: its key's version (unique in its
	// partition), and each key holds its own value.
	type partVersion struct {
		p uint32
		v uint64
	}
	seen := map[partVersion]bool{}
	for i, k := range keys {
		pv := partVersion{metadata.PartitionOf("d", k, parts), 0}
		if results[i] != nil {
			pv.v = results[i].Version
		}
		if pv.v == 0 || seen[pv] {
			t.Fatalf("put %s: response %+v (a version missing or given twice in its partition)", k, results[i])
		}
		seen[pv] = true
		got, err := a.Do(ctx, &Request{Op: OpGet, DMap: "d", Key: k})
		if err != nil || !got.Found || string(got.Value) != "value-of-"+k {
			t.Fatalf("get %s = %+v, %v; want value-of-%s", k, got, err, k)
		}
		if got.Version != results[i].Version {
			t.Fatalf("get %s: version %d, the put answered %d", k, got.Version, results[i].Version)
		}
	}
	t.Logf("%d requests: %d batches (%d requests), %d single calls", n, batches, batched, singles)
}

// movedReady reports whether every partition has its moved signal.
func (s *Service) movedReady() bool {
	for i := range s.moved {
		if s.moved[i].Load() == nil {
			return false
		}
	}
	return true
}

// TestBatchMessagesMatchTheReflectionCodec: the hand-built batch body is
// what the reflection encoder makes of {"reqs": [requests...]} and decodes
// back to the requests; a batch reply encodes byte for byte as the
// reflection encoder's and decodes back.
func TestBatchMessagesMatchTheReflectionCodec(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 256} {
		reqs := make([]Request, n)
		calls := make([]*fwdCall, n)
		raws := make([]msgpack.RawMessage, n)
		for i := range reqs {
			reqs[i] = Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("k%d", i), Value: []byte{byte(i)}, RoutingVersion: uint64(i + 1)}
			body, err := encodeRequest(&reqs[i])
			if err != nil {
				t.Fatal(err)
			}
			calls[i], raws[i] = &fwdCall{body: body}, body
		}
		got := appendBatchRequest(nil, calls)
		want, err := msgpack.Marshal(&struct {
			Reqs []msgpack.RawMessage `msgpack:"reqs"`
		}{raws})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d requests: batch body % x, reflection % x", n, got, want)
		}
		var in batchRequestIn
		if err := strictmsgpack.Unmarshal(got, &in); err != nil || len(in.Reqs) != n {
			t.Fatalf("%d requests: decoded %d, %v", n, len(in.Reqs), err)
		}
		for i := range reqs {
			if !reflect.DeepEqual(in.Reqs[i], reqs[i]) {
				t.Fatalf("request %d: %+v, want %+v", i, in.Reqs[i], reqs[i])
			}
		}
	}
	type batchReplyNoCodec struct {
		Code    string            `msgpack:"code,omitempty"`
		Message string            `msgpack:"msg,omitempty"`
		Replies []rpcReplyNoCodec `msgpack:"replies,omitempty"`
	}
	for _, r := range []batchReply{
		{},
		{Code: CodeInvalid, Message: "bad"},
		{Replies: []rpcReply{{Version: 3, Resp: &Response{Found: true, Value: []byte("v"), Version: 9}}, {Code: CodeUnavailable, Message: "m", Version: 4}}},
	} {
		got, err := msgpack.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		ref := batchReplyNoCodec{Code: r.Code, Message: r.Message}
		for _, x := range r.Replies {
			ref.Replies = append(ref.Replies, *twin[rpcReply, rpcReplyNoCodec](&x))
		}
		want, err := msgpack.Marshal(&ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reply %+v: % x, reflection % x", r, got, want)
		}
		var back batchReply
		if err := msgpack.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("reply %+v decoded as %+v, %v", r, back, err)
		}
	}
}

// TestBatchReadsResentAloneWhenTheReplyIsFull: a primary answers a batch's
// reads only up to maxBatchReplyBytes of reply and marks the rest to be
// sent again alone (its writes are always answered: they ran); the
// forwarder sends those reads alone, and every caller gets its value.
func TestBatchReadsResentAloneWhenTheReplyIsFull(t *testing.T) {
	defer func(old int) { maxBatchReplyBytes = old }(maxBatchReplyBytes)
	maxBatchReplyBytes = 1000
	table := &metadata.RoutingTable{Version: 1, PartitionCount: 1, Replicas: 1,
		Members:    []metadata.Member{{ID: "b", Incarnation: "1", ClusterAddr: "b:1", State: metadata.MemberAlive}},
		Partitions: []metadata.Partition{{ID: 0, Primary: "b", State: metadata.PartitionActive, LeaderEpoch: 1, Written: true}},
	}
	e, err := NewEngine(DefaultConfig(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	r := &fixedRouting{self: "b"}
	r.t.Store(table)
	loop := &loopbackCaller{services: map[string]*Service{}}
	b, err := NewService(ServiceConfig{
		PartitionCount: 1, Engine: e, Routing: r, Caller: loop,
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	b.OnRouting(table)
	loop.services["b:1"] = b
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 600) }
	for i := range 3 {
		if _, err := b.Do(ctx, &Request{Op: OpPut, DMap: "d", Key: fmt.Sprintf("k%d", i), Value: big(i)}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := []*Request{
		{Op: OpGet, DMap: "d", Key: "k0"},
		{Op: OpGet, DMap: "d", Key: "k1"},                    // 600 + 600 > 1000: resend
		{Op: OpPut, DMap: "d", Key: "w", Value: []byte("x")}, // a write: answered
		{Op: OpGet, DMap: "d", Key: "k2"},                    // resend
	}
	calls := make([]*fwdCall, len(reqs))
	for i, req := range reqs {
		body, err := encodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = &fwdCall{body: body, done: make(chan struct{})}
	}
	out, err := b.ServeRPC(ctx, MethodDoBatch, appendBatchRequest(nil, calls))
	if err != nil {
		t.Fatal(err)
	}
	var reply batchReply
	if err := msgpack.Unmarshal(out, &reply); err != nil || len(reply.Replies) != len(reqs) {
		t.Fatalf("batch reply %+v, %v", reply, err)
	}
	for i, want := range []string{"", codeResendAlone, "", codeResendAlone} {
		if got := reply.Replies[i].Code; got != want {
			t.Fatalf("reply %d: code %q, want %q", i, got, want)
		}
	}

	// The forwarder sends the two reads again, alone.
	b.sendForwardBatch(b.forwardQueue("b:1"), calls)
	for i, c := range calls {
		<-c.done
		if c.err != nil || c.reply.Code != "" || c.reply.Resp == nil {
			t.Fatalf("call %d: %+v, %v", i, c.reply, c.err)
		}
		if i != 2 && !bytes.Equal(c.reply.Resp.Value, big(map[int]int{0: 0, 1: 1, 3: 2}[i])) {
			t.Fatalf("call %d: value %.10q..., want k%d's", i, c.reply.Resp.Value, i)
		}
	}
}

// recordingCaller answers every call with an empty success and records
// the methods and the requests each call carried.
type recordingCaller struct {
	mu    sync.Mutex
	calls []string
}

func (c *recordingCaller) Call(_ context.Context, _, method string, req, resp any) error {
	n := 1
	if method == MethodDoBatch {
		var b batchRequestIn
		if err := msgpack.Unmarshal(req.(msgpack.RawMessage), &b); err != nil {
			return err
		}
		n = len(b.Reqs)
		if r, ok := resp.(*batchReply); ok {
			r.Replies = make([]rpcReply, n)
		}
	}
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprintf("%s/%d", method, n))
	c.mu.Unlock()
	return nil
}

// TestForwardBatchesAreBoundedByBytes: queued requests go together only up
// to maxForwardBatchBytes of requests; large ones go alone.
func TestForwardBatchesAreBoundedByBytes(t *testing.T) {
	e, err := NewEngine(DefaultConfig(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	r := &fixedRouting{self: "a"}
	r.t.Store(&metadata.RoutingTable{Version: 1, PartitionCount: 1})
	caller := &recordingCaller{}
	s, err := NewService(ServiceConfig{
		PartitionCount: 1, Engine: e, Routing: r, Caller: caller,
		MarkWritten:    func(context.Context, uint32, uint64) (uint64, error) { return 0, nil },
		ReportReplicas: func(context.Context, []ReplicaReport) (uint64, error) { return 0, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	queue := func(sizes ...int) []string {
		caller.mu.Lock()
		caller.calls = nil
		caller.mu.Unlock()
		q := s.forwardQueue("b:1")
		q.mu.Lock()
		for _, n := range sizes {
			body, err := encodeRequest(&Request{Op: OpPut, DMap: "d", Key: "k", Value: make([]byte, n)})
			if err != nil {
				t.Fatal(err)
			}
			q.pending = append(q.pending, &fwdCall{body: body, done: make(chan struct{})})
		}
		q.senders++
		q.mu.Unlock()
		s.wg.Add(1)
		s.sendQueued(q) // sends everything queued, then returns
		caller.mu.Lock()
		defer caller.mu.Unlock()
		return caller.calls
	}
	const mib = 1 << 20
	if got := queue(100, 100, 100); !slices.Equal(got, []string{MethodDoBatch + "/3"}) {
		t.Errorf("three small requests went as %v, want one batch", got)
	}
	if got := queue(3*mib, 3*mib, 100, 100); !slices.Equal(got, []string{MethodDo + "/1", MethodDoBatch + "/3"}) {
		t.Errorf("3 MiB, 3 MiB, small, small went as %v, want the first alone, then a batch of 3", got)
	}
	if got := queue(5*mib, 100); !slices.Equal(got, []string{MethodDo + "/1", MethodDo + "/1"}) {
		t.Errorf("5 MiB then small went as %v, want each alone", got)
	}
}
