package resp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
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
