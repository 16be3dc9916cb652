package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// newServer serves httpapi over fake, returning a client of it.
func newServer(t *testing.T, fake *httpapitest.Cluster, opts ...client.Option) (*client.Client, *httptest.Server) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := httptest.NewServer(httpapi.New(fake, httpapi.Options{Logger: logger}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func wantAPIError(t *testing.T, err error, status int, code string) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v (%T), want *APIError %d %s", err, err, status, code)
	}
	if ae.Status != status || ae.Code != code || ae.Message == "" {
		t.Errorf("got %+v, want %d %s with a message", ae, status, code)
	}
	if !client.IsCode(err, code) {
		t.Errorf("IsCode(%v, %q) false", err, code)
	}
	if status == 503 && (ae.RetryAfter != time.Second || !ae.Temporary()) {
		t.Errorf("503: RetryAfter %v, Temporary %v", ae.RetryAfter, ae.Temporary())
	}
	return ae
}

func TestNewAddress(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"127.0.0.1:3380", "http://127.0.0.1:3380"},
		{"http://127.0.0.1:3380", "http://127.0.0.1:3380"},
		{"http://127.0.0.1:3380/", "http://127.0.0.1:3380"},
		{"https://db.example/olric/", "https://db.example/olric"},
		{" localhost:1 ", "http://localhost:1"},
		{"[::1]:3380", "http://[::1]:3380"},
	} {
		c, err := client.New(tc.in)
		if err != nil || c.Address() != tc.want {
			t.Errorf("New(%q): %v, %v; want %q", tc.in, c, err, tc.want)
		}
	}
	for _, in := range []string{"", " ", "ftp://h:1", "http://", "http://:3380", "http://u:p@h:1", "http://h:1/?x=1", "http://h:1/#f", "http://h:1:2", "%zz"} {
		if _, err := client.New(in); !errors.Is(err, client.ErrInvalidAddress) {
			t.Errorf("New(%q): %v, want ErrInvalidAddress", in, err)
		}
	}
}

func TestRouting(t *testing.T) {
	fake := httpapitest.NewCluster(3, 11, 2)
	c, _ := newServer(t, fake)
	rt, err := c.Routing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := fake.Routing()
	if rt.RoutingVersion != want.Version || rt.PartitionCount != want.PartitionCount || rt.Replicas != want.Replicas ||
		len(rt.Members) != len(want.Members) || len(rt.Partitions) != len(want.Partitions) {
		t.Fatalf("got %+v", rt)
	}
	m := want.Members[1]
	if got := rt.Members[1]; got != (client.Member{ID: string(m.ID), State: "alive", Voter: m.Voter, Incarnation: m.Incarnation,
		ClusterAddr: m.ClusterAddr, GossipAddr: m.GossipAddr, HTTPAddr: m.HTTPAddr, RESPAddr: m.RESPAddr}) {
		t.Errorf("member 1: %+v", got)
	}
	for i, p := range want.Partitions {
		got := rt.Partitions[i]
		if got.ID != p.ID || got.Primary != string(p.Primary) || got.State != "active" || got.LeaderEpoch != p.LeaderEpoch ||
			len(got.Backups) != len(p.Backups) || got.Backups[0] != string(p.Backups[0]) {
			t.Errorf("partition %d: %+v, want %+v", i, got, p)
		}
	}
	loads := rt.Loads()
	for id, l := range want.Loads() {
		if loads[string(id)] != (client.Load{Primaries: l.Primaries, Backups: l.Backups}) {
			t.Errorf("load of %s: %+v, want %+v", id, loads[string(id)], l)
		}
	}
	if ids := rt.MemberIDs(); !slices.Equal(ids, []string{"node-1", "node-2", "node-3"}) {
		t.Errorf("MemberIDs %v", ids)
	}
}

func TestPartition(t *testing.T) {
	c, _ := newServer(t, httpapitest.NewCluster(3, 11, 2))
	rt, err := c.Partition(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Partitions) != 1 || rt.Partitions[0].ID != 10 || rt.PartitionCount != 11 || len(rt.Members) != 3 {
		t.Errorf("got %+v", rt)
	}
	_, err = c.Partition(context.Background(), 11)
	wantAPIError(t, err, 404, client.CodeNotFound)
}

func TestMembersLeaderStatus(t *testing.T) {
	fake := httpapitest.NewCluster(4, 8, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()

	ms, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := fake.Calls().Members
	if ms.RoutingVersion != 42 || len(ms.Members) != len(want) {
		t.Fatalf("members: %+v", ms)
	}
	for i, m := range ms.Members {
		w := want[i]
		if m.ID != string(w.ID) || m.State != w.StateName || m.Gossip != w.Gossip || m.RaftSuffrage != w.RaftSuffrage ||
			m.Leader != w.Leader || m.Primaries != w.Primaries || m.Backups != w.Backups || m.HTTPAddr != w.HTTPAddr {
			t.Errorf("member %d: %+v, want %+v", i, m, w)
		}
	}

	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.RoutingVersion != 42 || l.Leader != (client.LeaderInfo{ID: "node-1", ClusterAddr: "127.0.0.1:13331", HTTPAddr: "127.0.0.1:13390", Term: 3}) {
		t.Errorf("leader: %+v", l)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "node-1" || st.RaftState != "Leader" || st.Leader == nil || st.Leader.ID != "node-1" ||
		st.RoutingVersion != 42 || st.Members != 4 || st.UptimeSeconds != 12.5 {
		t.Errorf("status: %+v", st)
	}

	fake.Set(func(s *httpapitest.State) { s.HasLeader = false })
	_, err = c.Leader(ctx)
	wantAPIError(t, err, 503, client.CodeNoLeader)
}

func TestLocate(t *testing.T) {
	fake := httpapitest.NewCluster(3, 271, 3)
	c, _ := newServer(t, fake)
	for _, key := range []string{"alice", "a b&c=d", "☃", "/x?y#z"} {
		loc, err := c.Locate(context.Background(), "users", key)
		if err != nil {
			t.Fatal(err)
		}
		p := fake.Routing().Partitions[metadata.PartitionOf("users", key, 271)]
		if loc.Partition != p.ID || loc.Primary != string(p.Primary) || len(loc.Backups) != 2 ||
			loc.RoutingVersion != 42 || loc.LeaderEpoch != 1 || loc.State != "active" {
			t.Errorf("locate %q: %+v, want %+v", key, loc, p)
		}
	}
	_, err := c.Locate(context.Background(), "", "k")
	wantAPIError(t, err, 400, client.CodeBadRequest)
}

func TestReady(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, srv := newServer(t, fake)
	ok, err := c.Ready(context.Background())
	if !ok || err != nil {
		t.Errorf("ready: %v %v", ok, err)
	}
	fake.Set(func(s *httpapitest.State) { s.ReadyErr = node.ErrNoLeader })
	ok, err = c.Ready(context.Background())
	if ok || err != nil {
		t.Errorf("not ready: %v %v", ok, err)
	}
	srv.Close()
	ok, err = c.Ready(context.Background())
	if ok || err == nil {
		t.Errorf("server gone: %v %v", ok, err)
	}
}

func TestJoinLeaveRemove(t *testing.T) {
	fake := httpapitest.NewCluster(3, 3, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()

	n, err := c.Join(ctx, []string{"10.0.0.1:3322", "10.0.0.2:3322"})
	if err != nil || n != 2 {
		t.Errorf("join: %d %v", n, err)
	}
	if got := fake.Calls().Joins; len(got) != 1 || !slices.Equal(got[0], []string{"10.0.0.1:3322", "10.0.0.2:3322"}) {
		t.Errorf("joins: %v", got)
	}
	_, err = c.Join(ctx, []string{"nope"})
	wantAPIError(t, err, 400, client.CodeBadRequest)
	_, err = c.Join(ctx, nil)
	wantAPIError(t, err, 400, client.CodeBadRequest)
	fake.Set(func(s *httpapitest.State) { s.JoinErr = node.ErrJoinFailed })
	_, err = c.Join(ctx, []string{"a:1"})
	wantAPIError(t, err, 502, client.CodeJoinFailed)

	if err := c.Remove(ctx, "node-3"); err != nil {
		t.Errorf("remove: %v", err)
	}
	err = c.Remove(ctx, "a/b")
	wantAPIError(t, err, 400, client.CodeBadRequest)
	err = c.Remove(ctx, "x y")
	wantAPIError(t, err, 400, client.CodeBadRequest)
	if err := c.Remove(ctx, ""); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("remove empty: %v", err)
	}
	fake.Set(func(s *httpapitest.State) { s.RemoveErr = fmt.Errorf("%w: node-2", node.ErrMemberAlive) })
	wantAPIError(t, c.Remove(ctx, "node-2"), 409, client.CodeMemberAlive)
	if got := fake.Calls().Removed; !slices.Equal(got, []metadata.NodeID{"node-3", "node-2"}) {
		t.Errorf("removed: %v", got)
	}

	if err := c.Leave(ctx); err != nil {
		t.Errorf("leave: %v", err)
	}
	fake.Set(func(s *httpapitest.State) { s.LeaveErr = node.ErrTimeout })
	wantAPIError(t, c.Leave(ctx), 503, client.CodeTimeout)
	if got := fake.Calls().Leaves; got != 2 {
		t.Errorf("leaves: %d", got)
	}
}

func TestTimeout(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	fake.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, _ string) error {
			<-ctx.Done()
			return ctx.Err()
		}
	})
	c, _ := newServer(t, fake, client.WithTimeout(50*time.Millisecond))
	_, err := c.Join(context.Background(), []string{"a:1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
	// The caller's context applies too.
	c2, _ := newServer(t, fake, client.WithTimeout(0))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c2.Remove(ctx, "node-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
}

type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestWithHTTPClient(t *testing.T) {
	tr := &countingTransport{}
	c, _ := newServer(t, httpapitest.NewCluster(1, 1, 1), client.WithHTTPClient(&http.Client{Transport: tr}))
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 1 {
		t.Errorf("custom client used %d times", tr.n.Load())
	}
}

// TestPrefixAndForeignErrors: a base path prefix is kept, and an error
// answer that is not the API's (a proxy's) still becomes an *APIError.
func TestPrefixAndForeignErrors(t *testing.T) {
	api := httpapi.New(httpapitest.NewCluster(1, 1, 1), httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	mux.Handle("/olric/", http.StripPrefix("/olric", api))
	mux.HandleFunc("/bad/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	mux.HandleFunc("/garbage/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "not json")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c, _ := client.New(srv.URL + "/olric/")
	if st, err := c.Status(context.Background()); err != nil || st.NodeID != "node-1" {
		t.Errorf("prefixed status: %+v %v", st, err)
	}
	c, _ = client.New(srv.URL + "/bad")
	_, err := c.Status(context.Background())
	ae := wantAPIError(t, err, 502, client.CodeHTTP)
	if ae.RetryAfter != 7*time.Second || !bytes.Contains([]byte(ae.Message), []byte("upstream down")) {
		t.Errorf("foreign error: %+v", ae)
	}
	c, _ = client.New(srv.URL + "/garbage")
	if _, err := c.Status(context.Background()); !errors.Is(err, client.ErrUnexpectedResponse) {
		t.Errorf("garbage: %v", err)
	}
}

// TestTypesMirrorWire decodes every response of the API with unknown fields
// disallowed: the client's types hold every field the server sends.
func TestTypesMirrorWire(t *testing.T) {
	fake := httpapitest.NewCluster(3, 5, 2)
	fake.Set(func(s *httpapitest.State) {
		t := s.Table.Clone()
		t.Partitions[0].State, t.Partitions[0].HandoffTo = metadata.PartitionHandoff, "node-3"
		s.Table = t
	})
	_, srv := newServer(t, fake)
	for path, v := range map[string]any{
		"/v1/cluster/routing":             &client.Routing{},
		"/v1/cluster/members":             &client.Members{},
		"/v1/cluster/leader":              &client.Leader{},
		"/v1/cluster/locate?dmap=a&key=b": &client.Location{},
		"/v1/status":                      &client.Status{},
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: %v\n%s", path, err, body)
		}
		if reflect.ValueOf(v).Elem().IsZero() {
			t.Errorf("%s: decoded nothing", path)
		}
	}
}

// TestCodesMatchServer keeps the client's code constants equal to the
// server's.
func TestCodesMatchServer(t *testing.T) {
	pairs := [][2]string{
		{client.CodeBadRequest, httpapi.CodeBadRequest},
		{client.CodeNotFound, httpapi.CodeNotFound},
		{client.CodeMethodNotAllowed, httpapi.CodeMethodNotAllowed},
		{client.CodeMemberAlive, httpapi.CodeMemberAlive},
		{client.CodePartitionAvailable, httpapi.CodePartitionAvailable},
		{client.CodeTooLarge, httpapi.CodeTooLarge},
		{client.CodeInternal, httpapi.CodeInternal},
		{client.CodeJoinFailed, httpapi.CodeJoinFailed},
		{client.CodeNoLeader, httpapi.CodeNoLeader},
		{client.CodeNotReady, httpapi.CodeNotReady},
		{client.CodeNotLeader, httpapi.CodeNotLeader},
		{client.CodeTimeout, httpapi.CodeTimeout},
		{client.CodeLeaving, httpapi.CodeLeaving},
		{client.CodeClosed, httpapi.CodeClosed},
		{client.CodeUnavailable, httpapi.CodeUnavailable},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("client code %q != server code %q", p[0], p[1])
		}
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := client.New(addr)
	_, err = c.Members(context.Background())
	var ae *client.APIError
	if err == nil || errors.As(err, &ae) {
		t.Errorf("got %v, want a connection error", err)
	}
}

func TestForceAssign(t *testing.T) {
	fake := httpapitest.NewCluster(3, 8, 2)
	fake.LosePartitions(1, 3, 6) // version 43
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	api := httpapi.New(fake, httpapi.Options{Logger: logger})
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		r.Body = io.NopCloser(bytes.NewReader(b))
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	res, err := c.ForceAssign(ctx, []uint32{3}, "node-2")
	if err != nil || res.RoutingVersion != 44 || !slices.Equal(res.Partitions, []uint32{3}) {
		t.Errorf("force-assign 3: %+v %v", res, err)
	}
	res, err = c.ForceAssign(ctx, nil, "")
	if err != nil || res.RoutingVersion != 45 || !slices.Equal(res.Partitions, []uint32{1, 6}) {
		t.Errorf("force-assign all: %+v %v", res, err)
	}
	// An empty list is every unavailable partition too: none left.
	res, err = c.ForceAssign(ctx, []uint32{}, "")
	if err != nil || res.RoutingVersion != 45 || res.Partitions == nil || len(res.Partitions) != 0 {
		t.Errorf("force-assign with nothing unavailable: %+v %v", res, err)
	}
	wantBodies := []string{
		`POST /v1/cluster/partitions/force-assign application/json {"partitions":[3],"node":"node-2"}`,
		`POST /v1/cluster/partitions/force-assign application/json {}`,
		`POST /v1/cluster/partitions/force-assign application/json {}`,
	}
	if !slices.Equal(bodies, wantBodies) {
		t.Errorf("requests:\n%q\nwant\n%q", bodies, wantBodies)
	}
	if p := fake.Routing().Partitions[3]; p.Primary != "node-2" || p.State != metadata.PartitionActive {
		t.Errorf("partition 3: %+v", p)
	}

	fake.LosePartitions(5) // version 46
	_, err = c.ForceAssign(ctx, []uint32{5, 2}, "")
	ae := wantAPIError(t, err, 409, client.CodePartitionAvailable)
	if !bytes.Contains([]byte(ae.Message), []byte("partition 2")) {
		t.Errorf("message %q does not name the partition", ae.Message)
	}
	_, err = c.ForceAssign(ctx, []uint32{5}, "node-9")
	wantAPIError(t, err, 404, client.CodeNotFound)
	_, err = c.ForceAssign(ctx, []uint32{5}, "a/b")
	wantAPIError(t, err, 400, client.CodeBadRequest)
	_, err = c.ForceAssign(ctx, []uint32{8}, "")
	wantAPIError(t, err, 400, client.CodeBadRequest)
	_, err = c.ForceAssign(ctx, []uint32{5, 5}, "")
	wantAPIError(t, err, 400, client.CodeBadRequest)
	fake.Set(func(s *httpapitest.State) { s.ForceAssignErr = fmt.Errorf("%w: election", node.ErrNoLeader) })
	_, err = c.ForceAssign(ctx, nil, "")
	wantAPIError(t, err, 503, client.CodeNoLeader)
	if fake.Routing().Partitions[5].State != metadata.PartitionUnavailable {
		t.Errorf("a refused force-assign changed partition 5")
	}
}

// TestForceAssignWire decodes the force-assign answer with unknown fields
// disallowed, like TestTypesMirrorWire.
func TestForceAssignWire(t *testing.T) {
	fake := httpapitest.NewCluster(3, 5, 2)
	fake.LosePartitions(0, 4)
	_, srv := newServer(t, fake)
	resp, err := http.Post(srv.URL+"/v1/cluster/partitions/force-assign", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var res client.ForceAssignResult
	if err := dec.Decode(&res); err != nil || res.RoutingVersion != 44 || !slices.Equal(res.Partitions, []uint32{0, 4}) {
		t.Errorf("%v %+v\n%s", err, res, body)
	}
}
