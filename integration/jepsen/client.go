package jepsen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Outcome classifies the result of one client operation.
type Outcome string

const (
	// OK: the operation took effect (or, for a read, observed a state).
	OK Outcome = "ok"
	// Fail: the operation certainly did not take effect (a 4xx, or a 503
	// whose code the API documents as "not applied").
	Fail Outcome = "fail"
	// Info: indeterminate; it may or may not have taken effect (a timeout,
	// a lost connection, a 503 timeout, a 5xx).
	Info Outcome = "info"
)

// apiResult is one HTTP answer.
type apiResult struct {
	Status int
	Code   string // error code, when the body is an error
	Body   map[string]json.RawMessage
	Err    error // transport error (no answer)
}

// outcome maps an answer to an Outcome for an operation that writes.
// Per the HTTP API, 503 timeout (and any 500) may have taken effect; the
// other 503 codes (unavailable, not_ready, no_leader, overloaded, leaving,
// closed) and every 4xx did not. A request that never connected (dial
// error: connection refused, a killed member) did not either; one that
// got no answer on an open connection may have.
func (r apiResult) outcome() Outcome {
	var opErr *net.OpError
	switch {
	case r.Err != nil && r.Status == 0 && errors.As(r.Err, &opErr) && opErr.Op == "dial":
		return Fail // never connected: the request was not sent
	case r.Err != nil:
		return Info
	case r.Status >= 200 && r.Status < 300:
		return OK
	case r.Status >= 400 && r.Status < 500:
		return Fail
	case r.Status == http.StatusServiceUnavailable && r.Code != "timeout" && r.Code != "":
		return Fail
	default:
		return Info
	}
}

// describe is a short text for the history.
func (r apiResult) describe() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	if r.Code != "" {
		return fmt.Sprintf("%d %s", r.Status, r.Code)
	}
	return fmt.Sprint(r.Status)
}

// api is an HTTP client of the cluster.
type api struct {
	hc      *http.Client
	timeout time.Duration
}

func newAPI(timeout time.Duration) *api {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &api{hc: &http.Client{Transport: tr}, timeout: timeout}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// do sends method base+path with body (JSON-encoded unless nil).
func (a *api) do(ctx context.Context, method, base, path string, body any) apiResult {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return apiResult{Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return apiResult{Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		// The status arrived, the body did not: what the status says
		// stands for 2xx/4xx; otherwise the answer is unknown.
		return apiResult{Status: resp.StatusCode, Err: err}
	}
	res := apiResult{Status: resp.StatusCode}
	_ = json.Unmarshal(raw, &res.Body)
	if e, ok := res.Body["error"]; ok {
		var ee struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(e, &ee)
		res.Code = ee.Code
	}
	return res
}

func keyPath(dmap, key string) string {
	return "/v1/dmaps/" + url.PathEscape(dmap) + "/keys/" + url.PathEscape(key)
}

// getValue reads dmap/key: found, the value as JSON text, the version.
func getValue(r apiResult) (found bool, value string, version uint64, err error) {
	if r.Status == http.StatusNotFound && r.Code == "not_found" {
		return false, "", 0, nil
	}
	if r.Err != nil || r.Status != http.StatusOK {
		return false, "", 0, fmt.Errorf("get: %s", r.describe())
	}
	v, ok := r.Body["value"]
	if !ok {
		return false, "", 0, errors.New("get: no value in answer")
	}
	if err := json.Unmarshal(r.Body["version"], &version); err != nil {
		return false, "", 0, fmt.Errorf("get: version: %w", err)
	}
	return true, string(v), version, nil
}

func uintField(r apiResult, name string) (uint64, error) {
	var n uint64
	if err := json.Unmarshal(r.Body[name], &n); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// getJSON fetches base+path into v and returns the status.
func (a *api) getJSON(ctx context.Context, base, path string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// routing is the part of GET /v1/cluster/routing the harness reads.
type routing struct {
	Version  uint64 `json:"routing_version"`
	Replicas int    `json:"replicas"`
	Members  []struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		Incarnation string `json:"incarnation"`
	} `json:"members"`
	Partitions []struct {
		ID      uint32   `json:"id"`
		Primary string   `json:"primary"`
		Backups []string `json:"backups"`
		State   string   `json:"state"`
	} `json:"partitions"`
}

type locate struct {
	Partition uint32   `json:"partition"`
	Primary   string   `json:"primary"`
	Backups   []string `json:"backups"`
	State     string   `json:"state"`
}

type leaderView struct {
	Leader struct {
		ID string `json:"id"`
	} `json:"leader"`
}
