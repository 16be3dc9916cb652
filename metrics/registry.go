package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds one member's collectors: a prometheus.Registry of its own
// (never the global default one), so that several members in one process
// (tests, embedded clusters) do not clash. It is safe for concurrent use.
type Registry struct {
	reg *prometheus.Registry

	mu struct {
		sync.Mutex
		http *HTTP // created by the first HTTP call
		resp *RESP // created by the first RESP call
	}
}

// NewRegistry returns a registry with no collector.
func NewRegistry() *Registry {
	return &Registry{reg: prometheus.NewRegistry()}
}

// Prometheus returns the underlying registry, e.g. for
// prometheus/testutil or to register more collectors.
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Register adds c. It fails, registering nothing, when c is invalid or
// clashes with a collector already registered (for the latter, with a
// prometheus.AlreadyRegisteredError).
func (r *Registry) Register(c prometheus.Collector) error { return r.reg.Register(c) }

// MustRegister is Register that panics on error (a wiring bug).
func (r *Registry) MustRegister(cs ...prometheus.Collector) { r.reg.MustRegister(cs...) }

// HTTP returns the registry's request metrics of the HTTP front end,
// registering them on the first call; every call returns the same value.
// It panics if another collector registered their families.
func (r *Registry) HTTP() *HTTP {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.http == nil {
		h := newHTTP()
		r.reg.MustRegister(h.requests, h.duration)
		r.mu.http = h
	}
	return r.mu.http
}

// RESP returns the registry's command metrics of the RESP front end,
// registering them on the first call with the given command names as the
// only label values (others count as OtherCommand); every call returns the
// same value. It panics if another collector registered their families.
func (r *Registry) RESP(commands []string) *RESP {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.resp == nil {
		m := newRESP(commands)
		r.reg.MustRegister(m)
		r.mu.resp = m
	}
	return r.mu.resp
}

// Handler serves the registry (promhttp: the text format, or protobuf if
// the scraper asks for it). Responses are not cached.
func (r *Registry) Handler() http.Handler {
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, req)
	})
}

// ForNode returns a new registry holding the Go runtime and process
// collectors of client_golang and, when n implements Source (*node.Node
// does), n's node collector: what a server serves on /metrics. n is
// loosely typed so that a front end holding a narrower interface of the
// node can pass it.
func ForNode(n any) *Registry {
	r := NewRegistry()
	if src, ok := n.(Source); ok {
		r.MustRegister(NewNodeCollector(src))
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}
