package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/metrics"
	"github.com/olric-raft/olric-raft/node"
)

// Cluster is what the API needs from a node; *node.Node implements it.
// Every method must be safe for concurrent use.
type Cluster interface {
	// ID returns this member's node id.
	ID() metadata.NodeID
	// Routing returns the committed routing table; never nil, immutable.
	Routing() *metadata.RoutingTable
	// Members returns the members and the routing version they come from.
	Members() ([]node.MemberInfo, uint64)
	// Leader returns the Raft leader, or false when none is known.
	Leader() (node.LeaderInfo, bool)
	// Status returns this node's view of itself and of the cluster.
	Status() node.Status
	// Ready returns nil once the node applied up to the leader's commit.
	Ready(ctx context.Context) error
	// Join contacts existing members at their gossip addresses and returns
	// how many it reached.
	Join(ctx context.Context, gossipAddrs []string) (int, error)
	// Leave gracefully leaves the cluster, then closes the node.
	Leave(ctx context.Context) error
	// RemoveMember forces a dead member out of the cluster.
	RemoveMember(ctx context.Context, id metadata.NodeID) error
	// ForceAssign gives unavailable partitions new, empty owners (data
	// loss). No partitions means every unavailable one; an empty owner lets
	// the leader pick.
	ForceAssign(ctx context.Context, partitions []uint32, owner metadata.NodeID) (node.ForceAssignResult, error)

	// The data plane (DESIGN.md §4-§5). Errors wrap dataplane's sentinels
	// (or node.ErrClosed/ErrLeaving); the API maps them with errors.Is.

	// Do runs one key operation, routed to the partition's primary. req
	// has passed the API's checks (limits, option combinations); Do must
	// not keep req or its Value after it returns.
	Do(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error)
	// Scan returns a page of at most limit keys of dmap matching the glob
	// match (empty: every key), starting at cursor ("" to start), and the
	// cursor of the next page, "" when every partition was walked exactly
	// once. A page may hold fewer keys than limit, even none, before the
	// end.
	Scan(ctx context.Context, dmap, match, cursor string, limit int) (keys []string, next string, err error)
	// Destroy removes every key of dmap, on every partition.
	Destroy(ctx context.Context, dmap string) error
}

// Options tunes the handler. The zero value is usable.
type Options struct {
	// Logger receives panics, internal errors and failed writes. Nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds the request bodies of the control plane
	// (/v1/cluster/...); larger ones get 413 too_large. Zero or negative
	// means DefaultMaxBodyBytes. Data routes have their own bound, derived
	// from MaxValueBytes (see DataBodyLimit).
	MaxBodyBytes int64
	// MaxValueBytes bounds a stored value; larger ones get 413 too_large.
	// Zero or negative means dataplane.DefaultMaxValueLen (16 MiB). It
	// should equal the data plane's own limit.
	MaxValueBytes int
	// OnLeft, if set, is called after a successful POST /v1/cluster/leave
	// once the response is flushed, so that the server can exit. It runs on
	// the request's goroutine and must not block (the server's Shutdown
	// waits for that request to finish).
	OnLeft func()
	// Registry, if set, is served on GET /metrics (Prometheus text
	// format), and every request is recorded in its Registry.HTTP (route
	// pattern, status code, latency). Nil means neither.
	Registry *metrics.Registry
	// Auth, if set, turns authentication on: every route but the probes
	// and the page's static assets needs "Authorization: Bearer TOKEN"
	// with a token of the role the route needs (auth.go, routeRoles); 401
	// unauthorized or 403 forbidden otherwise. Nil: no authentication.
	Auth *auth.Store
}

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
// is not set: 1 MiB.
const DefaultMaxBodyBytes int64 = 1 << 20

// DataBodyLimit is the request body limit of the data routes for a value
// limit of maxValue bytes: a value of maxValue bytes sent as base64 (4/3
// larger) plus 64 KiB for the rest of the JSON.
func DataBodyLimit(maxValue int) int64 {
	return 4*((int64(maxValue)+2)/3) + dataBodyOverhead
}

// dataBodyOverhead is what a data route's body may hold besides the value.
const dataBodyOverhead = 64 << 10

// HeaderRoutingVersion is set on every response to the committed routing
// version the node had when it answered.
const HeaderRoutingVersion = "X-Routing-Version"

// HeaderRequestID is the optional request header whose value becomes
// dataplane.Request.RequestID: a retried write with the same id is applied
// at most once. At most MaxRequestIDLen bytes.
const HeaderRequestID = "X-Request-Id"

// MaxRequestIDLen bounds the X-Request-Id header.
const MaxRequestIDLen = 256

// Time budgets of the requests that change the cluster. They bound the work
// even when the client sets no deadline; they stay under a typical server
// WriteTimeout (60s) so that the answer still reaches the client.
const (
	// readyTimeout bounds Cluster.Ready for GET /readyz.
	readyTimeout = 2 * time.Second
	// opTimeout bounds join, remove and force-assign.
	opTimeout = 30 * time.Second
	// leaveTimeout bounds a graceful leave. Leave runs detached from the
	// client's connection: a client that gives up must not abandon a
	// half-done handover.
	leaveTimeout = 30 * time.Second
	// dataTimeout bounds one data-plane operation (Do, Scan); a lock adds
	// its wait on top.
	dataTimeout = 15 * time.Second
	// destroyTimeout bounds a Destroy (it visits every partition).
	destroyTimeout = 30 * time.Second
)

// MaxLockWait bounds the wait_ms of a lock request, so that the answer
// arrives well within a typical server WriteTimeout (60s).
const MaxLockWait = 30 * time.Second

// api is the http.Handler returned by New.
type api struct {
	c        Cluster
	log      *slog.Logger
	maxBody  int64 // control-plane bodies
	maxValue int   // stored values
	dataBody int64 // data-plane bodies: DataBodyLimit(maxValue)
	onLeft   func()
	registry *metrics.Registry // nil: no /metrics
	metrics  *metrics.HTTP     // nil: requests are not recorded
	auth     *auth.Store       // nil: no authentication
	mux      *http.ServeMux
}

var _ http.Handler = (*api)(nil)

// New returns the HTTP API of c. It panics if c is nil (a wiring bug).
func New(c Cluster, opts Options) http.Handler {
	if c == nil {
		panic("httpapi: nil Cluster")
	}
	a := &api{
		c:        c,
		log:      opts.Logger,
		maxBody:  opts.MaxBodyBytes,
		maxValue: opts.MaxValueBytes,
		onLeft:   opts.OnLeft,
		registry: opts.Registry,
		auth:     opts.Auth,
		mux:      http.NewServeMux(),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.maxValue <= 0 {
		a.maxValue = dataplane.DefaultMaxValueLen
	}
	a.dataBody = DataBodyLimit(a.maxValue)
	if a.registry != nil {
		a.metrics = a.registry.HTTP()
	}
	a.routes()
	return a
}

// routes registers every endpoint. GET patterns also answer HEAD.
func (a *api) routes() {
	a.handle("GET /v1/cluster/routing", a.getRouting)
	a.handle("GET /v1/cluster/members", a.getMembers)
	a.handle("GET /v1/cluster/leader", a.getLeader)
	a.handle("GET /v1/cluster/locate", a.getLocate)
	a.handle("POST /v1/cluster/join", a.postJoin)
	a.handle("POST /v1/cluster/leave", a.postLeave)
	a.handle("DELETE /v1/cluster/members/{id}", a.deleteMember)
	a.handle("POST /v1/cluster/partitions/force-assign", a.postForceAssign)
	a.handle("GET /v1/status", a.getStatus)
	a.handle("GET /healthz", a.getHealthz)
	a.handle("GET /readyz", a.getReadyz)
	if a.registry != nil {
		a.handle("GET /metrics", a.getMetrics)
	}
	// The live cluster page (ui.go): static, embedded assets.
	a.handle("GET /ui", a.getUIRedirect)
	a.handle("GET /ui/{file...}", a.getUI)

	// The data plane (dmaps.go). {key} is one path segment: a key holding
	// '/' (or any other byte) is percent-encoded, and PathValue unescapes it.
	a.handle("GET /v1/dmaps/{dmap}/keys", a.scanKeys)
	a.handle("DELETE /v1/dmaps/{dmap}", a.destroyDMap)
	a.handle("GET /v1/dmaps/{dmap}/keys/{key}", a.getKey)
	a.handle("PUT /v1/dmaps/{dmap}/keys/{key}", a.putKey)
	a.handle("DELETE /v1/dmaps/{dmap}/keys/{key}", a.deleteKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/incr", a.incrKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/incrbyfloat", a.incrByFloatKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/expire", a.expireKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/getput", a.getPutKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/lock", a.lockKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/unlock", a.unlockKey)
	a.handle("POST /v1/dmaps/{dmap}/keys/{key}/lease", a.leaseKey)
}

// handlerFunc is an endpoint: it writes a success response itself, or
// returns an error that ServeHTTP maps to a status and code.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *api) handle(pattern string, h handlerFunc) {
	need := roleOf(pattern) // panics on a route without a role
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := a.authorize(w, r, pattern, need); err != nil {
			a.writeError(w, r, err)
			return
		}
		if sv, ok := r.Context().Value(slashValuesKey{}).(slashValues); ok {
			if sv.dmap {
				r.SetPathValue("dmap", "/")
			}
			if sv.key {
				r.SetPathValue("key", "/")
			}
		}
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// ServeHTTP sets the headers every response carries, answers unknown paths
// and methods with JSON, recovers panics, and records request metrics.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	route := routeUnmatched
	if a.metrics != nil {
		// Deferred first, so it runs last: after recoverPanic answered.
		defer a.observe(sw, &route, time.Now())
	}
	defer a.recoverPanic(sw, r)

	h := sw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderRoutingVersion, strconv.FormatUint(a.routing().Version, 10))

	// ServeMux would answer a non-canonical path ("//", "/./", "/../") with a
	// text/html redirect; an API client is better told plainly. Like
	// ServeMux, look at the escaped path: a key "a//b" or ".." arrives
	// percent-encoded ("a%2F%2Fb", "%2E%2E") and is one canonical segment.
	if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && p != cleanPath(p) {
		a.writeError(sw, r, errorf(http.StatusNotFound, CodeNotFound, "no such path %q (not canonical)", r.URL.Path))
		return
	}
	r = maskSlashSegments(r)
	// ServeMux's own 404 and 405 answers are text/plain: answer those here.
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		a.noRoute(sw, r)
		return
	}
	route = pattern
	a.mux.ServeHTTP(sw, r)
}

// slashValues says which path values of a data route are "/" (see
// maskSlashSegments); it rides in the request's context under
// slashValuesKey.
type slashValues struct{ dmap, key bool }

type slashValuesKey struct{}

// maskSlashSegments works around net/http's ServeMux, which takes a path
// segment that unescapes to exactly "/" ("%2F") for a trailing slash, so
// that no pattern matches it; yet "/" is a valid key and DMap name. Such a
// {dmap} or {key} segment of a data route is replaced by a placeholder
// for matching, and handle puts "/" back as the path value.
func maskSlashSegments(r *http.Request) *http.Request {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, "/v1/dmaps/") || !strings.Contains(strings.ToLower(p), "%2f") {
		return r
	}
	segs := strings.Split(p, "/") // "", "v1", "dmaps", {dmap}, "keys", {key}, ...
	var sv slashValues
	if strings.EqualFold(segs[3], "%2F") {
		segs[3], sv.dmap = "_", true
	}
	if len(segs) > 5 && segs[4] == "keys" && strings.EqualFold(segs[5], "%2F") {
		segs[5], sv.key = "_", true
	}
	if !sv.dmap && !sv.key {
		return r
	}
	u := *r.URL
	u.RawPath = strings.Join(segs, "/")
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return r // cannot happen: the rest was a valid escaped path
	}
	masked := r.WithContext(context.WithValue(r.Context(), slashValuesKey{}, sv))
	masked.URL = &u
	return masked
}

// probeMethods are the methods tried to build the Allow header of a 405.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// noRoute answers a request no pattern matches: 405 with Allow when the path
// exists for other methods, else 404.
func (a *api) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := a.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		a.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no such path %q", r.URL.Path))
		return
	}
	allowed := strings.Join(allow, ", ")
	w.Header().Set("Allow", allowed)
	a.writeError(w, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		"method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allowed))
}

// cleanPath returns the canonical form of p, as net/http's ServeMux computes
// it: rooted, path.Clean'ed, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// routing returns the committed table, tolerating a nil one.
func (a *api) routing() *metadata.RoutingTable {
	if t := a.c.Routing(); t != nil {
		return t
	}
	return &metadata.RoutingTable{}
}

// recoverPanic is the last line of defence: a panic in a handler (a bug) is
// logged with its stack and answered with 500 internal if nothing was
// written yet. http.ErrAbortHandler keeps its meaning (abort the response).
func (a *api) recoverPanic(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { // a sentinel panic value, compared as net/http does
		panic(v)
	}
	a.log.Error("httpapi: panic serving request", "method", r.Method, "path", r.URL.Path,
		"panic", v, "stack", string(debug.Stack()))
	if w.wrote {
		return
	}
	a.writeError(w, r, errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
}

// routeUnmatched is the route label of requests no pattern matches (404,
// 405, non-canonical paths): raw paths never become label values.
const routeUnmatched = "unmatched"

// observe records a finished request in a.metrics. route points at the
// matched pattern, set by ServeHTTP once known.
func (a *api) observe(w *statusWriter, route *string, start time.Time) {
	a.metrics.Observe(*route, w.status(), time.Since(start))
}

// statusWriter records whether the response was started, so that
// recoverPanic knows whether it can still answer, and its status code for
// the request metrics.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
	code  int // first status written; 0 before
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code < 200 { // not yet final: none, or informational (1xx)
		w.code = code
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// status is the response's status code as net/http sends it: 200 when the
// handler wrote nothing.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
