package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/metrics"
)

const (
	readToken  = "read-token-aaaaaaaaaaaa"
	writeToken = "write-token-bbbbbbbbbbbb"
	adminToken = "admin-token-cccccccccccc"
	// unknownToken has the form of a token but is in no file.
	unknownToken = "not-a-token-dddddddddddd"
)

var tokenFile = "# test tokens\nread " + readToken + "\nwrite " + writeToken + "\nadmin " + adminToken + "\n"

func testStore(t testing.TB) *auth.Store {
	t.Helper()
	s, err := auth.Parse("tokens", []byte(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authServe sends one request with the given Authorization headers (none
// when empty) and decodes a JSON answer.
func authServe(t testing.TB, h http.Handler, method, target, body string, authz ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for _, a := range authz {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && method != http.MethodHead {
		if err := json.Unmarshal(res.raw, &res.body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, target, res.raw, err)
		}
	}
	return res
}

func bearer(token string) string { return "Bearer " + token }

func errorMessage(r response) string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// wantRefused checks a 401 or 403 answer: code, challenge header, a
// message that names the role needed and never a token.
func wantRefused(t *testing.T, r response, status int, need auth.Role) {
	t.Helper()
	code := map[int]string{401: httpapi.CodeUnauthorized, 403: httpapi.CodeForbidden}[status]
	wantStatus(t, r, status, code)
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	challenge := r.header.Get("WWW-Authenticate")
	if status == 401 && challenge != `Bearer realm="olric-raft"` {
		t.Errorf("401 with WWW-Authenticate %q", challenge)
	}
	if status == 403 && challenge != "" {
		t.Errorf("403 with WWW-Authenticate %q", challenge)
	}
	msg := errorMessage(r)
	if !strings.Contains(msg, need.String()) {
		t.Errorf("message %q does not name the role needed (%s)", msg, need)
	}
	for _, tok := range []string{readToken, writeToken, adminToken, unknownToken} {
		if strings.Contains(string(r.raw), tok) {
			t.Errorf("answer %s contains a token", r.raw)
		}
	}
}

// TestAuthAcceptance: no token, no data; read reads but cannot write;
// write writes but cannot remove a member or destroy a DMap; admin can;
// the probes need nothing.
func TestAuthAcceptance(t *testing.T) {
	c := httpapitest.NewCluster(3, 7, 2)
	h := newHandler(t, c, httpapi.Options{Auth: testStore(t)})
	key := "/v1/dmaps/d/keys/k"

	// No token, no data.
	wantRefused(t, authServe(t, h, "GET", key, ""), 401, auth.RoleRead)
	wantRefused(t, authServe(t, h, "GET", "/v1/cluster/routing", ""), 401, auth.RoleRead)
	wantRefused(t, authServe(t, h, "GET", key, "", bearer(unknownToken)), 401, auth.RoleRead)
	wantRefused(t, authServe(t, h, "PUT", key, `{"value":1}`), 401, auth.RoleWrite)

	// write writes.
	r := authServe(t, h, "PUT", key, `{"value":1}`, bearer(writeToken))
	wantStatus(t, r, 200, "")

	// read reads, and cannot write.
	r = authServe(t, h, "GET", key, "", bearer(readToken))
	wantStatus(t, r, 200, "")
	if r.body["value"] != 1.0 {
		t.Errorf("get: %s", r.raw)
	}
	r = authServe(t, h, "PUT", key, `{"value":2}`, bearer(readToken))
	wantRefused(t, r, 403, auth.RoleWrite)
	if msg := errorMessage(r); !strings.Contains(msg, "this token's role is read") || !strings.Contains(msg, "needs write") {
		t.Errorf("403 message %q", msg)
	}
	wantRefused(t, authServe(t, h, "DELETE", key, "", bearer(readToken)), 403, auth.RoleWrite)
	wantRefused(t, authServe(t, h, "POST", key+"/incr", "", bearer(readToken)), 403, auth.RoleWrite)
	if v, _, _, _ := c.Entry("d", "k"); string(v) != "1" {
		t.Errorf("a refused write changed the value: %q", v)
	}

	// write cannot remove a member or destroy a DMap.
	r = authServe(t, h, "DELETE", "/v1/cluster/members/node-3", "", bearer(writeToken))
	wantRefused(t, r, 403, auth.RoleAdmin)
	if msg := errorMessage(r); !strings.Contains(msg, "this token's role is write") || !strings.Contains(msg, "needs admin") {
		t.Errorf("403 message %q", msg)
	}
	wantRefused(t, authServe(t, h, "DELETE", "/v1/dmaps/d", "", bearer(writeToken)), 403, auth.RoleAdmin)
	if got := c.Calls(); len(got.Removed) != 0 {
		t.Errorf("a refused remove ran: %v", got.Removed)
	}
	if _, _, _, ok := c.Entry("d", "k"); !ok {
		t.Errorf("a refused destroy ran")
	}

	// admin can.
	wantStatus(t, authServe(t, h, "DELETE", "/v1/cluster/members/node-3", "", bearer(adminToken)), 200, "")
	if got := c.Calls().Removed; !slices.Equal(got, []metadata.NodeID{"node-3"}) {
		t.Errorf("removed: %v", got)
	}
	wantStatus(t, authServe(t, h, "DELETE", "/v1/dmaps/d", "", bearer(adminToken)), 200, "")
	if _, _, _, ok := c.Entry("d", "k"); ok {
		t.Errorf("destroy did not run")
	}
	wantStatus(t, authServe(t, h, "PUT", key, `{"value":3}`, bearer(adminToken)), 200, "")

	// Probes and the page's assets are open; the page's calls are not.
	for _, p := range []string{"/healthz", "/readyz", "/ui/", "/ui/app.js"} {
		if r := authServe(t, h, "GET", p, ""); r.status != 200 {
			t.Errorf("GET %s without a token: %d %s", p, r.status, r.raw)
		}
	}
	if r := authServe(t, h, "GET", "/ui", ""); r.status != http.StatusMovedPermanently {
		t.Errorf("GET /ui without a token: %d", r.status)
	}
	wantRefused(t, authServe(t, h, "GET", "/v1/status", ""), 401, auth.RoleRead)
}

// TestAuthHeaderForms: the scheme is case-insensitive; anything but one
// Bearer header with a token is a 401.
func TestAuthHeaderForms(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(1, 3, 1), httpapi.Options{Auth: testStore(t)})
	for _, authz := range []string{"bearer " + readToken, "BEARER " + readToken, "Bearer   " + readToken + " "} {
		if r := authServe(t, h, "GET", "/v1/status", "", authz); r.status != 200 {
			t.Errorf("%q: %d %s", authz, r.status, r.raw)
		}
	}
	for _, tc := range []struct {
		name  string
		authz []string
	}{
		{"basic", []string{"Basic " + readToken}},
		{"no scheme", []string{readToken}},
		{"empty bearer", []string{"Bearer "}},
		{"bearer only", []string{"Bearer"}},
		{"two headers", []string{bearer(readToken), bearer(adminToken)}},
		{"token with a suffix", []string{bearer(readToken + "x")}},
		{"token prefix", []string{bearer(readToken[:len(readToken)-1])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, authServe(t, h, "GET", "/v1/status", "", tc.authz...), 401, auth.RoleRead)
		})
	}
}

// authRoute is one request per route of the API.
type authRoute struct {
	pattern      string
	method, path string
	body         string
}

var authRoutes = []authRoute{
	{"GET /healthz", "GET", "/healthz", ""},
	{"GET /readyz", "GET", "/readyz", ""},
	{"GET /ui", "GET", "/ui", ""},
	{"GET /ui/{file...}", "GET", "/ui/style.css", ""},
	{"GET /v1/cluster/routing", "GET", "/v1/cluster/routing", ""},
	{"GET /v1/cluster/members", "GET", "/v1/cluster/members", ""},
	{"GET /v1/cluster/leader", "GET", "/v1/cluster/leader", ""},
	{"GET /v1/cluster/locate", "GET", "/v1/cluster/locate?dmap=d&key=k", ""},
	{"GET /v1/status", "GET", "/v1/status", ""},
	{"GET /metrics", "GET", "/metrics", ""},
	{"GET /v1/dmaps/{dmap}/keys", "GET", "/v1/dmaps/d/keys", ""},
	{"GET /v1/dmaps/{dmap}/keys/{key}", "GET", "/v1/dmaps/d/keys/k", ""},
	{"PUT /v1/dmaps/{dmap}/keys/{key}", "PUT", "/v1/dmaps/d/keys/k", `{"value":1}`},
	{"DELETE /v1/dmaps/{dmap}/keys/{key}", "DELETE", "/v1/dmaps/d/keys/k", ""},
	{"POST /v1/dmaps/{dmap}/keys/{key}/incr", "POST", "/v1/dmaps/d/keys/n/incr", ""},
	{"POST /v1/dmaps/{dmap}/keys/{key}/incrbyfloat", "POST", "/v1/dmaps/d/keys/f/incrbyfloat", `{"delta":1.5}`},
	{"POST /v1/dmaps/{dmap}/keys/{key}/expire", "POST", "/v1/dmaps/d/keys/k/expire", `{"ttl_ms":60000}`},
	{"POST /v1/dmaps/{dmap}/keys/{key}/getput", "POST", "/v1/dmaps/d/keys/k/getput", `{"value":2}`},
	{"POST /v1/dmaps/{dmap}/keys/{key}/lock", "POST", "/v1/dmaps/d/keys/l/lock", ""},
	{"POST /v1/dmaps/{dmap}/keys/{key}/unlock", "POST", "/v1/dmaps/d/keys/l/unlock", `{"token":1}`},
	{"POST /v1/dmaps/{dmap}/keys/{key}/lease", "POST", "/v1/dmaps/d/keys/l/lease", `{"token":1,"ttl_ms":1000}`},
	{"POST /v1/cluster/join", "POST", "/v1/cluster/join", `{"addrs":["127.0.0.1:1"]}`},
	{"DELETE /v1/cluster/members/{id}", "DELETE", "/v1/cluster/members/node-3", ""},
	{"POST /v1/cluster/partitions/force-assign", "POST", "/v1/cluster/partitions/force-assign", `{}`},
	{"DELETE /v1/dmaps/{dmap}", "DELETE", "/v1/dmaps/d", ""},
	{"POST /v1/cluster/leave", "POST", "/v1/cluster/leave", ""},
}

// TestAuthEveryRoute sends every route with every kind of credential:
// none and unknown get 401 unless the route is open, a role below the
// route's gets 403, the others get through (whatever the route then
// answers, never a 401, 403 or 500). The expectations are written here
// independently of routeRoles, and every route of routeRoles is covered.
func TestAuthEveryRoute(t *testing.T) {
	want := map[string]auth.Role{}
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /ui", "GET /ui/{file...}"} {
		want[p] = auth.RoleNone
	}
	for _, rt := range authRoutes {
		if _, ok := want[rt.pattern]; ok {
			continue
		}
		switch {
		case rt.method == "GET":
			want[rt.pattern] = auth.RoleRead
		case strings.HasPrefix(rt.pattern, "POST /v1/cluster/"), strings.HasPrefix(rt.pattern, "DELETE /v1/cluster/"),
			rt.pattern == "DELETE /v1/dmaps/{dmap}":
			want[rt.pattern] = auth.RoleAdmin
		default:
			want[rt.pattern] = auth.RoleWrite
		}
	}
	for p, role := range httpapi.RouteRoles {
		if w, ok := want[p]; !ok {
			t.Errorf("route %s (%s) is not tested here: add it to authRoutes", p, role)
		} else if w != role {
			t.Errorf("route %s needs %s, want %s", p, role, w)
		}
	}
	if len(want) != len(httpapi.RouteRoles) {
		t.Errorf("authRoutes has %d routes, routeRoles %d", len(want), len(httpapi.RouteRoles))
	}

	creds := []struct {
		name  string
		role  auth.Role
		authz []string
	}{
		{"none", auth.RoleNone, nil},
		{"unknown", auth.RoleNone, []string{bearer(unknownToken)}},
		{"read", auth.RoleRead, []string{bearer(readToken)}},
		{"write", auth.RoleWrite, []string{bearer(writeToken)}},
		{"admin", auth.RoleAdmin, []string{bearer(adminToken)}},
	}
	for _, rt := range authRoutes {
		need := want[rt.pattern]
		for _, cr := range creds {
			t.Run(rt.pattern+"/"+cr.name, func(t *testing.T) {
				c := httpapitest.NewCluster(3, 7, 2)
				h := newHandler(t, c, httpapi.Options{Auth: testStore(t), Registry: metrics.NewRegistry(), OnLeft: func() {}})
				r := authServe(t, h, rt.method, rt.path, rt.body, cr.authz...)
				switch {
				case need != auth.RoleNone && cr.role == auth.RoleNone:
					wantRefused(t, r, 401, need)
				case !cr.role.Allows(need):
					wantRefused(t, r, 403, need)
				default:
					if r.status == 401 || r.status == 403 || r.status >= 500 && r.status != 503 {
						t.Errorf("%s %s as %s: %d %s", rt.method, rt.path, cr.name, r.status, r.raw)
					}
				}
			})
		}
	}
}

// TestAuthLogsRefusalsWithoutTokens: a refused request is logged, with
// neither the token presented nor any other.
func TestAuthLogsRefusalsWithoutTokens(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	h := httpapi.New(httpapitest.NewCluster(1, 3, 1), httpapi.Options{Auth: testStore(t), Logger: logger})
	authServe(t, h, "GET", "/v1/status", "", bearer(unknownToken))
	authServe(t, h, "PUT", "/v1/dmaps/d/keys/k", `{"value":1}`, bearer(readToken))
	authServe(t, h, "GET", "/v1/status", "", "Basic "+adminToken)
	logs := buf.String()
	if strings.Count(logs, "request refused") != 3 {
		t.Errorf("want 3 refusals logged:\n%s", logs)
	}
	for _, want := range []string{"unknown token", "role too weak", "status=403", "needs=write"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	for _, tok := range []string{readToken, writeToken, adminToken, unknownToken} {
		if strings.Contains(logs, tok) {
			t.Errorf("logs contain a token:\n%s", logs)
		}
	}
}

// TestAuthReload: a token removed from the file stops working at once.
func TestAuthReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, httpapitest.NewCluster(1, 3, 1), httpapi.Options{Auth: store})
	wantStatus(t, authServe(t, h, "GET", "/v1/status", "", bearer(readToken)), 200, "")
	if err := os.WriteFile(p, []byte("admin "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, authServe(t, h, "GET", "/v1/status", "", bearer(readToken)), 401, auth.RoleRead)
	wantStatus(t, authServe(t, h, "GET", "/v1/status", "", bearer(adminToken)), 200, "")
}
