package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/metadata"
)

// serveRaw serves one request without serve's JSON expectations.
func serveRaw(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// TestUI checks the live cluster page: the HTML with its title and the
// elements the script fills, and the script and stylesheet with their
// content types, all self-contained (no external resources).
func TestUI(t *testing.T) {
	h := newHandler(t, httpapitest.NewCluster(3, 7, 2), httpapi.Options{})

	page := serveRaw(h, "GET", "/ui/")
	if page.Code != http.StatusOK {
		t.Fatalf("GET /ui/: %d %s", page.Code, page.Body)
	}
	if ct := page.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /ui/: Content-Type %q", ct)
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /ui/: Content-Security-Policy %q", csp)
	}
	if page.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /ui/: no X-Content-Type-Options: nosniff")
	}
	html := page.Body.String()
	for _, want := range []string{
		"<!DOCTYPE html>",
		"<title>olric-raft cluster</title>",
		`<script src="app.js" defer></script>`,
		`<link rel="stylesheet" href="style.css">`,
		`id="conn"`, `id="leader"`, `id="version"`, `id="members-body"`,
		`id="grid"`, `id="legend"`, `id="data-ops"`, `id="data-latency"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("GET /ui/: page lacks %s", want)
		}
	}
	if index := serveRaw(h, "GET", "/ui/index.html"); index.Body.String() != html {
		t.Errorf("GET /ui/index.html differs from GET /ui/")
	}

	for _, tc := range []struct{ path, ct, want string }{
		{"/ui/app.js", "text/javascript; charset=utf-8", `fetchJSON("v1/cluster/routing")`},
		{"/ui/style.css", "text/css; charset=utf-8", ".cell.state-unavailable"},
	} {
		r := serveRaw(h, "GET", tc.path)
		if r.Code != http.StatusOK || r.Header().Get("Content-Type") != tc.ct {
			t.Errorf("GET %s: %d, Content-Type %q, want 200 %q", tc.path, r.Code, r.Header().Get("Content-Type"), tc.ct)
		}
		if !strings.Contains(r.Body.String(), tc.want) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.want)
		}
	}

	// Nothing is loaded from elsewhere: no CDN, no remote fonts.
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/style.css"} {
		body := serveRaw(h, "GET", path).Body.String()
		for _, bad := range []string{`src="http`, `href="http`, "url(http", "@import", "//cdn", "fetch(\"http"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: external reference %q", path, bad)
			}
		}
	}

	if r := serveRaw(h, "HEAD", "/ui/"); r.Code != http.StatusOK || r.Body.Len() != 0 || r.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /ui/: %d, %d bytes, Content-Type %q", r.Code, r.Body.Len(), r.Header().Get("Content-Type"))
	}
	if r := serveRaw(h, "GET", "/ui"); r.Code != http.StatusMovedPermanently || r.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d, Location %q, want 301 /ui/", r.Code, r.Header().Get("Location"))
	}
	// Other files and methods get the API's JSON errors.
	wantStatus(t, serve(t, h, "GET", "/ui/nope.js", ""), http.StatusNotFound, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "GET", "/ui/static/app.js", ""), http.StatusNotFound, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "POST", "/ui/", ""), http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed)
}

// TestRoutingSyncing checks that a partition's syncing backups are shown
// (the page marks such partitions), and omitted when there are none.
func TestRoutingSyncing(t *testing.T) {
	c := httpapitest.NewCluster(3, 7, 2)
	var syncing metadata.NodeID
	c.Set(func(s *httpapitest.State) {
		tb := s.Table.Clone()
		p := &tb.Partitions[2]
		syncing = p.Backups[0]
		p.Syncing = []metadata.NodeID{syncing}
		s.Table = tb
	})
	h := newHandler(t, c, httpapi.Options{})
	r := serve(t, h, "GET", "/v1/cluster/routing", "")
	wantStatus(t, r, 200, "")
	parts := r.body["partitions"].([]any)
	p2 := parts[2].(map[string]any)
	if got, _ := p2["syncing"].([]any); len(got) != 1 || got[0] != string(syncing) {
		t.Errorf("partition 2: syncing %v, want [%s]", p2["syncing"], syncing)
	}
	if _, ok := parts[1].(map[string]any)["syncing"]; ok {
		t.Errorf("partition 1: syncing shown though empty: %v", parts[1])
	}
}
