package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// routedConvergeTimeout bounds every wait on an in-process cluster.
const routedConvergeTimeout = 30 * time.Second

// routedMember serves the HTTP API of one testcluster member on a real
// loopback listener and counts what reaches it.
type routedMember struct {
	m    *testcluster.Member
	ln   net.Listener
	addr string

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}

	keyReqs      atomic.Int64 // requests on one key
	notPrimary   atomic.Int64 // of those, for a key this member does not lead
	writesNoID   atomic.Int64 // key writes without X-Request-Id
	readsWithID  atomic.Int64 // key reads with X-Request-Id
	serverErrors atomic.Int64 // answers 5xx other than 503
}

// newRoutedCluster prepares n members, each with a listener whose address
// is advertised as its http_addr; nothing starts yet. Serve each member
// once started.
func newRoutedCluster(t *testing.T, n int, opts testcluster.Options) (*testcluster.Cluster, []*routedMember) {
	t.Helper()
	c := testcluster.New(t, n, opts)
	out := make([]*routedMember, n)
	for i, m := range c.Members {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m.Cfg.HTTPAddr = ln.Addr().String() // before the member starts: it advertises it
		rm := &routedMember{m: m, ln: ln, addr: ln.Addr().String()}
		out[i] = rm
		// Registered after testcluster.New's cleanup, so it runs first:
		// HTTP stops before the node closes under it.
		t.Cleanup(rm.stop)
	}
	return c, out
}

// serve starts the HTTP API of the (started) member.
func (rm *routedMember) serve(t *testing.T) {
	t.Helper()
	n := rm.m.Node()
	if n == nil {
		t.Fatalf("%s is not running", rm.m.Name)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := &http.Server{
		Handler:           rm.count(n, httpapi.New(n, httpapi.Options{Logger: logger})),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	rm.mu.Lock()
	rm.srv, rm.done = srv, done
	rm.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(rm.ln)
	}()
}

// stop closes the HTTP server (or the listener, if never served): the
// address then refuses connections.
func (rm *routedMember) stop() {
	rm.mu.Lock()
	srv, done := rm.srv, rm.done
	rm.mu.Unlock()
	if srv == nil {
		_ = rm.ln.Close()
		return
	}
	_ = srv.Close()
	<-done
}

func (rm *routedMember) resetCounts() {
	rm.keyReqs.Store(0)
	rm.notPrimary.Store(0)
}

// count wraps h, counting key requests and whether this member is their
// primary in its own committed table.
func (rm *routedMember) count(n *node.Node, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dmap, key, ok := routedKeyOfPath(r.URL.EscapedPath()); ok {
			rm.keyReqs.Add(1)
			if p, ok := n.Routing().Locate(dmap, key); !ok || p.Primary != rm.m.Name {
				rm.notPrimary.Add(1)
			}
			hasID := r.Header.Get("X-Request-Id") != ""
			if r.Method == http.MethodGet && hasID {
				rm.readsWithID.Add(1)
			}
			if r.Method != http.MethodGet && !hasID {
				rm.writesNoID.Add(1)
			}
		}
		sw := &routedStatusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status >= 500 && sw.status != http.StatusServiceUnavailable {
			rm.serverErrors.Add(1)
		}
	})
}

type routedStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *routedStatusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// routedKeyOfPath parses /v1/dmaps/{dmap}/keys/{key}[/op].
func routedKeyOfPath(p string) (string, string, bool) {
	segs := strings.Split(p, "/")
	if len(segs) < 6 || segs[1] != "v1" || segs[2] != "dmaps" || segs[4] != "keys" {
		return "", "", false
	}
	dmap, err1 := url.PathUnescape(segs[3])
	key, err2 := url.PathUnescape(segs[5])
	return dmap, key, err1 == nil && err2 == nil
}

func routedSum(ms []*routedMember, f func(*routedMember) int64) int64 {
	var n int64
	for _, m := range ms {
		n += f(m)
	}
	return n
}

func newRoutedClient(t *testing.T, addrs ...string) *client.Routed {
	t.Helper()
	r, err := client.NewRouted(addrs, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("NewRouted(%v): %v", addrs, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// waitRoutedVersion waits until the client caught up with the member's
// routing version, doing reads (whose answers carry X-Routing-Version).
func waitRoutedVersion(t *testing.T, c *testcluster.Cluster, r *client.Routed, n *node.Node) {
	t.Helper()
	c.WaitFor(routedConvergeTimeout, "the client to catch up", func() error {
		want := n.Routing().Version
		_, _ = r.Get(context.Background(), "probe", "probe")
		if got := r.RoutingVersion(); got < want {
			return fmt.Errorf("client at routing version %d, member at %d", got, want)
		}
		return nil
	})
}

// TestRoutedSendsToPrimaries: on a stable three-member cluster every key
// request reaches the key's primary, writes carry a request id and reads
// none, and every operation works.
func TestRoutedSendsToPrimaries(t *testing.T) {
	c, ms := newRoutedCluster(t, 3, testcluster.Options{})
	c.StartAll()
	for _, m := range ms {
		m.serve(t)
	}
	c.WaitConverged(routedConvergeTimeout)
	r := newRoutedClient(t, ms[1].addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*routedConvergeTimeout)
	defer cancel()
	if r.RoutingVersion() == 0 || r.Routing().PartitionCount != metadata.DefaultPartitionCount {
		t.Fatalf("routing v%d with %d partitions", r.RoutingVersion(), r.Routing().PartitionCount)
	}

	const n = 300
	for i := range n {
		if _, err := r.Put(ctx, "users", fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	for i := range n {
		e, err := r.Get(ctx, "users", fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatalf("get k%d: %v", i, err)
		}
		if got, want := string(e.Value), fmt.Sprintf("v%d", i); got != want {
			t.Fatalf("get k%d = %q, want %q", i, got, want)
		}
	}
	// First writes of partitions commit "written" marks: newer versions,
	// which the client picks up from X-Routing-Version.
	waitRoutedVersion(t, c, r, c.Members[0].Node())

	if got := routedSum(ms, func(m *routedMember) int64 { return m.keyReqs.Load() }); got < 2*n {
		t.Errorf("%d key requests reached the members, want at least %d", got, 2*n)
	}
	if got := routedSum(ms, func(m *routedMember) int64 { return m.notPrimary.Load() }); got != 0 {
		t.Errorf("%d key requests reached a member that is not the key's primary", got)
	}
	for _, m := range ms {
		if m.keyReqs.Load() == 0 {
			t.Errorf("%s got no key request", m.m.Name)
		}
	}

	// Every operation, routed.
	if v, _, err := r.Incr(ctx, "counters", "hits", 2); err != nil || v != 2 {
		t.Fatalf("incr = %d, %v", v, err)
	}
	if v, _, err := r.Incr(ctx, "counters", "hits", -5); err != nil || v != -3 {
		t.Fatalf("incr = %d, %v", v, err)
	}
	if f, _, err := r.IncrByFloat(ctx, "counters", "ratio", 1.5); err != nil || f != 1.5 {
		t.Fatalf("incrbyfloat = %v, %v", f, err)
	}
	if ok, err := r.Expire(ctx, "users", "k1", time.Hour); err != nil || !ok {
		t.Fatalf("expire = %v, %v", ok, err)
	}
	if e, err := r.Get(ctx, "users", "k1"); err != nil || e.TTL <= 0 || e.TTL > time.Hour {
		t.Fatalf("get after expire = %+v, %v", e, err)
	}
	prev, _, err := r.GetPut(ctx, "users", "k2", []byte(`{"x":1}`))
	if err != nil || prev == nil || string(prev.Value) != "v2" {
		t.Fatalf("getput = %+v, %v", prev, err)
	}
	if e, err := r.Get(ctx, "users", "k2"); err != nil || string(e.Value) != `{"x":1}` || !e.JSON {
		t.Fatalf("get after getput = %+v, %v", e, err)
	}
	if _, err := r.PutJSON(ctx, "users", "k3", map[string]int{"age": 30}); err != nil {
		t.Fatal(err)
	}
	tok, err := r.Lock(ctx, "locks", "job", time.Minute, 0)
	if err != nil || tok == 0 {
		t.Fatalf("lock = %d, %v", tok, err)
	}
	if _, err := r.Lock(ctx, "locks", "job", time.Minute, 0); !client.IsCode(err, client.CodeLocked) {
		t.Fatalf("second lock = %v, want code locked", err)
	}
	if err := r.Lease(ctx, "locks", "job", tok, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(ctx, "locks", "job", tok); err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(ctx, "locks", "job", tok); !client.IsCode(err, client.CodeNoSuchLock) {
		t.Fatalf("second unlock = %v, want no_such_lock", err)
	}
	if tok2, err := r.Lock(ctx, "locks", "job", time.Minute, 0); err != nil || tok2 <= tok {
		t.Fatalf("relock = %d, %v; want a token above %d", tok2, err, tok)
	}
	if ok, err := r.Delete(ctx, "users", "k0"); err != nil || !ok {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	// A final answer is not retried: one request, an *APIError.
	before := routedSum(ms, func(m *routedMember) int64 { return m.keyReqs.Load() })
	_, err = r.Get(ctx, "users", "k0")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != client.CodeNotFound {
		t.Fatalf("get of a deleted key = %v, want 404 not_found", err)
	}
	if got := routedSum(ms, func(m *routedMember) int64 { return m.keyReqs.Load() }) - before; got != 1 {
		t.Errorf("a 404 took %d requests, want 1", got)
	}
	keys := 0
	for k, err := range r.ScanAll(ctx, "users", "k*") {
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if !strings.HasPrefix(k, "k") {
			t.Fatalf("scan listed %q", k)
		}
		keys++
	}
	if keys != n-1 {
		t.Errorf("scan listed %d keys, want %d", keys, n-1)
	}
	if err := r.Destroy(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	page, cursor, err := r.Scan(ctx, "users", "", "", 1000)
	for err == nil && len(page) == 0 && cursor != "" {
		page, cursor, err = r.Scan(ctx, "users", "", cursor, 1000)
	}
	if err != nil || len(page) != 0 {
		t.Fatalf("scan after destroy = %v, %v", page, err)
	}

	for _, m := range ms {
		if n := m.writesNoID.Load(); n != 0 {
			t.Errorf("%s: %d writes without X-Request-Id", m.m.Name, n)
		}
		if n := m.readsWithID.Load(); n != 0 {
			t.Errorf("%s: %d reads with X-Request-Id", m.m.Name, n)
		}
		if n := m.serverErrors.Load(); n != 0 {
			t.Errorf("%s: %d answers 5xx other than 503", m.m.Name, n)
		}
	}
}

// TestRoutedFollowsJoin: a fourth member joins and takes partitions; the
// client keeps reading every key, catches up with the new table, and then
// sends the moved partitions' keys to the new member.
func TestRoutedFollowsJoin(t *testing.T) {
	c, ms := newRoutedCluster(t, 4, testcluster.Options{SeedBootstrap: true})
	for i := range 3 {
		c.Start(i)
		ms[i].serve(t)
	}
	c.WaitFor(routedConvergeTimeout, "three members", func() error {
		if n := len(c.Members[0].Node().Routing().AliveMembers()); n != 3 {
			return fmt.Errorf("%d alive", n)
		}
		return nil
	})
	c.WaitConverged(routedConvergeTimeout)
	r := newRoutedClient(t, ms[0].addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*routedConvergeTimeout)
	defer cancel()
	const n = 400
	for i := range n {
		if _, err := r.Put(ctx, "orders", fmt.Sprintf("o%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatalf("put o%d: %v", i, err)
		}
	}
	before := r.RoutingVersion()

	c.Start(3)
	ms[3].serve(t)
	tbl := c.WaitConverged(routedConvergeTimeout)
	if tbl.Loads()[c.Members[3].Name].Primaries == 0 {
		t.Fatalf("the new member leads no partition")
	}
	readAll := func() {
		t.Helper()
		for i := range n {
			e, err := r.Get(ctx, "orders", fmt.Sprintf("o%d", i))
			if err != nil {
				t.Fatalf("get o%d after the join: %v", i, err)
			}
			if got, want := string(e.Value), fmt.Sprintf("v%d", i); got != want {
				t.Fatalf("get o%d = %q, want %q", i, got, want)
			}
		}
	}
	readAll()
	waitRoutedVersion(t, c, r, c.Members[3].Node())
	if r.RoutingVersion() <= before {
		t.Fatalf("client still at routing version %d", before)
	}
	for _, m := range ms {
		m.resetCounts()
	}
	readAll()
	if got := ms[3].keyReqs.Load(); got == 0 {
		t.Errorf("no key request reached the new member")
	}
	if got := routedSum(ms, func(m *routedMember) int64 { return m.notPrimary.Load() }); got != 0 {
		t.Errorf("%d key requests reached a member that is not the key's primary", got)
	}
	for _, m := range ms {
		if n := m.serverErrors.Load(); n != 0 {
			t.Errorf("%s: %d answers 5xx other than 503", m.m.Name, n)
		}
	}
}

// TestRoutedAfterMemberKilled: a member dies (replicas=1, so what it led
// is lost). Keys led by the others are still read, through a refreshed
// table; written partitions of the dead member answer 503 unavailable;
// a never-written partition it led is placed afresh and takes writes.
func TestRoutedAfterMemberKilled(t *testing.T) {
	c, ms := newRoutedCluster(t, 3, testcluster.Options{Replicas: 1})
	c.StartAll()
	for _, m := range ms {
		m.serve(t)
	}
	tbl := c.WaitConverged(routedConvergeTimeout)
	leader := c.Leader(routedConvergeTimeout)
	victim := ms[(leader.Index+1)%3]
	// The victim is the first address: the client must do without it.
	r := newRoutedClient(t, victim.addr, ms[leader.Index].addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*routedConvergeTimeout)
	defer cancel()

	const n = 200
	written := map[uint32]bool{}
	var lost, kept []string
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if _, err := r.Put(ctx, "cache", key, []byte("v-"+key)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		p, _ := tbl.Locate("cache", key)
		written[p.ID] = true
		if p.Primary == victim.m.Name {
			lost = append(lost, key)
		} else {
			kept = append(kept, key)
		}
	}
	if len(lost) == 0 || len(kept) == 0 {
		t.Fatalf("%d keys on the victim, %d elsewhere", len(lost), len(kept))
	}
	// A key of a partition the victim leads that was never written.
	var fresh string
	var freshPart uint32
	for i := 0; fresh == ""; i++ {
		key := fmt.Sprintf("fresh%d", i)
		if p, _ := tbl.Locate("cache", key); p.Primary == victim.m.Name && !written[p.ID] {
			fresh, freshPart = key, p.ID
		}
	}

	c.Kill(victim.m.Index)
	victim.stop()
	survivor := leader.Node()
	c.WaitFor(routedConvergeTimeout, "the victim's partitions to be failed over or lost", func() error {
		t := survivor.Routing()
		for _, key := range lost {
			if p, _ := t.Locate("cache", key); p.State != metadata.PartitionUnavailable {
				return fmt.Errorf("partition %d of %s is %s (primary %s)", p.ID, key, p.State, p.Primary)
			}
		}
		if p, _ := t.Partition(freshPart); p.Primary == "" || p.Primary == victim.m.Name || p.State != metadata.PartitionActive {
			return fmt.Errorf("never-written partition %d: primary %q, %s", p.ID, p.Primary, p.State)
		}
		return nil
	})

	for _, key := range kept {
		e, err := r.Get(ctx, "cache", key)
		if err != nil {
			t.Fatalf("get %s after the kill: %v", key, err)
		}
		if string(e.Value) != "v-"+key {
			t.Fatalf("get %s = %q", key, e.Value)
		}
	}
	for _, key := range lost[:min(3, len(lost))] {
		_, err := r.Get(ctx, "cache", key)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != client.CodeUnavailable {
			t.Fatalf("get %s of a lost partition = %v, want 503 unavailable", key, err)
		}
	}
	if _, err := r.Put(ctx, "cache", fresh, []byte("new")); err != nil {
		t.Fatalf("put %s in a re-placed partition: %v", fresh, err)
	}
	if e, err := r.Get(ctx, "cache", fresh); err != nil || string(e.Value) != "new" {
		t.Fatalf("get %s = %+v, %v", fresh, e, err)
	}
	waitRoutedVersion(t, c, r, survivor)
	for _, m := range r.Routing().Members {
		if m.ID == string(victim.m.Name) && m.State != "failed" {
			t.Errorf("client's table has the victim %s", m.State)
		}
	}
}

// routedFake is a one-partition cluster behind httptest: its routing
// table names the members given, and each key request gets what answer
// returns.
type routedFake struct {
	srv     *httptest.Server
	version atomic.Uint64 // the routing version it serves and advertises

	mu       sync.Mutex
	primary  string                    // http_addr of partition 0's primary ("" = this server)
	extra    []client.Member           // further members listed
	ids      []string                  // X-Request-Id of every key request, in order
	routings int                       // GET /v1/cluster/routing served
	answer   func(n int) (int, string) // status and body of the n-th key request (1-based)
}

func newRoutedFake(t *testing.T) *routedFake {
	t.Helper()
	f := &routedFake{answer: func(int) (int, string) { return http.StatusOK, `{"value":1,"version":7}` }}
	f.version.Store(10)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *routedFake) addr() string { return f.srv.Listener.Addr().String() }

func (f *routedFake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Routing-Version", fmt.Sprint(f.version.Load()))
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/v1/cluster/routing" {
		f.routings++
		primary := "a"
		members := append([]client.Member{{ID: "a", State: "alive", HTTPAddr: f.addr()}}, f.extra...)
		if f.primary != "" {
			primary = "b"
			members = append(members, client.Member{ID: "b", State: "alive", HTTPAddr: f.primary})
		}
		_ = json.NewEncoder(w).Encode(client.Routing{
			RoutingVersion: f.version.Load(), PartitionCount: 1, Replicas: 1, Members: members,
			Partitions: []client.Partition{{ID: 0, Primary: primary, Backups: []string{}, State: "active"}},
		})
		return
	}
	f.ids = append(f.ids, r.Header.Get("X-Request-Id"))
	status, body := f.answer(len(f.ids))
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (f *routedFake) snapshot() (ids []string, routings int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...), f.routings
}

func (f *routedFake) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

const routedBusyBody = `{"error":{"code":"timeout","message":"put: timed out (the write may or may not have happened)"}}`

func newRoutedFakeClient(t *testing.T, addrs ...string) *client.Routed {
	t.Helper()
	r, err := client.NewRoutedConfig(client.RoutedConfig{
		Addresses: addrs, MaxAttempts: 4, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestRoutedRetriesWritesWithOneRequestID: a write answered 503 timeout is
// retried after a refresh with the same request id; a new call gets a new
// id; ContextWithRequestID's id is kept.
func TestRoutedRetriesWritesWithOneRequestID(t *testing.T) {
	f := newRoutedFake(t)
	f.set(func() {
		f.answer = func(n int) (int, string) {
			if n <= 2 {
				return http.StatusServiceUnavailable, routedBusyBody
			}
			return http.StatusOK, `{"value":1,"version":7}`
		}
	})
	r := newRoutedFakeClient(t, f.addr())
	ctx := context.Background()
	_, routingsBefore := f.snapshot()
	v, err := r.Put(ctx, "d", "k", []byte("x"))
	if err != nil || v != 7 {
		t.Fatalf("put = %d, %v", v, err)
	}
	ids, routings := f.snapshot()
	if len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("request ids %q: want three equal, non-empty", ids)
	}
	if routings-routingsBefore < 2 {
		t.Errorf("%d routing fetches for two 503s, want at least 2", routings-routingsBefore)
	}
	if _, _, err := r.Incr(ctx, "d", "k", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "d", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(client.ContextWithRequestID(ctx, "mine"), "d", "k", nil); err != nil {
		t.Fatal(err)
	}
	ids, _ = f.snapshot()
	if len(ids) != 6 || ids[3] == "" || ids[3] == ids[0] || ids[4] != "" || ids[5] != "mine" {
		t.Fatalf("request ids %q: want a new one for incr, none for get, then %q", ids, "mine")
	}
}

// TestRoutedGivesUp: retries are bounded; final answers are not retried;
// a canceled context stops at once.
func TestRoutedGivesUp(t *testing.T) {
	f := newRoutedFake(t)
	status := atomic.Int32{}
	status.Store(http.StatusServiceUnavailable)
	f.set(func() {
		f.answer = func(int) (int, string) {
			if status.Load() == http.StatusNotFound {
				return http.StatusNotFound, `{"error":{"code":"not_found","message":"no key"}}`
			}
			return http.StatusServiceUnavailable, `{"error":{"code":"unavailable","message":"no primary"}}`
		}
	})
	r := newRoutedFakeClient(t, f.addr())
	_, err := r.Get(context.Background(), "d", "k")
	if !client.IsCode(err, client.CodeUnavailable) || !strings.Contains(err.Error(), "4 attempts") {
		t.Fatalf("get = %v, want unavailable after 4 attempts", err)
	}
	if ids, _ := f.snapshot(); len(ids) != 4 {
		t.Errorf("%d attempts, want 4", len(ids))
	}

	status.Store(http.StatusNotFound)
	_, err = r.Get(context.Background(), "d", "k")
	if !client.IsCode(err, client.CodeNotFound) {
		t.Fatalf("get = %v, want not_found", err)
	}
	if ids, _ := f.snapshot(); len(ids) != 5 {
		t.Errorf("%d requests after a 404, want 5 (not retried)", len(ids))
	}

	status.Store(http.StatusServiceUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Put(ctx, "d", "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a canceled context = %v", err)
	}

	if _, err := r.Put(context.Background(), "", "k", nil); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("put with no dmap = %v", err)
	}
}

// TestRoutedRefreshesOnNewerVersion: an answer with a newer
// X-Routing-Version makes the client fetch the table again.
func TestRoutedRefreshesOnNewerVersion(t *testing.T) {
	f := newRoutedFake(t)
	r := newRoutedFakeClient(t, f.addr())
	if got := r.RoutingVersion(); got != 10 {
		t.Fatalf("version %d, want 10", got)
	}
	f.version.Store(11)
	if _, err := r.Get(context.Background(), "d", "k"); err != nil {
		t.Fatal(err)
	}
	if err := testcluster.Poll(5*time.Second, func() error {
		if got := r.RoutingVersion(); got != 11 {
			return fmt.Errorf("client at version %d, want 11", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRoutedUnreachablePrimary: the table names a primary that refuses
// connections; the client skips dead seed addresses, then goes through a
// live member (which would forward) instead of failing.
func TestRoutedUnreachablePrimary(t *testing.T) {
	dead := routedDeadAddr(t)
	f := newRoutedFake(t)
	f.set(func() { f.primary = dead })
	r := newRoutedFakeClient(t, dead, f.addr())
	v, err := r.Put(context.Background(), "d", "k", []byte("x"))
	if err != nil || v != 7 {
		t.Fatalf("put = %d, %v", v, err)
	}
	if ids, _ := f.snapshot(); len(ids) != 1 {
		t.Fatalf("the live member got %d requests, want 1", len(ids))
	}

	// A primary that answers 503 closed is avoided the same way.
	closing := newRoutedFake(t)
	closing.set(func() {
		closing.answer = func(int) (int, string) {
			return http.StatusServiceUnavailable, `{"error":{"code":"closed","message":"node: closed"}}`
		}
	})
	f.set(func() { f.primary = closing.addr() })
	f.version.Add(1) // a new table
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(context.Background(), "d", "k", []byte("y")); err != nil {
		t.Fatalf("put with a closing primary: %v", err)
	}
	if ids, _ := closing.snapshot(); len(ids) != 1 {
		t.Errorf("the closing primary got %d requests, want 1", len(ids))
	}
	if ids, _ := f.snapshot(); len(ids) != 2 {
		t.Errorf("the live member got %d requests, want 2", len(ids))
	}
}

// routedDeadAddr is a loopback address that refuses connections.
func routedDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRoutedNewAndClose(t *testing.T) {
	if _, err := client.NewRouted([]string{routedDeadAddr(t)}); err == nil {
		t.Fatal("NewRouted with no reachable member succeeded")
	}
	err := client.RoutedConfig{Addresses: []string{"ftp://x"}, MaxAttempts: -1, RefreshTimeout: -1}.Validate()
	for _, want := range []error{client.ErrInvalidAddress, client.ErrInvalidArgument} {
		if !errors.Is(err, want) {
			t.Errorf("Validate = %v, want %v", err, want)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "MaxAttempts") || !strings.Contains(err.Error(), "RefreshTimeout") {
		t.Errorf("Validate = %v: want every problem", err)
	}
	f := newRoutedFake(t)
	r := newRoutedFakeClient(t, f.addr())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(context.Background(), "d", "k"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("get after close = %v, want net.ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRoutedConcurrent: many goroutines share one client while the
// cluster's routing version keeps moving; refreshes are shared, not one
// per request.
func TestRoutedConcurrent(t *testing.T) {
	f := newRoutedFake(t)
	r := newRoutedFakeClient(t, f.addr())
	const workers, ops = 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				if i%10 == 0 {
					f.version.Add(1)
				}
				var err error
				if i%2 == 0 {
					_, err = r.Put(context.Background(), "d", fmt.Sprintf("w%d-%d", w, i), []byte("x"))
				} else {
					_, err = r.Get(context.Background(), "d", fmt.Sprintf("w%d-%d", w, i-1))
				}
				if err != nil {
					t.Errorf("worker %d op %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ids, routings := f.snapshot()
	if len(ids) != workers*ops {
		t.Errorf("%d key requests, want %d", len(ids), workers*ops)
	}
	if routings >= workers*ops/2 {
		t.Errorf("%d routing fetches for %d operations: refreshes are not shared", routings, workers*ops)
	}
	want := f.version.Load()
	if err := testcluster.Poll(5*time.Second, func() error {
		if _, err := r.Get(context.Background(), "d", "k"); err != nil {
			return err
		}
		if got := r.RoutingVersion(); got != want {
			return fmt.Errorf("client at version %d, want %d", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
