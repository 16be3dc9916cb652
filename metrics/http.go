package metrics

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Family names of the HTTP collector.
const (
	nameHTTPRequests = "olric_raft_http_requests_total"
	nameHTTPDuration = "olric_raft_http_request_duration_seconds"
)

// HTTPBuckets are the upper bounds, in seconds, of the request latency
// histogram (Prometheus' default buckets).
var HTTPBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HTTP records the requests of the HTTP front end. Its label values are
// bounded: route is the matched route pattern (e.g. "GET
// /v1/dmaps/{dmap}/keys/{key}"), never a raw path. Safe for concurrent
// use; get it from Registry.HTTP.
type HTTP struct {
	mu struct {
		sync.Mutex
		requests map[routeCode]uint64     // by route and exact status code
		latency  map[routeClass]*histData // by route and status class
	}
}

type routeCode struct {
	route string
	code  int
}

type routeClass struct {
	route string
	class string // "2xx", ...
}

type histData struct {
	counts []uint64 // per bucket of HTTPBuckets, not cumulative
	sum    float64
	count  uint64
}

func newHTTP() *HTTP {
	h := &HTTP{}
	h.mu.requests = make(map[routeCode]uint64)
	h.mu.latency = make(map[routeClass]*histData)
	return h
}

// Observe records one request to route answered with code after d.
func (h *HTTP) Observe(route string, code int, d time.Duration) {
	sec := d.Seconds()
	i, _ := slices.BinarySearch(HTTPBuckets, sec) // first bound >= sec
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.requests[routeCode{route, code}]++
	k := routeClass{route, codeClass(code)}
	hd := h.mu.latency[k]
	if hd == nil {
		hd = &histData{counts: make([]uint64, len(HTTPBuckets))}
		h.mu.latency[k] = hd
	}
	if i < len(HTTPBuckets) {
		hd.counts[i]++
	}
	hd.sum += sec
	hd.count++
}

// codeClass returns "2xx" for 200..299 and so on; "unknown" otherwise.
func codeClass(code int) string {
	if code < 100 || code > 599 {
		return "unknown"
	}
	return strconv.Itoa(code/100) + "xx"
}

// Describe implements Collector.
func (h *HTTP) Describe() []Desc {
	return []Desc{
		{nameHTTPRequests, "HTTP requests by route pattern and status code.", KindCounter},
		{nameHTTPDuration, "HTTP request latency in seconds by route pattern and status class.", KindHistogram},
	}
}

// Collect implements Collector.
func (h *HTTP) Collect(emit func(Family)) {
	h.mu.Lock()
	reqKeys := make([]routeCode, 0, len(h.mu.requests))
	for k := range h.mu.requests {
		reqKeys = append(reqKeys, k)
	}
	slices.SortFunc(reqKeys, func(a, b routeCode) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.code - b.code
	})
	reqs := Family{Name: nameHTTPRequests}
	for _, k := range reqKeys {
		reqs.Samples = append(reqs.Samples, Sample{
			Labels: []Label{{"route", k.route}, {"code", strconv.Itoa(k.code)}},
			Value:  float64(h.mu.requests[k]),
		})
	}

	latKeys := make([]routeClass, 0, len(h.mu.latency))
	for k := range h.mu.latency {
		latKeys = append(latKeys, k)
	}
	slices.SortFunc(latKeys, func(a, b routeClass) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return strings.Compare(a.class, b.class)
	})
	lat := Family{Name: nameHTTPDuration}
	for _, k := range latKeys {
		hd := h.mu.latency[k]
		var cum uint64
		for i, ub := range HTTPBuckets {
			cum += hd.counts[i]
			lat.Samples = append(lat.Samples, Sample{Suffix: "_bucket",
				Labels: []Label{{"route", k.route}, {"code_class", k.class}, {"le", formatFloat(ub)}},
				Value:  float64(cum)})
		}
		l := []Label{{"route", k.route}, {"code_class", k.class}}
		lat.Samples = append(lat.Samples,
			Sample{Suffix: "_bucket", Labels: append(slices.Clone(l), Label{"le", "+Inf"}), Value: float64(hd.count)},
			Sample{Suffix: "_sum", Labels: l, Value: hd.sum},
			Sample{Suffix: "_count", Labels: l, Value: float64(hd.count)})
	}
	h.mu.Unlock()
	emit(reqs)
	emit(lat)
}

// ForNode returns a new registry holding the Go runtime and process
// collectors and, when n implements Source (*node.Node does), n's node
// collector: what a server serves on /metrics. n is loosely typed so that
// a front end holding a narrower interface of the node can pass it.
func ForNode(n any) *Registry {
	r := NewRegistry()
	if src, ok := n.(Source); ok {
		r.MustRegister(NewNodeCollector(src))
	}
	r.MustRegister(NewRuntimeCollector(), NewProcessCollector())
	return r
}
