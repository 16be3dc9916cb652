// Package ui embeds the live cluster page that the HTTP API serves on
// GET /ui/: one HTML page, one script and one stylesheet, with no external
// resources and no build step.
//
// The page polls, every second and from the member that served it, GET
// /v1/cluster/members, /v1/cluster/routing, /v1/status and /metrics (all
// same-origin, relative to /ui/) and shows the members, the Raft leader,
// the routing version, a grid of every partition colored by its primary,
// and this member's HTTP request rate and latency computed from the
// Prometheus counters and histograms between two polls.
//
// The page itself needs no token, but its calls do when the member runs
// with --auth-tokens: a token field in the header (a token of role read
// suffices) keeps the token in the tab's sessionStorage and sends it as
// "Authorization: Bearer TOKEN" with every poll.
package ui

import (
	"embed"
	"strings"
)

//go:embed static/index.html static/app.js static/style.css
var static embed.FS

// Asset is one embedded file.
type Asset struct {
	Name        string
	ContentType string
	Body        []byte
}

// contentTypes are set explicitly: mime.TypeByExtension consults the
// system's tables, which differ between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

var assets = func() map[string]Asset {
	out := map[string]Asset{}
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		body, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("ui: embedded " + name + ": " + err.Error()) // a build bug
		}
		ct := contentTypes[name[strings.LastIndexByte(name, '.'):]]
		out[name] = Asset{Name: name, ContentType: ct, Body: body}
	}
	return out
}()

// Index is the name of the page itself, served for the empty name.
const Index = "index.html"

// Lookup returns the asset called name (relative to /ui/; "" is Index).
func Lookup(name string) (Asset, bool) {
	if name == "" {
		name = Index
	}
	a, ok := assets[name]
	return a, ok
}

// ContentSecurityPolicy is the policy the page is served with: everything
// from the serving member only, no inline scripts or styles.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
