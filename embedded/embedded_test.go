package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/embedded"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

const startTimeout = 30 * time.Second

// devConfig is a dev-timing member on free loopback ports, logging
// warnings to the test.
func devConfig(t *testing.T, id string) embedded.Config {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.NodeID = metadata.NodeID(id)
	cfg.DataDir = t.TempDir()
	cfg.Timing = node.DevTiming()
	cfg.ClusterAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

func startSingle(t *testing.T, opts ...embedded.Option) *embedded.Member {
	t.Helper()
	cfg := devConfig(t, "solo")
	cfg.Bootstrap = true
	m, err := embedded.Start(cfg, append([]embedded.Option{embedded.WithReadyTimeout(startTimeout)}, opts...)...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestSingleMemberOperations: every DMap operation on a one-member
// cluster, with the sentinels of the data plane, and the HTTP API on a
// port chosen at start.
func TestSingleMemberOperations(t *testing.T) {
	m := startSingle(t, embedded.WithHTTP(httpapi.Options{}))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	d := m.DMap("users")

	// Put, Get, options.
	v1, err := d.Put(ctx, "alice", []byte("a1"))
	if err != nil || v1 == 0 {
		t.Fatalf("put = %d, %v", v1, err)
	}
	e, err := d.Get(ctx, "alice")
	if err != nil || string(e.Value) != "a1" || e.Version != v1 || e.TTL != 0 || e.Key != "alice" {
		t.Fatalf("get = %+v, %v", e, err)
	}
	if _, err := d.Get(ctx, "nobody"); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("get of a missing key = %v, want ErrNotFound", err)
	}
	// The caller owns what Get returns: changing it changes nothing stored.
	e.Value[0] = 'X'
	if again, err := d.Get(ctx, "alice"); err != nil || string(again.Value) != "a1" {
		t.Fatalf("get after changing a returned value = %+v, %v", again, err)
	}
	if _, err := d.Put(ctx, "alice", []byte("x"), embedded.NX()); !errors.Is(err, dataplane.ErrKeyExists) {
		t.Fatalf("nx put = %v, want ErrKeyExists", err)
	}
	if _, err := d.Put(ctx, "bob", []byte("x"), embedded.XX()); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("xx put = %v, want ErrNotFound", err)
	}
	if _, err := d.Put(ctx, "alice", []byte("x"), embedded.IfVersion(v1+1000)); !errors.Is(err, dataplane.ErrVersionMismatch) {
		t.Fatalf("cas put = %v, want ErrVersionMismatch", err)
	}
	v2, err := d.Put(ctx, "alice", []byte("a2"), embedded.IfVersion(v1), embedded.WithTTL(time.Hour))
	if err != nil || v2 <= v1 {
		t.Fatalf("cas put = %d, %v", v2, err)
	}
	if e, err := d.Get(ctx, "alice"); err != nil || string(e.Value) != "a2" || e.TTL <= 0 || e.TTL > time.Hour {
		t.Fatalf("get after cas = %+v, %v", e, err)
	}
	if _, err := d.Put(ctx, "alice", []byte("a3"), embedded.KeepTTL()); err != nil {
		t.Fatal(err)
	}
	if e, err := d.Get(ctx, "alice"); err != nil || e.TTL <= 0 {
		t.Fatalf("get after keepttl = %+v, %v", e, err)
	}
	if _, err := d.Put(ctx, "gone", []byte("x"), embedded.WithExpireAt(time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "gone"); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("get of a key put with a past expiry = %v", err)
	}
	for _, bad := range [][]embedded.PutOption{
		{embedded.NX(), embedded.XX()},
		{embedded.IfVersion(0), embedded.NX()},
		{embedded.WithTTL(-time.Second)},
		{embedded.WithTTL(time.Second), embedded.WithExpireAt(time.Now().Add(time.Hour))},
		{embedded.KeepTTL(), embedded.WithTTL(time.Second)},
	} {
		if _, err := d.Put(ctx, "alice", nil, bad...); !errors.Is(err, dataplane.ErrInvalid) {
			t.Errorf("put with conflicting options = %v, want ErrInvalid", err)
		}
	}
	if _, err := d.Put(ctx, "", nil); !errors.Is(err, dataplane.ErrInvalid) {
		t.Errorf("put of an empty key = %v", err)
	}
	if _, err := d.Put(ctx, strings.Repeat("k", dataplane.MaxKeyLen+1), nil); !errors.Is(err, dataplane.ErrTooLarge) {
		t.Errorf("put of a long key = %v", err)
	}
	if _, err := d.Put(ctx, "big", make([]byte, dataplane.DefaultMaxValueLen+1)); !errors.Is(err, dataplane.ErrTooLarge) {
		t.Errorf("put of a large value = %v", err)
	}

	// Expire, Delete.
	if ok, err := d.Expire(ctx, "alice", 0); err != nil || !ok {
		t.Fatalf("expire = %v, %v", ok, err)
	}
	if e, err := d.Get(ctx, "alice"); err != nil || e.TTL != 0 {
		t.Fatalf("get after persist = %+v, %v", e, err)
	}
	if ok, err := d.Expire(ctx, "nobody", time.Second); err != nil || ok {
		t.Fatalf("expire of a missing key = %v, %v", ok, err)
	}
	if ok, err := d.Delete(ctx, "alice"); err != nil || !ok {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if ok, err := d.Delete(ctx, "alice"); err != nil || ok {
		t.Fatalf("second delete = %v, %v", ok, err)
	}

	// Incr, IncrByFloat, GetPut.
	counters := m.DMap("counters")
	if n, _, err := counters.Incr(ctx, "hits", 5); err != nil || n != 5 {
		t.Fatalf("incr = %d, %v", n, err)
	}
	if n, _, err := counters.Incr(ctx, "hits", -7); err != nil || n != -2 {
		t.Fatalf("incr = %d, %v", n, err)
	}
	if f, _, err := counters.IncrByFloat(ctx, "ratio", 0.25); err != nil || f != 0.25 {
		t.Fatalf("incrbyfloat = %v, %v", f, err)
	}
	if _, err := counters.Put(ctx, "text", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := counters.Incr(ctx, "text", 1); !errors.Is(err, dataplane.ErrNotANumber) {
		t.Fatalf("incr of text = %v, want ErrNotANumber", err)
	}
	prev, v, err := counters.GetPut(ctx, "text", []byte("def"))
	if err != nil || prev == nil || string(prev.Value) != "abc" || v == 0 {
		t.Fatalf("getput = %+v, %d, %v", prev, v, err)
	}
	if prev, _, err := counters.GetPut(ctx, "new", []byte("1")); err != nil || prev != nil {
		t.Fatalf("getput of a new key = %+v, %v", prev, err)
	}

	// Locks.
	locks := m.DMap("locks")
	l, err := locks.Lock(ctx, "job", time.Minute, 0)
	if err != nil || l.Token() == 0 || l.Key() != "job" {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	if _, err := locks.Lock(ctx, "job", time.Minute, 20*time.Millisecond); !errors.Is(err, dataplane.ErrLocked) {
		t.Fatalf("second lock = %v, want ErrLocked", err)
	}
	if err := l.Lease(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A waiter gets the lock once it is released, with a higher token.
	got := make(chan *embedded.Lock, 1)
	go func() {
		l2, err := locks.Lock(ctx, "job", time.Minute, 10*time.Second)
		if err != nil {
			t.Errorf("waiting lock: %v", err)
		}
		got <- l2
	}()
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil || l2.Token() <= l.Token() {
		t.Fatalf("waiter's lock %+v, want a token above %d", l2, l.Token())
	}
	if err := l.Unlock(ctx); !errors.Is(err, dataplane.ErrNoSuchLock) {
		t.Fatalf("stale unlock = %v, want ErrNoSuchLock", err)
	}
	if err := l.Lease(ctx, time.Minute); !errors.Is(err, dataplane.ErrNoSuchLock) {
		t.Fatalf("stale lease = %v, want ErrNoSuchLock", err)
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	// Scan, Destroy.
	scan := m.DMap("scan")
	var want []string
	for i := range 2500 { // more than two pages
		k := fmt.Sprintf("user:%04d", i)
		want = append(want, k)
		if _, err := scan.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := scan.Put(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, err := range scan.Scan(ctx, "user:*") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Fatalf("scan listed %d keys, want %d", len(keys), len(want))
	}
	for range scan.Scan(ctx, "") {
		break // stopping early is fine
	}
	if err := scan.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	for k, err := range scan.Scan(ctx, "") {
		t.Fatalf("after destroy, scan listed %q, %v", k, err)
	}

	// The HTTP API serves the same data.
	if m.HTTPAddr() == "" || strings.HasSuffix(m.HTTPAddr(), ":0") {
		t.Fatalf("HTTPAddr %q", m.HTTPAddr())
	}
	if adv, _ := m.Node().Routing().Member(m.ID()); adv.HTTPAddr != m.HTTPAddr() {
		t.Errorf("advertised http_addr %q, listening on %q", adv.HTTPAddr, m.HTTPAddr())
	}
	hc, err := client.New(m.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if e, err := hc.Get(ctx, "counters", "text"); err != nil || string(e.Value) != "def" {
		t.Fatalf("HTTP get = %+v, %v", e, err)
	}
	if _, err := hc.Put(ctx, "counters", "from-http", []byte("h")); err != nil {
		t.Fatal(err)
	}
	if e, err := counters.Get(ctx, "from-http"); err != nil || string(e.Value) != "h" {
		t.Fatalf("get of an HTTP put = %+v, %v", e, err)
	}

	// Closed.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := d.Get(ctx, "alice"); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("get after close = %v, want node.ErrClosed", err)
	}
	if _, err := net.DialTimeout("tcp", m.HTTPAddr(), time.Second); err == nil {
		t.Fatalf("HTTP still listening after close")
	}
}

// TestThreeMembers: three members bootstrap together (--bootstrap-expect
// 3, --join), each Start waiting for the others; what one puts, the
// others read; one leaves gracefully and its data stays readable.
func TestThreeMembers(t *testing.T) {
	const n = 3
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = testcluster.FreeAddr(t)
	}
	members := make([]*embedded.Member, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := devConfig(t, fmt.Sprintf("e%d", i+1))
		cfg.GossipAddr = gossip[i]
		cfg.BootstrapExpect = n
		for j, g := range gossip {
			if j != i {
				cfg.Join = append(cfg.Join, g)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = embedded.Start(cfg, embedded.WithReadyTimeout(startTimeout))
		}()
	}
	wg.Wait()
	for i, m := range members {
		if m != nil {
			t.Cleanup(func() { _ = m.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("start e%d: %v", i+1, errs[i])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if got := len(members[0].Node().Routing().AliveMembers()); got != n {
		t.Fatalf("%d alive members once ready, want %d", got, n)
	}

	const keys = 300
	for i := range keys {
		if _, err := members[0].DMap("orders").Put(ctx, fmt.Sprintf("o%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatalf("put o%d via e1: %v", i, err)
		}
	}
	readAll := func(ms ...*embedded.Member) {
		t.Helper()
		for _, m := range ms {
			for i := range keys {
				e, err := m.DMap("orders").Get(ctx, fmt.Sprintf("o%d", i))
				if err != nil || string(e.Value) != fmt.Sprintf("v%d", i) {
					t.Fatalf("get o%d via %s = %+v, %v", i, m.ID(), e, err)
				}
			}
		}
	}
	readAll(members[1], members[2])
	// Locks are cluster-wide.
	l, err := members[1].DMap("locks").Lock(ctx, "job", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := members[2].DMap("locks").Lock(ctx, "job", time.Minute, 0); !errors.Is(err, dataplane.ErrLocked) {
		t.Fatalf("lock via e3 = %v, want ErrLocked", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	// e3 leaves gracefully: its partitions are handed over.
	leaveCtx, leaveCancel := context.WithTimeout(context.Background(), startTimeout)
	defer leaveCancel()
	if err := members[2].Leave(leaveCtx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := testcluster.Poll(startTimeout, func() error {
		if got := len(members[0].Node().Routing().AliveMembers()); got != n-1 {
			return fmt.Errorf("%d alive members", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	readAll(members[0], members[1])
	if _, err := members[2].DMap("orders").Get(ctx, "o1"); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("get via the member that left = %v, want node.ErrClosed", err)
	}
}

// TestStartFailures: a bad configuration is refused before anything
// starts; a member that cannot get ready in time is stopped again.
func TestStartFailures(t *testing.T) {
	cfg := devConfig(t, "bad id")
	if _, err := embedded.Start(cfg); !errors.Is(err, node.ErrInvalidConfig) {
		t.Fatalf("start with a bad id = %v, want ErrInvalidConfig", err)
	}
	cfg = devConfig(t, "lonely")
	cfg.BootstrapExpect = 3 // never reached
	_, err := embedded.Start(cfg, embedded.WithReadyTimeout(300*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start of a member that cannot get ready = %v, want DeadlineExceeded", err)
	}
	// WithHTTP on a port in use fails before the node starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg = devConfig(t, "clash")
	cfg.Bootstrap = true
	cfg.HTTPAddr = ln.Addr().String()
	if _, err := embedded.Start(cfg, embedded.WithHTTP(httpapi.Options{})); err == nil {
		t.Fatalf("start on a busy HTTP port succeeded")
	}
	// WithoutWait returns a running member that gets ready later.
	cfg = devConfig(t, "later")
	cfg.Bootstrap = true
	m, err := embedded.Start(cfg, embedded.WithoutWait())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DMap("d").Put(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
}
