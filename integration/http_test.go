package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
)

// serveHTTP gives every member of c a real HTTP API on a loopback port
// (advertised in its config) and returns the addresses. Call before
// starting the members.
func serveHTTP(t *testing.T, c *testcluster.Cluster) []string {
	t.Helper()
	var addrs []string
	for _, m := range c.Members {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m.Cfg.HTTPAddr = l.Addr().String()
		addrs = append(addrs, m.Cfg.HTTPAddr)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := m.Node()
			if n == nil {
				http.Error(w, "member stopped", http.StatusServiceUnavailable)
				return
			}
			httpapi.New(n, httpapi.Options{}).ServeHTTP(w, r)
		}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return addrs
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("error = %v, want API error %q", err, code)
	}
}

// TestHTTPEveryOperationThroughANonOwner runs every DMap operation over the
// HTTP API of one member, on keys whose primary is another member (so each
// request is forwarded over the cluster RPC), and checks results and
// error codes as a client sees them.
func TestHTTPEveryOperationThroughANonOwner(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	addrs := serveHTTP(t, c)
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	entry := c.Members[0]
	cl, err := client.New(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	// A key led by another member.
	remote := func(prefix string) string {
		for i := 0; ; i++ {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if p, _ := tbl.Locate("shop", k); p.Primary != entry.Name && p.Primary != "" {
				return k
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()

	k := remote("item")
	v1, err := cl.Put(ctx, "shop", k, []byte(`{"qty":1}`), client.NX())
	if err != nil {
		t.Fatalf("put nx: %v", err)
	}
	_, err = cl.Put(ctx, "shop", k, []byte(`{"qty":2}`), client.NX())
	wantCode(t, err, "key_exists")
	_, err = cl.Put(ctx, "shop", remote("absent"), []byte(`1`), client.XX())
	wantCode(t, err, "not_found")
	_, err = cl.Put(ctx, "shop", k, []byte(`{"qty":3}`), client.IfVersion(v1+1))
	wantCode(t, err, "version_mismatch")
	v2, err := cl.Put(ctx, "shop", k, []byte(`{"qty":3}`), client.IfVersion(v1), client.WithTTL(time.Hour))
	if err != nil || v2 <= v1 {
		t.Fatalf("compare-and-set: v%d, %v (after v%d)", v2, err, v1)
	}
	e, err := cl.Get(ctx, "shop", k)
	if err != nil || string(e.Value) != `{"qty":3}` || e.Version != v2 || e.TTL <= 0 || e.TTL > time.Hour {
		t.Fatalf("get: %+v %v", e, err)
	}
	if found, err := cl.Expire(ctx, "shop", k, 0); err != nil || !found {
		t.Fatalf("persist: %v %v", found, err)
	}
	if e, _ := cl.Get(ctx, "shop", k); e == nil || e.TTL != 0 {
		t.Fatalf("ttl after persist: %+v", e)
	}
	prev, _, err := cl.GetPut(ctx, "shop", k, []byte(`"sold"`))
	if err != nil || prev == nil || string(prev.Value) != `{"qty":3}` {
		t.Fatalf("getput: %+v %v", prev, err)
	}

	ctr := remote("counter")
	for want := int64(1); want <= 3; want++ {
		if n, _, err := cl.Incr(ctx, "shop", ctr, 1); err != nil || n != want {
			t.Fatalf("incr: %d %v, want %d", n, err, want)
		}
	}
	_, _, err = cl.Incr(ctx, "shop", k, 1)
	wantCode(t, err, "not_a_number")
	if f, _, err := cl.IncrByFloat(ctx, "shop", remote("float"), 2.5); err != nil || f != 2.5 {
		t.Fatalf("incrbyfloat: %v %v", f, err)
	}

	lk := remote("lock")
	tok1, err := cl.Lock(ctx, "shop", lk, time.Minute, 0)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	_, err = cl.Lock(ctx, "shop", lk, time.Minute, 50*time.Millisecond)
	wantCode(t, err, "locked")
	if err := cl.Lease(ctx, "shop", lk, tok1, 2*time.Minute); err != nil {
		t.Fatalf("lease: %v", err)
	}
	wantCode(t, cl.Unlock(ctx, "shop", lk, tok1+1), "no_such_lock")
	if err := cl.Unlock(ctx, "shop", lk, tok1); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	tok2, err := cl.Lock(ctx, "shop", lk, time.Minute, 0)
	if err != nil || tok2 <= tok1 {
		t.Fatalf("second holder's token %d after %d: %v", tok2, tok1, err)
	}

	// Scan sees every key once, across members; delete and destroy.
	var keys []string
	cursor := ""
	for {
		page, next, err := cl.Scan(ctx, "shop", "*", cursor, 2)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		keys = append(keys, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(keys) != 3 { // item, counter, float (locks are not keys)
		t.Fatalf("scan: %v", keys)
	}
	if deleted, err := cl.Delete(ctx, "shop", k); err != nil || !deleted {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	_, err = cl.Get(ctx, "shop", k)
	wantCode(t, err, "not_found")
	if err := cl.Destroy(ctx, "shop"); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	_, err = cl.Get(ctx, "shop", ctr)
	wantCode(t, err, "not_found")
	if p, _ := tbl.Locate("shop", ctr); p.Primary == entry.Name || p.State != metadata.PartitionActive {
		t.Fatalf("test picked a local key")
	}
}
