package httpapi_test

import (
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/metrics"
)

func scrapeText(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	ct := rec.Header().Get("Content-Type")
	if mt, params, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" || params["version"] != "0.0.4" {
		t.Errorf("Content-Type %q, want text/plain; version=0.0.4 (%v)", ct, err)
	}
	return rec.Body.String()
}

// TestMetricsRouteAndRequestMetrics: /metrics serves the registry; every
// request is counted under its route pattern (never the raw path) and its
// status code, and timed by status class.
func TestMetricsRouteAndRequestMetrics(t *testing.T) {
	c := httpapitest.NewCluster(1, 8, 1)
	reg := metrics.NewRegistry()
	h := httpapi.New(c, httpapi.Options{Logger: testLogger(t), Registry: reg})

	for _, key := range []string{"a", "b", "c"} {
		if res := serve(t, h, http.MethodPut, "/v1/dmaps/m/keys/"+key, `{"value":1}`); res.status != http.StatusOK {
			t.Fatalf("put %s = %d %s", key, res.status, res.raw)
		}
	}
	if res := serve(t, h, http.MethodGet, "/v1/dmaps/m/keys/missing", ""); res.status != http.StatusNotFound {
		t.Fatalf("get missing = %d", res.status)
	}
	if res := serve(t, h, http.MethodGet, "/no/such/path", ""); res.status != http.StatusNotFound {
		t.Fatalf("unknown path = %d", res.status)
	}

	text := scrapeText(t, h)
	for _, want := range []string{
		`olric_raft_http_requests_total{code="200",route="PUT /v1/dmaps/{dmap}/keys/{key}"} 3`,
		`olric_raft_http_requests_total{code="404",route="GET /v1/dmaps/{dmap}/keys/{key}"} 1`,
		`olric_raft_http_requests_total{code="404",route="unmatched"} 1`,
		`olric_raft_http_request_duration_seconds_count{code_class="2xx",route="PUT /v1/dmaps/{dmap}/keys/{key}"} 3`,
		`olric_raft_http_request_duration_seconds_bucket{code_class="2xx",route="PUT /v1/dmaps/{dmap}/keys/{key}",le="+Inf"} 3`,
		"# TYPE olric_raft_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, text)
		}
	}
	for _, raw := range []string{"/v1/dmaps/m/keys/a", "/no/such/path"} {
		if strings.Contains(text, raw) {
			t.Errorf("raw path %q became a label value:\n%s", raw, text)
		}
	}
	// The first scrape is counted by the second.
	if text := scrapeText(t, h); !strings.Contains(text, `olric_raft_http_requests_total{code="200",route="GET /metrics"} 1`) {
		t.Errorf("second scrape does not count the first:\n%s", text)
	}
}

// TestMetricsRouteAbsentWithoutRegistry: without Options.Registry there is
// no /metrics route (a JSON 404).
func TestMetricsRouteAbsentWithoutRegistry(t *testing.T) {
	c := httpapitest.NewCluster(1, 8, 1)
	h := httpapi.New(c, httpapi.Options{Logger: testLogger(t)})
	res := serve(t, h, http.MethodGet, "/metrics", "")
	if res.status != http.StatusNotFound || res.errorCode() != "not_found" {
		t.Fatalf("GET /metrics without registry = %d %q, want 404 not_found", res.status, res.errorCode())
	}
}

// TestMetricsRecordsMethodNotAllowed: a 405 is counted under the
// "unmatched" route, with its code.
func TestMetricsRecordsMethodNotAllowed(t *testing.T) {
	c := httpapitest.NewCluster(1, 8, 1)
	reg := metrics.NewRegistry()
	h := httpapi.New(c, httpapi.Options{Logger: testLogger(t), Registry: reg})
	if res := serve(t, h, http.MethodPatch, "/v1/status", ""); res.status != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH /v1/status = %d, want 405", res.status)
	}
	if text := scrapeText(t, h); !strings.Contains(text, `olric_raft_http_requests_total{code="405",route="unmatched"} 1`) {
		t.Errorf("405 not counted as unmatched:\n%s", text)
	}
}
