package metrics

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Family names of the HTTP collector.
const (
	nameHTTPRequests = "olric_raft_http_requests_total"
	nameHTTPDuration = "olric_raft_http_request_duration_seconds"
)

// HTTPBuckets are the upper bounds, in seconds, of the request latency
// histogram (Prometheus' default buckets, prometheus.DefBuckets).
var HTTPBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HTTP records the requests of the HTTP front end. Its label values are
// bounded: route is the matched route pattern (e.g. "GET
// /v1/dmaps/{dmap}/keys/{key}"), never a raw path. Safe for concurrent
// use; get it from Registry.HTTP.
type HTTP struct {
	requests *prometheus.CounterVec   // by route and exact status code
	duration *prometheus.HistogramVec // by route and status class
}

func newHTTP() *HTTP {
	return &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: nameHTTPRequests,
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    nameHTTPDuration,
			Help:    "HTTP request latency in seconds by route pattern and status class.",
			Buckets: HTTPBuckets,
		}, []string{"route", "code_class"}),
	}
}

// Observe records one request to route answered with code after d. An
// invalid UTF-8 route (never a pattern) is made valid, not rejected.
func (h *HTTP) Observe(route string, code int, d time.Duration) {
	route = strings.ToValidUTF8(route, "\uFFFD")
	h.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	h.duration.WithLabelValues(route, codeClass(code)).Observe(d.Seconds())
}

// codeClass returns "2xx" for 200..299 and so on; "unknown" otherwise.
func codeClass(code int) string {
	if code < 100 || code > 599 {
		return "unknown"
	}
	return strconv.Itoa(code/100) + "xx"
}
