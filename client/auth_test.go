package client_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/client"
)

const (
	readToken  = "read-token-aaaaaaaaaaaa"
	writeToken = "write-token-bbbbbbbbbbbb"
	adminToken = "admin-token-cccccccccccc"
)

// newAuthServer serves the API of fake with authentication on, counting
// the requests that arrive without a Bearer header.
func newAuthServer(t *testing.T, fake *httpapitest.Cluster) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	store, err := auth.Parse("tokens", []byte("read "+readToken+"\nwrite "+writeToken+"\nadmin "+adminToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	api := httpapi.New(fake, httpapi.Options{Logger: logger, Auth: store})
	var bare atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			bare.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &bare
}

func TestWithToken(t *testing.T) {
	fake := httpapitest.NewCluster(3, 3, 1)
	srv, _ := newAuthServer(t, fake)
	ctx := context.Background()
	newClient := func(opts ...client.Option) *client.Client {
		c, err := client.New(srv.URL, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	_, err := newClient().Status(ctx)
	ae := wantAPIError(t, err, http.StatusUnauthorized, client.CodeUnauthorized)
	if ae.Temporary() {
		t.Error("401 is temporary")
	}
	_, err = newClient(client.WithToken("not-a-token-at-all")).Get(ctx, "d", "k")
	wantAPIError(t, err, http.StatusUnauthorized, client.CodeUnauthorized)

	reader := newClient(client.WithToken(readToken))
	if _, err := reader.Status(ctx); err != nil {
		t.Fatalf("status with a read token: %v", err)
	}
	_, err = reader.Put(ctx, "d", "k", []byte("1"))
	ae = wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden)
	if !strings.Contains(ae.Message, "this token's role is read") || !strings.Contains(ae.Message, "needs write") {
		t.Errorf("403 message %q", ae.Message)
	}
	if strings.Contains(err.Error(), readToken) {
		t.Errorf("error %q contains the token", err)
	}

	writer := newClient(client.WithToken(writeToken))
	if _, err := writer.Put(ctx, "d", "k", []byte("1")); err != nil {
		t.Fatalf("put with a write token: %v", err)
	}
	if e, err := reader.Get(ctx, "d", "k"); err != nil || string(e.Value) != "1" {
		t.Fatalf("get with a read token: %v %v", e, err)
	}
	wantAPIError(t, writer.Remove(ctx, "node-3"), http.StatusForbidden, client.CodeForbidden)
	wantAPIError(t, writer.Destroy(ctx, "d"), http.StatusForbidden, client.CodeForbidden)

	admin := newClient(client.WithToken(adminToken))
	if err := admin.Remove(ctx, "node-3"); err != nil {
		t.Fatalf("remove with an admin token: %v", err)
	}
	if err := admin.Destroy(ctx, "d"); err != nil {
		t.Fatalf("destroy with an admin token: %v", err)
	}
	// The probes need no token.
	if ok, err := newClient().Ready(ctx); !ok || err != nil {
		t.Errorf("ready without a token: %v %v", ok, err)
	}
}

// TestRoutedWithToken: the routing-aware client sends the token to the
// seed (routing table) and to every member it routes to.
func TestRoutedWithToken(t *testing.T) {
	fake := httpapitest.NewCluster(1, 3, 1)
	srv, bare := newAuthServer(t, fake)
	addr := strings.TrimPrefix(srv.URL, "http://")
	fake.Set(func(s *httpapitest.State) {
		tb := s.Table.Clone()
		tb.Members[0].HTTPAddr = addr // keys route back to this server
		s.Table = tb
	})
	ctx := context.Background()

	if _, err := client.NewRouted([]string{srv.URL}); !client.IsCode(err, client.CodeUnauthorized) {
		t.Fatalf("NewRouted without a token: %v", err)
	}
	before := bare.Load()
	r, err := client.NewRouted([]string{srv.URL}, client.WithToken(writeToken))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := r.Put(ctx, "m", k, []byte(`"v"`)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		if e, err := r.Get(ctx, "m", k); err != nil || string(e.Value) != `"v"` {
			t.Fatalf("get %s: %v %v", k, e, err)
		}
	}
	if err := r.Destroy(ctx, "m"); !client.IsCode(err, client.CodeForbidden) {
		t.Errorf("destroy with a write token: %v", err)
	}
	if n := bare.Load() - before; n != 0 {
		t.Errorf("%d requests without the token", n)
	}
	if fake.Calls().DataCalls < 8 {
		t.Errorf("data calls: %d", fake.Calls().DataCalls)
	}
}
