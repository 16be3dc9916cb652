package resp

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/node"
)

// barrierCluster holds writes of keys "par-*" until need of them are in
// flight together: a pipeline of need such writes completes only if they
// run concurrently.
type barrierCluster struct {
	*httpapitest.Cluster
	need    int
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (c *barrierCluster) Do(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error) {
	if req.Op == dataplane.OpPut && strings.HasPrefix(req.Key, "par-") {
		c.mu.Lock()
		c.waiting++
		if c.waiting == c.need {
			close(c.release)
		}
		c.mu.Unlock()
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Cluster.Do(ctx, req)
}

// TestPipelineOfDistinctKeysRunsConcurrently: in a cluster of several
// members, a pipeline of single-key commands on distinct keys runs
// concurrently (their round trips overlap) and is answered in order.
func TestPipelineOfDistinctKeysRunsConcurrently(t *testing.T) {
	const n = 8
	c := &barrierCluster{Cluster: httpapitest.NewCluster(3, 3, 2), need: n, release: make(chan struct{})}
	_, rc := start(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := rc.Pipeline()
	for i := range n {
		p.Set(ctx, fmt.Sprintf("par-%d", i), fmt.Sprintf("v%d", i), 0)
	}
	cmds, err := p.Exec(ctx)
	if err != nil {
		t.Fatalf("pipeline: %v (its writes did not run concurrently)", err)
	}
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	// Replies come back in command order: a mixed pipeline of reads.
	p = rc.Pipeline()
	gets := make([]*redis.StringCmd, n)
	for i := range n {
		gets[i] = p.Get(ctx, fmt.Sprintf("par-%d", i))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		if v, err := g.Result(); err != nil || v != fmt.Sprintf("v%d", i) {
			t.Errorf("GET par-%d = %q, %v", i, v, err)
		}
	}
}

// TestPipelineOnOneKeyRunsInOrder: commands on the same key keep their
// order (the client sees it), even in a cluster of several members.
func TestPipelineOnOneKeyRunsInOrder(t *testing.T) {
	_, rc := start(t, httpapitest.NewCluster(3, 3, 2))
	ctx := context.Background()
	p := rc.Pipeline()
	p.Set(ctx, "k", "a", 0)
	g1 := p.Get(ctx, "k")
	p.Set(ctx, "k", "b", 0)
	g2 := p.Get(ctx, "k")
	p.Del(ctx, "k")
	e := p.Exists(ctx, "k")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if g1.Val() != "a" || g2.Val() != "b" || e.Val() != 0 {
		t.Fatalf("in order: got %q, %q, exists %d; want a, b, 0", g1.Val(), g2.Val(), e.Val())
	}
}

// TestPipelineBatchNeedsDistinctKeys: a pipeline runs concurrently only
// if its commands are single-key commands on distinct keys — a plain
// command's key and the same key of DM.* on the DMap "default" are one key.
func TestPipelineBatchNeedsDistinctKeys(t *testing.T) {
	s := New(nil, Options{})
	cmd := func(args ...string) [][]byte {
		var c [][]byte
		for _, a := range args {
			c = append(c, []byte(a))
		}
		return c
	}
	cases := []struct {
		name string
		cmds [][][]byte
		want bool
	}{
		{"distinct keys", [][][]byte{cmd("SET", "a", "1"), cmd("GET", "b"), cmd("DM.GET", "default", "c"), cmd("dm.put", "other", "a", "x")}, true},
		{"same key", [][][]byte{cmd("SET", "a", "1"), cmd("GET", "a")}, false},
		{"plain and DM.* on default", [][][]byte{cmd("SET", "k", "1"), cmd("DM.GET", "default", "k")}, false},
		{"same key, other DMaps", [][][]byte{cmd("DM.PUT", "x", "k", "1"), cmd("DM.GET", "y", "k")}, true},
		{"multi-key", [][][]byte{cmd("GET", "a"), cmd("MGET", "b", "c")}, false},
		{"unknown", [][][]byte{cmd("GET", "a"), cmd("FLUSHALL")}, false},
	}
	for _, c := range cases {
		if got := s.distinctSingleKey(c.cmds[0], c.cmds[1:]); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// manyCluster is a fake with DoMany (the node's batch path), which it
// runs request by request, recording each batch's size.
type manyCluster struct {
	*httpapitest.Cluster
	mu      sync.Mutex
	batches []int
}

func (c *manyCluster) DoMany(ctx context.Context, reqs []*dataplane.Request, resps []*dataplane.Response, errs []error) {
	c.mu.Lock()
	c.batches = append(c.batches, len(reqs))
	c.mu.Unlock()
	for i, r := range reqs {
		// The fake keeps keys: copy them (they view the read buffer).
		r.Key = strings.Clone(r.Key)
		resps[i], errs[i] = c.Do(ctx, r)
	}
}

func (c *manyCluster) takeBatches() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.batches
	c.batches = nil
	return b
}

// TestPipelineOfPlainCommandsRunsAsOneBatch: in a cluster, a pipeline of
// plain GET/SET and DM.GET/DM.PUT on distinct keys goes to the node as one
// DoMany batch (no goroutine per command) and is answered in order, each
// reply as the command's own handler gives it: OK, a value, nil for a
// missing key, Olric's error for a missing DM.GET key. A lone plain
// command is a batch of one. A pipeline with any other command (here SET
// with an option) runs command by command.
func TestPipelineOfPlainCommandsRunsAsOneBatch(t *testing.T) {
	c := &manyCluster{Cluster: httpapitest.NewCluster(3, 3, 2)}
	_, rc := start(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rc.Set(ctx, "pre", "stored", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "DM.PUT", "m", "pre", "olric").Err(); err != nil {
		t.Fatal(err)
	}
	c.takeBatches()

	p := rc.Pipeline()
	set := p.Set(ctx, "a", "1", 0)
	put := p.Do(ctx, "DM.PUT", "m", "b", "2")
	get := p.Get(ctx, "pre")
	missing := p.Get(ctx, "nothing")
	dmGet := p.Do(ctx, "DM.GET", "m", "pre")
	dmMissing := p.Do(ctx, "DM.GET", "m", "nothing")
	_, _ = p.Exec(ctx)
	if b := c.takeBatches(); len(b) != 1 || b[0] != 6 {
		t.Fatalf("DoMany batches %v, want one of 6", b)
	}
	if v, err := set.Result(); err != nil || v != "OK" {
		t.Errorf("SET = %q, %v; want OK", v, err)
	}
	if v, err := put.Result(); err != nil || v != "OK" {
		t.Errorf("DM.PUT = %v, %v; want OK", v, err)
	}
	if v, err := get.Result(); err != nil || v != "stored" {
		t.Errorf("GET pre = %q, %v; want stored", v, err)
	}
	if _, err := missing.Result(); err != redis.Nil {
		t.Errorf("GET nothing: %v, want nil", err)
	}
	if v, err := dmGet.Result(); err != nil || v != "olric" {
		t.Errorf("DM.GET m pre = %v, %v; want olric", v, err)
	}
	if err := dmMissing.Err(); err == nil || !strings.HasPrefix(err.Error(), PrefixKeyNotFound) {
		t.Errorf("DM.GET m nothing: %v, want %s...", err, PrefixKeyNotFound)
	}
	if v, err := rc.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Errorf("GET a after the batch = %q, %v; want 1", v, err)
	}
	if b := c.takeBatches(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("DoMany batches %v for a lone GET, want one of 1", b)
	}

	p = rc.Pipeline()
	p.Set(ctx, "c", "3", time.Minute)
	p.Get(ctx, "pre")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if b := c.takeBatches(); len(b) != 0 {
		t.Fatalf("DoMany batches %v for a pipeline with SET ... EX, want none", b)
	}
}

// TestPipelineBatchKeepsAuthRoles: in a batch run through DoMany, each
// command is still checked against the connection's role: a read token's
// SETs are refused with NOPERM in their place, its GETs served, and only
// the GETs reach the node.
func TestPipelineBatchKeepsAuthRoles(t *testing.T) {
	c := &manyCluster{Cluster: httpapitest.NewCluster(3, 3, 2)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, Options{Logger: quiet(), RequestTimeout: 5 * time.Second, Auth: parsedStore(t)})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Password: writeToken, MaxRetries: -1})
	t.Cleanup(func() { w.Close() })
	if err := w.Set(ctx, "x", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Password: readToken, MaxRetries: -1})
	t.Cleanup(func() { r.Close() })
	if err := r.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c.takeBatches()
	p := r.Pipeline()
	set := p.Set(ctx, "a", "2", 0)
	get := p.Get(ctx, "x")
	set2 := p.Set(ctx, "b", "3", 0)
	_, _ = p.Exec(ctx)
	for _, cmd := range []*redis.StatusCmd{set, set2} {
		if err := cmd.Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("SET with a read token in a batch: %v, want NOPERM", err)
		}
	}
	if v, err := get.Result(); err != nil || v != "1" {
		t.Errorf("GET x = %q, %v; want 1", v, err)
	}
	if b := c.takeBatches(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("DoMany batches %v, want one holding only the GET", b)
	}
}

// countingNode is a real node that counts its DoMany batches.
type countingNode struct {
	*node.Node
	batches atomic.Int64
}

func (c *countingNode) DoMany(ctx context.Context, reqs []*dataplane.Request, resps []*dataplane.Response, errs []error) {
	c.batches.Add(1)
	c.Node.DoMany(ctx, reqs, resps, errs)
}

// TestSingleMemberPipelineBatchStoresCopies: on one member a pipeline of
// plain SET/GET/DM.PUT/DM.GET on distinct keys also runs as DoMany
// batches, whose requests view the connection's read buffer; what they
// store — keys, values, a new DMap's name — must be copies: later
// pipelines overwrite that buffer, and every key, value and DMap reads
// back as written.
func TestSingleMemberPipelineBatchStoresCopies(t *testing.T) {
	n := &countingNode{Node: startRealNode(t, "solo")}
	_, rc := start(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := map[string]string{}
	for round, prefix := range []string{"k", "other-longer-key-"} {
		p := rc.Pipeline()
		for i := range 32 {
			k, v := fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("value-%d-%d-%s", round, i, strings.Repeat("z", round*7+i))
			p.Set(ctx, k, v, 0)
			want[k] = v
		}
		p.Do(ctx, "DM.PUT", fmt.Sprintf("map-%d", round), "key", fmt.Sprintf("dm-%d", round))
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n.batches.Load() == 0 {
		t.Fatal("no pipeline ran as a DoMany batch")
	}
	// Reads, pipelined (batches again) and one by one.
	p := rc.Pipeline()
	gets := map[string]*redis.StringCmd{}
	for k := range want {
		gets[k] = p.Get(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, err := gets[k].Result(); err != nil || got != v {
			t.Errorf("pipelined GET %s = %q, %v; want %q", k, got, err, v)
		}
		if got, err := rc.Get(ctx, k).Result(); err != nil || got != v {
			t.Errorf("GET %s = %q, %v; want %q", k, got, err, v)
		}
	}
	for round := range 2 {
		if got, err := rc.Do(ctx, "DM.GET", fmt.Sprintf("map-%d", round), "key").Text(); err != nil || got != fmt.Sprintf("dm-%d", round) {
			t.Errorf("DM.GET map-%d key = %q, %v", round, got, err)
		}
	}
	// The stored keys are the keys written, not what the buffer holds now.
	var keys []string
	cursor := uint64(0)
	for {
		page, next, err := rc.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	wantKeys := slices.Sorted(maps.Keys(want))
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("SCAN lists %d keys %q,\nwant %d %q", len(keys), keys, len(wantKeys), wantKeys)
	}
}
