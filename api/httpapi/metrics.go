package httpapi

import "net/http"

// getMetrics serves GET /metrics: the registry of Options.Registry through
// promhttp (Prometheus text format, or protobuf on request). Registered
// only when that is set.
func (a *api) getMetrics(w http.ResponseWriter, r *http.Request) error {
	a.registry.Handler().ServeHTTP(w, r)
	return nil
}
