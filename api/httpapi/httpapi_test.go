package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// testLogger routes logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// response is a decoded answer of the handler.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// errorCode returns body.error.code, or "".
func (r response) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func serve(t testing.TB, h http.Handler, method, target string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, target, ct)
	}
	if _, err := strconv.ParseUint(res.header.Get(httpapi.HeaderRoutingVersion), 10, 64); err != nil {
		t.Errorf("%s %s: %s header %q: %v", method, target, httpapi.HeaderRoutingVersion, res.header.Get(httpapi.HeaderRoutingVersion), err)
	}
	if method != http.MethodHead {
		if err := json.Unmarshal(res.raw, &res.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, target, res.raw, err)
		}
	}
	if res.status == http.StatusServiceUnavailable && res.header.Get("Retry-After") != "1" {
		t.Errorf("%s %s: 503 without Retry-After: 1", method, target)
	}
	return res
}

func newHandler(t testing.TB, c *httpapitest.Cluster, opts httpapi.Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	return httpapi.New(c, opts)
}

func keys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func wantKeys(t *testing.T, what string, v any, want ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: got %T (%v), want a JSON object", what, v, v)
	}
	slices.Sort(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s keys:\n got %v\nwant %v", what, got, want)
	}
	return m
}

func wantStatus(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.errorCode() != code {
		t.Errorf("got %d %q (%s), want %d %q", r.status, r.errorCode(), r.raw, status, code)
	}
	if code != "" {
		wantKeys(t, "error body", r.body, "error")
		e := wantKeys(t, "error", r.body["error"], "code", "message")
		if msg, _ := e["message"].(string); msg == "" {
			t.Errorf("empty error message")
		}
	}
}

var memberKeys = []string{"id", "state", "voter", "incarnation", "cluster_addr", "gossip_addr", "http_addr", "resp_addr"}

func TestRouting(t *testing.T) {
	c := httpapitest.NewCluster(3, 7, 2)
	c.Set(func(s *httpapitest.State) {
		// One partition in handoff, to see handoff_to.
		t := s.Table.Clone()
		p := &t.Partitions[3]
		p.State, p.HandoffTo = metadata.PartitionHandoff, otherThan(t, p)
		s.Table = t
	})
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/routing", "")
	wantStatus(t, r, 200, "")
	if got := r.header.Get(httpapi.HeaderRoutingVersion); got != "42" {
		t.Errorf("X-Routing-Version %q, want 42", got)
	}
	wantKeys(t, "routing", r.body, "routing_version", "partition_count", "replicas", "members", "partitions")
	if r.body["routing_version"] != 42.0 || r.body["partition_count"] != 7.0 || r.body["replicas"] != 2.0 {
		t.Errorf("header fields: %s", r.raw)
	}
	members := r.body["members"].([]any)
	if len(members) != 3 {
		t.Fatalf("%d members, want 3", len(members))
	}
	m0 := wantKeys(t, "member", members[0], memberKeys...)
	if m0["id"] != "node-1" || m0["state"] != "alive" || m0["voter"] != true || m0["incarnation"] != "inc1" {
		t.Errorf("member 0: %v", m0)
	}
	parts := r.body["partitions"].([]any)
	if len(parts) != 7 {
		t.Fatalf("%d partitions, want 7", len(parts))
	}
	for i, p := range parts {
		want := []string{"id", "primary", "backups", "state", "leader_epoch"}
		if i == 3 {
			want = append(want, "handoff_to")
		}
		pm := wantKeys(t, fmt.Sprintf("partition %d", i), p, want...)
		if pm["id"] != float64(i) {
			t.Errorf("partition %d: id %v", i, pm["id"])
		}
		if _, ok := pm["backups"].([]any); !ok {
			t.Errorf("partition %d: backups %v is not an array", i, pm["backups"])
		}
	}
	p3 := parts[3].(map[string]any)
	if p3["state"] != "handoff" || p3["handoff_to"] == "" {
		t.Errorf("partition 3: %v", p3)
	}
	if p0 := parts[0].(map[string]any); p0["state"] != "active" || p0["primary"] != "node-1" || p0["leader_epoch"] != 1.0 {
		t.Errorf("partition 0: %v", p0)
	}
}

func otherThan(t *metadata.RoutingTable, p *metadata.Partition) metadata.NodeID {
	for _, m := range t.Members {
		if !p.Holds(m.ID) {
			return m.ID
		}
	}
	panic("no free member")
}

func TestRoutingBackupsNeverNull(t *testing.T) {
	c := httpapitest.NewCluster(1, 3, 1) // one replica: no backups
	h := newHandler(t, c, httpapi.Options{})
	for _, target := range []string{"/v1/cluster/routing", "/v1/cluster/routing?partition=1"} {
		r := serve(t, h, "GET", target, "")
		if !bytes.Contains(r.raw, []byte(`"backups":[]`)) || bytes.Contains(r.raw, []byte("null")) {
			t.Errorf("%s: %s", target, r.raw)
		}
	}
	r := serve(t, h, "GET", "/v1/cluster/locate?dmap=d&key=k", "")
	if !bytes.Contains(r.raw, []byte(`"backups":[]`)) {
		t.Errorf("locate: %s", r.raw)
	}
}

func TestRoutingEmptyTable(t *testing.T) {
	c := httpapitest.NewCluster(1, 1, 1)
	c.Set(func(s *httpapitest.State) { s.Table = nil; s.Members = nil })
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/routing", "")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":0,"partition_count":0,"replicas":0,"members":[],"partitions":[]}`+"\n" {
		t.Errorf("got %s", r.raw)
	}
	wantStatus(t, serve(t, h, "GET", "/v1/cluster/routing?partition=0", ""), 503, httpapi.CodeUnavailable)
	r = serve(t, h, "GET", "/v1/cluster/members", "")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":0,"members":[]}`+"\n" {
		t.Errorf("members: %s", r.raw)
	}
	wantStatus(t, serve(t, h, "GET", "/v1/cluster/locate?dmap=a&key=b", ""), 503, httpapi.CodeUnavailable)
}

func TestRoutingPartition(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(3, 10, 3), httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/routing?partition=4", "")
	wantStatus(t, r, 200, "")
	wantKeys(t, "routing", r.body, "routing_version", "partition_count", "replicas", "members", "partitions")
	parts := r.body["partitions"].([]any)
	if len(parts) != 1 {
		t.Fatalf("got %d partitions, want 1", len(parts))
	}
	p := wantKeys(t, "partition", parts[0], "id", "primary", "backups", "state", "leader_epoch")
	if p["id"] != 4.0 || len(p["backups"].([]any)) != 2 {
		t.Errorf("partition: %v", p)
	}
	if r.body["partition_count"] != 10.0 || len(r.body["members"].([]any)) != 3 {
		t.Errorf("summary fields: %s", r.raw)
	}

	for _, tc := range []struct {
		query  string
		status int
		code   string
	}{
		{"partition=9", 200, ""},
		{"partition=10", 404, httpapi.CodeNotFound},
		{"partition=4294967295", 404, httpapi.CodeNotFound},
		{"partition=99999999999999999999", 404, httpapi.CodeNotFound},
		{"partition=-1", 400, httpapi.CodeBadRequest},
		{"partition=abc", 400, httpapi.CodeBadRequest},
		{"partition=", 400, httpapi.CodeBadRequest},
		{"partition=1.5", 400, httpapi.CodeBadRequest},
		{"partition=%zz", 400, httpapi.CodeBadRequest},
		{"partition=+1", 400, httpapi.CodeBadRequest},
	} {
		t.Run(tc.query, func(t *testing.T) {
			wantStatus(t, serve(t, h, "GET", "/v1/cluster/routing?"+tc.query, ""), tc.status, tc.code)
		})
	}
}

func TestMembers(t *testing.T) {
	c := httpapitest.NewCluster(4, 8, 2)
	c.Set(func(s *httpapitest.State) { s.Members[3].StateName = "" }) // the API fills it in
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/members", "")
	wantStatus(t, r, 200, "")
	wantKeys(t, "members", r.body, "routing_version", "members")
	ms := r.body["members"].([]any)
	if len(ms) != 4 {
		t.Fatalf("%d members", len(ms))
	}
	for i, m := range ms {
		mm := wantKeys(t, "member", m, append(slices.Clone(memberKeys), "gossip", "raft_suffrage", "leader", "primaries", "backups")...)
		if mm["state"] != "alive" {
			t.Errorf("member %d: state %v", i, mm["state"])
		}
	}
	m0 := ms[0].(map[string]any)
	if m0["leader"] != true || m0["raft_suffrage"] != "voter" || m0["gossip"] != "alive" || m0["primaries"] != 2.0 {
		t.Errorf("member 0: %v", m0)
	}
}

func TestLeader(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/leader", "")
	wantStatus(t, r, 200, "")
	wantKeys(t, "leader response", r.body, "routing_version", "leader")
	l := wantKeys(t, "leader", r.body["leader"], "id", "cluster_addr", "http_addr", "term")
	if l["id"] != "node-1" || l["term"] != 3.0 || r.body["routing_version"] != 42.0 {
		t.Errorf("leader: %s", r.raw)
	}

	c.Set(func(s *httpapitest.State) { s.HasLeader = false })
	wantStatus(t, serve(t, h, "GET", "/v1/cluster/leader", ""), 503, httpapi.CodeNoLeader)
}

func TestLocate(t *testing.T) {
	c := httpapitest.NewCluster(3, 271, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/locate?dmap=users&key=alice", "")
	wantStatus(t, r, 200, "")
	wantKeys(t, "locate", r.body, "partition", "primary", "backups", "routing_version", "leader_epoch", "state")
	want := c.Routing().Partitions[metadata.PartitionOf("users", "alice", 271)]
	if r.body["partition"] != float64(want.ID) || r.body["primary"] != string(want.Primary) ||
		r.body["state"] != "active" || r.body["routing_version"] != 42.0 || r.body["leader_epoch"] != 1.0 {
		t.Errorf("locate: %s, want partition %+v", r.raw, want)
	}
	// Keys are arbitrary text: escaping round-trips.
	r = serve(t, h, "GET", "/v1/cluster/locate?dmap=a%2Fb&key=%E2%98%83%20%26x", "")
	if p := metadata.PartitionOf("a/b", "☃ &x", 271); r.body["partition"] != float64(p) {
		t.Errorf("escaped locate: %s, want partition %d", r.raw, p)
	}

	for _, q := range []string{"", "?dmap=a", "?key=b", "?dmap=&key=b", "?dmap=a&key=", "?dmap=a&key=%zz"} {
		t.Run(q, func(t *testing.T) {
			wantStatus(t, serve(t, h, "GET", "/v1/cluster/locate"+q, ""), 400, httpapi.CodeBadRequest)
		})
	}
}

func TestStatus(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/status", "")
	wantStatus(t, r, 200, "")
	var want map[string]any
	b, _ := json.Marshal(c.Status())
	_ = json.Unmarshal(b, &want)
	wantKeys(t, "status", r.body, keys(want)...)
	if r.body["node_id"] != "node-1" || r.body["raft_state"] != "Leader" || r.body["routing_version"] != 42.0 {
		t.Errorf("status: %s", r.raw)
	}
	wantKeys(t, "status.leader", r.body["leader"], "id", "cluster_addr", "http_addr", "term")
	if v, ok := r.body["unavailable_partitions"]; !ok || v != 0.0 {
		t.Errorf("unavailable_partitions: %v (present %v)", v, ok)
	}

	c.LosePartitions(0, 2)
	r = serve(t, h, "GET", "/v1/status", "")
	if r.body["unavailable_partitions"] != 2.0 || r.body["routing_version"] != 43.0 || r.header.Get(httpapi.HeaderRoutingVersion) != "43" {
		t.Errorf("status after losing 2 partitions: %s", r.raw)
	}
}

func TestHealthAndReady(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/healthz", "")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"status":"ok"}`+"\n" {
		t.Errorf("healthz: %s", r.raw)
	}
	r = serve(t, h, "GET", "/readyz", "")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"ready":true,"routing_version":42}`+"\n" {
		t.Errorf("readyz: %s", r.raw)
	}

	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("%w: catching up", node.ErrNotReady), httpapi.CodeNotReady},
		{node.ErrNoLeader, httpapi.CodeNoLeader},
		{node.ErrClosed, httpapi.CodeClosed},
		{node.ErrLeaving, httpapi.CodeLeaving},
		{context.DeadlineExceeded, httpapi.CodeNotReady},
		{fmt.Errorf("%w: %w", node.ErrNotReady, context.DeadlineExceeded), httpapi.CodeNotReady},
		{errors.New("something odd"), httpapi.CodeNotReady}, // not ready is never a 500
	} {
		t.Run(tc.code, func(t *testing.T) {
			c.Set(func(s *httpapitest.State) { s.ReadyErr = tc.err })
			r := serve(t, h, "GET", "/readyz", "")
			if r.status != 503 || r.errorCode() != tc.code || r.body["ready"] != false || r.body["routing_version"] != 42.0 {
				t.Errorf("got %d %s", r.status, r.raw)
			}
		})
	}
}

func TestReadyzBoundsReady(t *testing.T) {
	c := httpapitest.NewCluster(1, 1, 1)
	c.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, _ string) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("Ready called without a deadline")
			}
			<-ctx.Done() // the handler's ~2s budget
			return fmt.Errorf("%w: %w", node.ErrNotReady, ctx.Err())
		}
	})
	r := serve(t, newHandler(t, c, httpapi.Options{}), "GET", "/readyz", "")
	if r.status != 503 || r.errorCode() != httpapi.CodeNotReady {
		t.Errorf("got %d %s", r.status, r.raw)
	}
}

func TestJoin(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "POST", "/v1/cluster/join", `{"addrs":["10.0.0.1:3322","node-b.example:3322","[::1]:3322"]}`)
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"joined":3}`+"\n" {
		t.Errorf("join: %s", r.raw)
	}
	if got := c.Calls().Joins; len(got) != 1 || !slices.Equal(got[0], []string{"10.0.0.1:3322", "node-b.example:3322", "[::1]:3322"}) {
		t.Errorf("joins recorded: %v", got)
	}
	c.Set(func(s *httpapitest.State) { s.JoinCount = 1 })
	r = serve(t, h, "POST", "/v1/cluster/join", ` {"addrs":["a:1","b:2"]} `+"\n")
	if r.status != 200 || r.body["joined"] != 1.0 {
		t.Errorf("partial join: %d %s", r.status, r.raw)
	}
}

func TestBadInput(t *testing.T) {
	const fa = "/v1/cluster/partitions/force-assign"
	big := `{"addrs":["` + strings.Repeat("a", 2<<20) + `:1"]}`
	many := `{"addrs":[` + strings.Repeat(`"a:1",`, 256) + `"a:1"]}`
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		code                       string
	}{
		{"join empty body", "POST", "/v1/cluster/join", "", 400, httpapi.CodeBadRequest},
		{"join blank body", "POST", "/v1/cluster/join", " \n\t", 400, httpapi.CodeBadRequest},
		{"join malformed", "POST", "/v1/cluster/join", `{"addrs":[`, 400, httpapi.CodeBadRequest},
		{"join syntax", "POST", "/v1/cluster/join", `{"addrs" "a:1"}`, 400, httpapi.CodeBadRequest},
		{"join unknown field", "POST", "/v1/cluster/join", `{"addrs":["a:1"],"force":true}`, 400, httpapi.CodeBadRequest},
		{"join wrong type", "POST", "/v1/cluster/join", `{"addrs":"a:1"}`, 400, httpapi.CodeBadRequest},
		{"join wrong elem type", "POST", "/v1/cluster/join", `{"addrs":[1]}`, 400, httpapi.CodeBadRequest},
		{"join array body", "POST", "/v1/cluster/join", `["a:1"]`, 400, httpapi.CodeBadRequest},
		{"join string body", "POST", "/v1/cluster/join", `"a:1"`, 400, httpapi.CodeBadRequest},
		{"join null", "POST", "/v1/cluster/join", `null`, 400, httpapi.CodeBadRequest},
		{"join null addrs", "POST", "/v1/cluster/join", `{"addrs":null}`, 400, httpapi.CodeBadRequest},
		{"join empty addrs", "POST", "/v1/cluster/join", `{"addrs":[]}`, 400, httpapi.CodeBadRequest},
		{"join null addr", "POST", "/v1/cluster/join", `{"addrs":[null]}`, 400, httpapi.CodeBadRequest},
		{"join no port", "POST", "/v1/cluster/join", `{"addrs":["10.0.0.1"]}`, 400, httpapi.CodeBadRequest},
		{"join no host", "POST", "/v1/cluster/join", `{"addrs":[":3322"]}`, 400, httpapi.CodeBadRequest},
		{"join port 0", "POST", "/v1/cluster/join", `{"addrs":["a:0"]}`, 400, httpapi.CodeBadRequest},
		{"join port big", "POST", "/v1/cluster/join", `{"addrs":["a:65536"]}`, 400, httpapi.CodeBadRequest},
		{"join port name", "POST", "/v1/cluster/join", `{"addrs":["a:http"]}`, 400, httpapi.CodeBadRequest},
		{"join space host", "POST", "/v1/cluster/join", `{"addrs":["a b:1"]}`, 400, httpapi.CodeBadRequest},
		{"join trailing data", "POST", "/v1/cluster/join", `{"addrs":["a:1"]} {}`, 400, httpapi.CodeBadRequest},
		{"join too many", "POST", "/v1/cluster/join", many, 400, httpapi.CodeBadRequest},
		{"join too large", "POST", "/v1/cluster/join", big, 413, httpapi.CodeTooLarge},
		{"join invalid utf8", "POST", "/v1/cluster/join", "{\"addrs\":[\"\xff:1\"]}", 200, ""},
		{"leave unknown field", "POST", "/v1/cluster/leave", `{"now":true}`, 400, httpapi.CodeBadRequest},
		{"leave malformed", "POST", "/v1/cluster/leave", `{`, 400, httpapi.CodeBadRequest},
		{"leave array", "POST", "/v1/cluster/leave", `[]`, 400, httpapi.CodeBadRequest},
		{"leave too large", "POST", "/v1/cluster/leave", big, 413, httpapi.CodeTooLarge},
		{"remove bad id", "DELETE", "/v1/cluster/members/bad%20id", "", 400, httpapi.CodeBadRequest},
		{"remove slash id", "DELETE", "/v1/cluster/members/a%2Fb", "", 400, httpapi.CodeBadRequest},
		{"remove long id", "DELETE", "/v1/cluster/members/" + strings.Repeat("x", 129), "", 400, httpapi.CodeBadRequest},
		{"remove empty id", "DELETE", "/v1/cluster/members/", "", 404, httpapi.CodeNotFound},
		{"force empty body", "POST", fa, "", 400, httpapi.CodeBadRequest},
		{"force malformed", "POST", fa, `{"partitions":[1`, 400, httpapi.CodeBadRequest},
		{"force unknown field", "POST", fa, `{"partitions":[1],"owner":"node-2"}`, 400, httpapi.CodeBadRequest},
		{"force trailing data", "POST", fa, `{} {}`, 400, httpapi.CodeBadRequest},
		{"force array body", "POST", fa, `[1]`, 400, httpapi.CodeBadRequest},
		{"force null body", "POST", fa, `null`, 400, httpapi.CodeBadRequest},
		{"force partitions not list", "POST", fa, `{"partitions":1}`, 400, httpapi.CodeBadRequest},
		{"force partitions string", "POST", fa, `{"partitions":["1"]}`, 400, httpapi.CodeBadRequest},
		{"force partitions object", "POST", fa, `{"partitions":[{}]}`, 400, httpapi.CodeBadRequest},
		{"force partition negative", "POST", fa, `{"partitions":[-1]}`, 400, httpapi.CodeBadRequest},
		{"force partition fraction", "POST", fa, `{"partitions":[1.5]}`, 400, httpapi.CodeBadRequest},
		{"force partition exponent", "POST", fa, `{"partitions":[1e2]}`, 400, httpapi.CodeBadRequest},
		{"force partition huge", "POST", fa, `{"partitions":[4294967296]}`, 400, httpapi.CodeBadRequest},
		{"force partition enormous", "POST", fa, `{"partitions":[99999999999999999999999]}`, 400, httpapi.CodeBadRequest},
		{"force partition max uint32", "POST", fa, `{"partitions":[4294967295]}`, 400, httpapi.CodeBadRequest},
		{"force partition out of range", "POST", fa, `{"partitions":[3]}`, 400, httpapi.CodeBadRequest},
		{"force partition null", "POST", fa, `{"partitions":[null]}`, 400, httpapi.CodeBadRequest},
		{"force partition duplicate", "POST", fa, `{"partitions":[1,2,1]}`, 400, httpapi.CodeBadRequest},
		{"force partitions empty", "POST", fa, `{"partitions":[]}`, 400, httpapi.CodeBadRequest},
		{"force partitions too many", "POST", fa, `{"partitions":[0,1,2,0]}`, 400, httpapi.CodeBadRequest},
		{"force node not string", "POST", fa, `{"node":7}`, 400, httpapi.CodeBadRequest},
		{"force node list", "POST", fa, `{"node":["node-2"]}`, 400, httpapi.CodeBadRequest},
		{"force node space", "POST", fa, `{"node":"node 2"}`, 400, httpapi.CodeBadRequest},
		{"force node slash", "POST", fa, `{"node":"a/b"}`, 400, httpapi.CodeBadRequest},
		{"force node long", "POST", fa, `{"node":"` + strings.Repeat("x", 129) + `"}`, 400, httpapi.CodeBadRequest},
		{"force too large", "POST", fa, `{"partitions":[` + strings.Repeat("1,", 1<<20) + `1]}`, 413, httpapi.CodeTooLarge},
		{"unknown path", "GET", "/v1/nope", "", 404, httpapi.CodeNotFound},
		{"root", "GET", "/", "", 404, httpapi.CodeNotFound},
		{"missing key", "GET", "/v1/dmaps/d/keys/k", "", 404, httpapi.CodeNotFound},
		{"trailing slash", "GET", "/v1/cluster/routing/", "", 404, httpapi.CodeNotFound},
		{"double slash", "GET", "/v1//cluster/routing", "", 404, httpapi.CodeNotFound},
		{"dot dot", "GET", "/v1/x/../cluster/routing", "", 404, httpapi.CodeNotFound},
		{"wrong method routing", "POST", "/v1/cluster/routing", "", 405, httpapi.CodeMethodNotAllowed},
		{"wrong method join", "GET", "/v1/cluster/join", "", 405, httpapi.CodeMethodNotAllowed},
		{"wrong method member", "GET", "/v1/cluster/members/node-1", "", 405, httpapi.CodeMethodNotAllowed},
		{"options", "OPTIONS", "/v1/status", "", 405, httpapi.CodeMethodNotAllowed},
		{"custom method", "BREW", "/healthz", "", 405, httpapi.CodeMethodNotAllowed},
		{"wrong method force", "GET", fa, "", 405, httpapi.CodeMethodNotAllowed},
		{"force trailing slash", "POST", fa + "/", "{}", 404, httpapi.CodeNotFound},
		{"partitions root", "POST", "/v1/cluster/partitions", "{}", 404, httpapi.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := httpapitest.NewCluster(3, 3, 2)
			h := newHandler(t, c, httpapi.Options{})
			r := serve(t, h, tc.method, tc.target, tc.body)
			wantStatus(t, r, tc.status, tc.code)
			if tc.status >= 400 {
				got := c.Calls()
				if len(got.Joins) != 0 || got.Leaves != 0 || len(got.Removed) != 0 || len(got.ForceAssigns) != 0 {
					t.Errorf("rejected input reached the cluster: %+v", got)
				}
			}
		})
	}
}

func TestMethodNotAllowedAllow(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(1, 1, 1), httpapi.Options{})
	for target, allow := range map[string]string{
		"/v1/cluster/routing":                 "GET, HEAD",
		"/v1/cluster/join":                    "POST",
		"/v1/cluster/members/node-1":          "DELETE",
		"/v1/cluster/members":                 "GET, HEAD",
		"/v1/cluster/partitions/force-assign": "POST",
	} {
		r := serve(t, h, "PUT", target, "")
		if r.status != 405 || r.header.Get("Allow") != allow {
			t.Errorf("PUT %s: %d Allow %q, want 405 %q", target, r.status, r.header.Get("Allow"), allow)
		}
	}
}

func TestHead(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(1, 1, 1), httpapi.Options{})
	r := serve(t, h, "HEAD", "/v1/cluster/routing", "")
	if r.status != 200 {
		t.Errorf("HEAD: %d", r.status)
	}
}

func TestLeave(t *testing.T) {
	for _, body := range []string{"", "{}", " { } \n", "null"} {
		c := httpapitest.NewCluster(3, 3, 2)
		var left atomic.Int32
		h := newHandler(t, c, httpapi.Options{OnLeft: func() { left.Add(1) }})
		r := serve(t, h, "POST", "/v1/cluster/leave", body)
		wantStatus(t, r, 200, "")
		if string(r.raw) != `{"left":true}`+"\n" || left.Load() != 1 || c.Calls().Leaves != 1 {
			t.Errorf("body %q: %s, OnLeft %d, leaves %d", body, r.raw, left.Load(), c.Calls().Leaves)
		}
	}

	c := httpapitest.NewCluster(3, 3, 2)
	c.Set(func(s *httpapitest.State) { s.LeaveErr = fmt.Errorf("handing over: %w", node.ErrTimeout) })
	var left atomic.Int32
	h := newHandler(t, c, httpapi.Options{OnLeft: func() { left.Add(1) }})
	wantStatus(t, serve(t, h, "POST", "/v1/cluster/leave", ""), 503, httpapi.CodeTimeout)
	if left.Load() != 0 {
		t.Errorf("OnLeft called after a failed leave")
	}
}

// TestLeaveDetached: a leave goes on with its own deadline when the client
// goes away.
func TestLeaveDetached(t *testing.T) {
	c := httpapitest.NewCluster(1, 1, 1)
	got := make(chan error, 1)
	c.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, _ string) error {
			_, hasDeadline := ctx.Deadline()
			if !hasDeadline {
				got <- errors.New("no deadline")
			} else {
				got <- ctx.Err()
			}
			return nil
		}
	})
	h := newHandler(t, c, httpapi.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/cluster/leave", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if err := <-got; err != nil {
		t.Errorf("Leave context: %v", err)
	}
	if rec.Code != 200 {
		t.Errorf("status %d", rec.Code)
	}
}

func TestRemove(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "DELETE", "/v1/cluster/members/node-3", "")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"removed":"node-3"}`+"\n" {
		t.Errorf("remove: %s", r.raw)
	}
	if got := c.Calls().Removed; !slices.Equal(got, []metadata.NodeID{"node-3"}) {
		t.Errorf("removed: %v", got)
	}
}

// TestErrorCodes maps every sentinel of node (wrapped, as the node returns
// them) to its status and code, through every endpoint that can fail.
func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{node.ErrInvalidArgument, 400, httpapi.CodeBadRequest},
		{metadata.ErrInvalidNodeID, 400, httpapi.CodeBadRequest},
		{node.ErrUnknownMember, 404, httpapi.CodeNotFound},
		{metadata.ErrUnknownMember, 404, httpapi.CodeNotFound},
		{node.ErrMemberAlive, 409, httpapi.CodeMemberAlive},
		{node.ErrPartitionAvailable, 409, httpapi.CodePartitionAvailable},
		{node.ErrQuorumAtRisk, 409, httpapi.CodeQuorumAtRisk},
		{node.ErrNoLeader, 503, httpapi.CodeNoLeader},
		{node.ErrNotReady, 503, httpapi.CodeNotReady},
		{node.ErrNotLeader, 503, httpapi.CodeNotLeader},
		{node.ErrTimeout, 503, httpapi.CodeTimeout},
		{context.DeadlineExceeded, 503, httpapi.CodeTimeout},
		{context.Canceled, 503, httpapi.CodeTimeout},
		{node.ErrLeaving, 503, httpapi.CodeLeaving},
		{node.ErrClosed, 503, httpapi.CodeClosed},
		{fmt.Errorf("%w: %w", node.ErrClosed, node.ErrNotLeader), 503, httpapi.CodeClosed},
		{node.ErrJoinFailed, 502, httpapi.CodeJoinFailed},
		{errors.New("unexpected"), 500, httpapi.CodeInternal},
	} {
		t.Run(tc.code+"/"+tc.err.Error(), func(t *testing.T) {
			c := httpapitest.NewCluster(3, 3, 2)
			wrapped := fmt.Errorf("op failed: %w", tc.err)
			c.Set(func(s *httpapitest.State) {
				s.JoinErr, s.LeaveErr, s.RemoveErr, s.ForceAssignErr = wrapped, wrapped, wrapped, wrapped
			})
			var left atomic.Int32
			h := newHandler(t, c, httpapi.Options{OnLeft: func() { left.Add(1) }})
			for _, req := range [][3]string{
				{"POST", "/v1/cluster/join", `{"addrs":["a:1"]}`},
				{"POST", "/v1/cluster/leave", ""},
				{"DELETE", "/v1/cluster/members/node-2", ""},
				{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[1],"node":"node-2"}`},
			} {
				r := serve(t, h, req[0], req[1], req[2])
				wantStatus(t, r, tc.status, tc.code)
				if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "op failed") {
					t.Errorf("%s %s: message %q does not carry the error", req[0], req[1], msg)
				}
			}
			if left.Load() != 0 {
				t.Errorf("OnLeft called after a failed leave")
			}
		})
	}
}

// TestRecover: a panic in the cluster (a bug) is answered with 500 JSON and
// logged, and the handler keeps serving.
func TestRecover(t *testing.T) {
	c := httpapitest.NewCluster(1, 1, 1)
	c.Set(func(s *httpapitest.State) {
		s.Hook = func(context.Context, string) error { panic("boom") }
	})
	var logs syncBuffer
	h := httpapi.New(c, httpapi.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r := serve(t, h, "DELETE", "/v1/cluster/members/node-1", "")
	wantStatus(t, r, 500, httpapi.CodeInternal)
	if !strings.Contains(logs.String(), "panic") || !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	wantStatus(t, serve(t, h, "GET", "/healthz", ""), 200, "")
}

func TestNewPanicsOnNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	httpapi.New(nil, httpapi.Options{})
}

// TestOverHTTP runs the handler behind a real server: body limits, OnLeft
// after the response reached the client, and headers on the wire.
func TestOverHTTP(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	leftCh := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(httpapi.New(c, httpapi.Options{
		Logger: testLogger(t), MaxBodyBytes: 64,
		OnLeft: func() { once.Do(func() { close(leftCh) }) },
	}))
	defer srv.Close()

	post := func(path, body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return resp, m
	}
	resp, m := post("/v1/cluster/join", `{"addrs":["`+strings.Repeat("a", 100)+`:1"]}`)
	if resp.StatusCode != 413 || m["error"].(map[string]any)["code"] != httpapi.CodeTooLarge {
		t.Errorf("oversize: %d %v", resp.StatusCode, m)
	}
	resp, m = post("/v1/cluster/join", `{"addrs":["a:1"]}`)
	if resp.StatusCode != 200 || m["joined"] != 1.0 || resp.Header.Get(httpapi.HeaderRoutingVersion) != "42" {
		t.Errorf("join: %d %v %v", resp.StatusCode, m, resp.Header)
	}
	resp, m = post("/v1/cluster/leave", "")
	if resp.StatusCode != 200 || m["left"] != true {
		t.Errorf("leave: %d %v", resp.StatusCode, m)
	}
	<-leftCh
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const forceAssignPath = "/v1/cluster/partitions/force-assign"

func TestForceAssign(t *testing.T) {
	c := httpapitest.NewCluster(3, 8, 2)
	c.LosePartitions(2, 5, 6) // version 43
	h := newHandler(t, c, httpapi.Options{})

	// One partition to a chosen owner.
	r := serve(t, h, "POST", forceAssignPath, `{"partitions":[5],"node":"node-3"}`)
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":44,"partitions":[5]}`+"\n" || r.header.Get(httpapi.HeaderRoutingVersion) != "44" {
		t.Errorf("force-assign 5: %s, X-Routing-Version %s", r.raw, r.header.Get(httpapi.HeaderRoutingVersion))
	}
	if p := c.Routing().Partitions[5]; p.Primary != "node-3" || p.State != metadata.PartitionActive {
		t.Errorf("partition 5 after: %+v", p)
	}

	// Every unavailable partition, owners picked by the leader; null fields
	// are the same as absent ones.
	r = serve(t, h, "POST", forceAssignPath, `{"partitions":null,"node":null}`)
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":45,"partitions":[2,6]}`+"\n" {
		t.Errorf("force-assign all: %s", r.raw)
	}

	// Nothing left to force: still an array.
	r = serve(t, h, "POST", forceAssignPath, " {} \n")
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":45,"partitions":[]}`+"\n" {
		t.Errorf("force-assign with nothing unavailable: %s", r.raw)
	}

	// The largest partition number in range, several partitions, in order.
	c.LosePartitions(7, 0)
	r = serve(t, h, "POST", forceAssignPath, `{"partitions":[7,0]}`)
	wantStatus(t, r, 200, "")
	if string(r.raw) != `{"routing_version":47,"partitions":[7,0]}`+"\n" {
		t.Errorf("force-assign 7,0: %s", r.raw)
	}

	want := []httpapitest.ForceAssignCall{
		{Partitions: []uint32{5}, Owner: "node-3"},
		{Partitions: nil, Owner: ""},
		{Partitions: nil, Owner: ""},
		{Partitions: []uint32{7, 0}, Owner: ""},
	}
	got := c.Calls().ForceAssigns
	if len(got) != len(want) {
		t.Fatalf("calls: %+v", got)
	}
	for i := range want {
		if !slices.Equal(got[i].Partitions, want[i].Partitions) || got[i].Owner != want[i].Owner || (want[i].Partitions == nil) != (got[i].Partitions == nil) {
			t.Errorf("call %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if st := c.Status(); st.Unavailable != 0 || st.RoutingVersion != 47 {
		t.Errorf("status after: %+v", st)
	}
}

// TestForceAssignRefusals: the errors of the node's contract, through the
// fake's simulation of it.
func TestForceAssignRefusals(t *testing.T) {
	c := httpapitest.NewCluster(3, 8, 2)
	c.LosePartitions(4)
	h := newHandler(t, c, httpapi.Options{})
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"partitions":[3]}`, 409, httpapi.CodePartitionAvailable},
		{`{"partitions":[4,3]}`, 409, httpapi.CodePartitionAvailable},
		{`{"partitions":[4],"node":"node-9"}`, 404, httpapi.CodeNotFound},
		{`{"node":"node-9"}`, 404, httpapi.CodeNotFound},
	} {
		t.Run(tc.body, func(t *testing.T) {
			r := serve(t, h, "POST", forceAssignPath, tc.body)
			wantStatus(t, r, tc.status, tc.code)
		})
	}
	if c.Routing().Partitions[4].State != metadata.PartitionUnavailable || c.Routing().Version != 43 {
		t.Errorf("a refused force-assign changed the table: %+v", c.Routing())
	}

	// Before the table is initialized, only the absolute bound applies and
	// the node answers.
	c = httpapitest.NewCluster(1, 1, 1)
	c.Set(func(s *httpapitest.State) { s.Table = nil })
	h = newHandler(t, c, httpapi.Options{})
	wantStatus(t, serve(t, h, "POST", forceAssignPath, `{"partitions":[65535]}`), 503, httpapi.CodeNotReady)
	wantStatus(t, serve(t, h, "POST", forceAssignPath, `{"partitions":[65536]}`), 400, httpapi.CodeBadRequest)
	if n := len(c.Calls().ForceAssigns); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// TestForceAssignBounded: force-assign runs with the operation budget.
func TestForceAssignBounded(t *testing.T) {
	c := httpapitest.NewCluster(3, 3, 2)
	c.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, method string) error {
			if method != "ForceAssign" {
				return fmt.Errorf("unexpected %s", method)
			}
			dl, ok := ctx.Deadline()
			if !ok || time.Until(dl) > 30*time.Second {
				return fmt.Errorf("deadline %v (set %v), want within 30s", dl, ok)
			}
			return fmt.Errorf("%w: gave up", node.ErrTimeout)
		}
	})
	r := serve(t, newHandler(t, c, httpapi.Options{}), "POST", forceAssignPath, `{}`)
	wantStatus(t, r, 503, httpapi.CodeTimeout)
	if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "may still take effect") {
		t.Errorf("message %q", msg)
	}
}

// TestForceAssignMessages: rejections say what to send, in JSON's terms.
func TestForceAssignMessages(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(3, 8, 2), httpapi.Options{})
	for body, want := range map[string]string{
		`{"partitions":[-1]}`:     `field "partitions": got JSON number -1, want an integer from 0 to 4294967295`,
		`{"partitions":"1"}`:      `want an array (each element an integer from 0 to 4294967295)`,
		`{"node":true}`:           `field "node": got JSON bool, want a string`,
		`{"partitions":[8]}`:      `partitions[0]: partition 8 does not exist (0 to 7)`,
		`{"partitions":[1,null]}`: `partitions[1] is null`,
		`{"partitions":[2,1,2]}`:  `partitions[2]: partition 2 is listed twice`,
		`{"partitions":[]}`:       `omit the field to force-assign every unavailable partition`,
		`null`:                    `want a JSON object`,
		`{"node":"a b"}`:          `node: `,
	} {
		r := serve(t, h, "POST", forceAssignPath, body)
		wantStatus(t, r, 400, httpapi.CodeBadRequest)
		if msg, _ := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, want) {
			t.Errorf("%s: message %q does not contain %q", body, msg, want)
		}
	}
}
