package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/node"
)

const keyPath = "/v1/dmaps/d/keys/"

// serveReq is serve for a request built by the test (headers).
func serveReq(t testing.TB, h http.Handler, req *http.Request) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if err := json.Unmarshal(res.raw, &res.body); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", req.Method, req.URL, res.raw, err)
	}
	if res.status == http.StatusServiceUnavailable && res.header.Get("Retry-After") != "1" {
		t.Errorf("%s %s: 503 without Retry-After: 1", req.Method, req.URL)
	}
	return res
}

func newDataHandler(t *testing.T) (*httpapitest.Cluster, http.Handler) {
	t.Helper()
	c := httpapitest.NewCluster(3, 7, 2)
	return c, newHandler(t, c, httpapi.Options{})
}

func wantBody(t *testing.T, r response, want string) {
	t.Helper()
	if got := strings.TrimSuffix(string(r.raw), "\n"); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func wantStored(t *testing.T, c *httpapitest.Cluster, dmap, key string, want []byte) uint64 {
	t.Helper()
	v, ver, _, ok := c.Entry(dmap, key)
	if !ok || !bytes.Equal(v, want) {
		t.Errorf("stored %q/%q: %q (exists %v), want %q", dmap, key, v, ok, want)
	}
	return ver
}

// TestValueRoundTrip: what a put stores and what a get answers, for JSON
// and base64 values: every value comes back byte for byte.
func TestValueRoundTrip(t *testing.T) {
	c, h := newDataHandler(t)
	for i, tc := range []struct {
		name   string
		body   string
		stored []byte
		get    string // the value field of the get answer
	}{
		{"object as sent", `{"value": {"a": [1, 2],  "b":"<&>"} }`, []byte(`{"a": [1, 2],  "b":"<&>"}`), `"value":{"a": [1, 2],  "b":"<&>"}`},
		{"string", `{"value":"héllo \u00e9"}`, []byte(`"héllo \u00e9"`), `"value":"héllo \u00e9"`},
		{"number", `{"value":-1.5e3}`, []byte(`-1.5e3`), `"value":-1.5e3`},
		{"null", `{"value":null}`, []byte(`null`), `"value":null`},
		{"bool", `{"value":true}`, []byte(`true`), `"value":true`},
		{"binary", `{"value_base64":"AP8Aaw=="}`, []byte{0, 0xff, 0, 'k'}, `"value_base64":"AP8Aaw=="`},
		{"binary unpadded", `{"value_base64":"AP8Aaw"}`, []byte{0, 0xff, 0, 'k'}, `"value_base64":"AP8Aaw=="`},
		{"base64 of JSON reads as JSON", `{"value_base64":"WzEsMl0="}`, []byte(`[1,2]`), `"value":[1,2]`},
		{"text", `{"value_base64":"aGVsbG8="}`, []byte(`hello`), `"value_base64":"aGVsbG8="`},
		{"JSON with spaces around", `{"value_base64":"IDEg"}`, []byte(` 1 `), `"value_base64":"IDEg"`},
		{"JSON with invalid UTF-8", `{"value_base64":"Iv8i"}`, []byte("\"\xff\""), `"value_base64":"Iv8i"`},
		{"empty", `{"value_base64":""}`, []byte{}, `"value_base64":""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("k%d", i)
			r := serve(t, h, "PUT", keyPath+key, tc.body)
			wantStatus(t, r, 200, "")
			ver := wantStored(t, c, "d", key, tc.stored)
			wantBody(t, r, fmt.Sprintf(`{"version":%d}`, ver))
			r = serve(t, h, "GET", keyPath+key, "")
			wantStatus(t, r, 200, "")
			wantBody(t, r, fmt.Sprintf(`{"key":%q,%s,"version":%d,"ttl_ms":0}`, key, tc.get, ver))
			if got := r.header.Get(httpapi.HeaderRoutingVersion); got != "42" {
				t.Errorf("X-Routing-Version %q", got)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	_, h := newDataHandler(t)
	wantStatus(t, serve(t, h, "GET", keyPath+"nope", ""), 404, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "HEAD", keyPath+"nope", ""), 404, "")
}

func TestPutConditions(t *testing.T) {
	c, h := newDataHandler(t)
	put := func(body string) response { return serve(t, h, "PUT", keyPath+"k", body) }

	wantStatus(t, put(`{"value":1,"xx":true}`), 404, httpapi.CodeNotFound)
	wantStatus(t, put(`{"value":1,"if_version":5}`), 409, httpapi.CodeVersionMismatch)
	r := put(`{"value":1,"if_version":0}`) // must not exist: it does not
	wantStatus(t, r, 200, "")
	v1 := uint64(r.body["version"].(float64))
	wantStatus(t, put(`{"value":2,"nx":true}`), 409, httpapi.CodeKeyExists)
	wantStatus(t, put(`{"value":2,"if_version":0}`), 409, httpapi.CodeVersionMismatch)
	wantStatus(t, put(fmt.Sprintf(`{"value":2,"if_version":%d}`, v1+100)), 409, httpapi.CodeVersionMismatch)
	r = put(fmt.Sprintf(`{"value":2,"if_version":%d}`, v1))
	wantStatus(t, r, 200, "")
	v2 := uint64(r.body["version"].(float64))
	if v2 <= v1 {
		t.Errorf("versions %d then %d: not increasing", v1, v2)
	}
	last := c.Calls().LastRequest
	if last.Op != dataplane.OpPut || last.DMap != "d" || last.Key != "k" || !last.HasIfVersion || last.IfVersion != v1 || last.NX || last.XX {
		t.Errorf("request: %+v", last)
	}
	r = put(`{"value":3,"xx":true}`)
	wantStatus(t, r, 200, "")
	if v3 := uint64(r.body["version"].(float64)); v3 <= v2 {
		t.Errorf("version %d after %d", v3, v2)
	}
	if last := c.Calls().LastRequest; !last.XX || last.HasIfVersion {
		t.Errorf("xx request: %+v", last)
	}
	wantStored(t, c, "d", "k", []byte("3"))
	// Failed puts changed nothing.
	wantStatus(t, put(`{"value":4,"nx":true}`), 409, httpapi.CodeKeyExists)
	wantStored(t, c, "d", "k", []byte("3"))
}

func TestPutTTL(t *testing.T) {
	c, h := newDataHandler(t)
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	c.Set(func(s *httpapitest.State) {
		s.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	wantStatus(t, serve(t, h, "PUT", keyPath+"k", `{"value":"v","ttl_ms":1500}`), 200, "")
	if got := c.Calls().LastRequest.TTL; got != 1500*time.Millisecond {
		t.Errorf("TTL %v", got)
	}
	r := serve(t, h, "GET", keyPath+"k", "")
	if r.body["ttl_ms"] != 1500.0 {
		t.Errorf("ttl_ms %v", r.body["ttl_ms"])
	}
	advance(1499*time.Millisecond + time.Microsecond) // 0.999ms left: rounds up to 1, never 0
	if r = serve(t, h, "GET", keyPath+"k", ""); r.body["ttl_ms"] != 1.0 {
		t.Errorf("ttl_ms %v, want 1", r.body["ttl_ms"])
	}
	advance(time.Millisecond)
	wantStatus(t, serve(t, h, "GET", keyPath+"k", ""), 404, httpapi.CodeNotFound)

	// A put without ttl_ms has no expiry.
	wantStatus(t, serve(t, h, "PUT", keyPath+"k", `{"value":"v","ttl_ms":0}`), 200, "")
	if r = serve(t, h, "GET", keyPath+"k", ""); r.body["ttl_ms"] != 0.0 {
		t.Errorf("ttl_ms %v", r.body["ttl_ms"])
	}
	// The largest TTL is accepted.
	wantStatus(t, serve(t, h, "PUT", keyPath+"k", fmt.Sprintf(`{"value":"v","ttl_ms":%d}`, dataplane.MaxTTL.Milliseconds())), 200, "")
}

func TestDeleteKey(t *testing.T) {
	c, h := newDataHandler(t)
	wantStatus(t, serve(t, h, "PUT", keyPath+"k", `{"value":1}`), 200, "")
	r := serve(t, h, "DELETE", keyPath+"k", "")
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"deleted":true}`)
	if _, _, _, ok := c.Entry("d", "k"); ok {
		t.Error("still there")
	}
	wantBody(t, serve(t, h, "DELETE", keyPath+"k", ""), `{"deleted":false}`)
	// A node answering not_found for a delete is a "false" too.
	c.Set(func(s *httpapitest.State) { s.DataErr = fmt.Errorf("%w: k", dataplane.ErrNotFound) })
	wantBody(t, serve(t, h, "DELETE", keyPath+"k", ""), `{"deleted":false}`)
}

func TestIncr(t *testing.T) {
	c, h := newDataHandler(t)
	incr := func(body string) response { return serve(t, h, "POST", keyPath+"n/incr", body) }
	r := incr("")
	wantStatus(t, r, 200, "")
	wantKeys(t, "incr", r.body, "value", "version")
	if r.body["value"] != 1.0 {
		t.Errorf("first incr: %s", r.raw)
	}
	for _, tc := range []struct {
		body string
		want int64
	}{{`{}`, 2}, {`{"delta":null}`, 3}, {`{"delta":10}`, 13}, {`{"delta":-20}`, -7}} {
		r := incr(tc.body)
		wantStatus(t, r, 200, "")
		if r.body["value"] != float64(tc.want) {
			t.Errorf("%s: %s, want %d", tc.body, r.raw, tc.want)
		}
	}
	if last := c.Calls().LastRequest; last.Op != dataplane.OpIncr || last.Delta != -20 {
		t.Errorf("request %+v", last)
	}
	wantStored(t, c, "d", "n", []byte("-7"))

	wantStatus(t, serve(t, h, "PUT", keyPath+"s", `{"value":"abc"}`), 200, "")
	wantStatus(t, serve(t, h, "POST", keyPath+"s/incr", ""), 409, httpapi.CodeNotANumber)
	wantStatus(t, serve(t, h, "PUT", keyPath+"big", `{"value":9223372036854775807}`), 200, "")
	wantStatus(t, serve(t, h, "POST", keyPath+"big/incr", ""), 409, httpapi.CodeOverflow)
	// Exact int64 in the answer.
	wantStatus(t, serve(t, h, "PUT", keyPath+"big", `{"value":9223372036854775806}`), 200, "")
	r = serve(t, h, "POST", keyPath+"big/incr", "")
	if !bytes.Contains(r.raw, []byte(`"value":9223372036854775807,`)) {
		t.Errorf("incr to max: %s", r.raw)
	}
}

func TestIncrByFloat(t *testing.T) {
	c, h := newDataHandler(t)
	r := serve(t, h, "POST", keyPath+"f/incrbyfloat", `{"delta":1.5}`)
	wantStatus(t, r, 200, "")
	wantKeys(t, "incrbyfloat", r.body, "value", "version")
	r = serve(t, h, "POST", keyPath+"f/incrbyfloat", `{"delta":-0.25}`)
	if r.body["value"] != 1.25 {
		t.Errorf("got %s", r.raw)
	}
	if last := c.Calls().LastRequest; last.Op != dataplane.OpIncrByFloat || last.DeltaFloat != -0.25 {
		t.Errorf("request %+v", last)
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"f/incrbyfloat", `{}`), 400, httpapi.CodeBadRequest)
	wantStatus(t, serve(t, h, "POST", keyPath+"f/incrbyfloat", ``), 400, httpapi.CodeBadRequest)
	wantStatus(t, serve(t, h, "POST", keyPath+"f/incrbyfloat", `{"delta":1.7e308}`), 200, "")
	wantStatus(t, serve(t, h, "POST", keyPath+"f/incrbyfloat", `{"delta":1.7e308}`), 409, httpapi.CodeOverflow)
	wantStatus(t, serve(t, h, "PUT", keyPath+"s", `{"value":"abc"}`), 200, "")
	wantStatus(t, serve(t, h, "POST", keyPath+"s/incrbyfloat", `{"delta":1}`), 409, httpapi.CodeNotANumber)
}

func TestExpire(t *testing.T) {
	c, h := newDataHandler(t)
	wantBody(t, serve(t, h, "POST", keyPath+"k/expire", `{"ttl_ms":1000}`), `{"found":false}`)
	wantStatus(t, serve(t, h, "PUT", keyPath+"k", `{"value":1}`), 200, "")
	r := serve(t, h, "POST", keyPath+"k/expire", `{"ttl_ms":60000}`)
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"found":true}`)
	if last := c.Calls().LastRequest; last.Op != dataplane.OpExpire || last.TTL != time.Minute {
		t.Errorf("request %+v", last)
	}
	r = serve(t, h, "GET", keyPath+"k", "")
	if ttl := r.body["ttl_ms"].(float64); ttl <= 0 || ttl > 60000 {
		t.Errorf("ttl_ms %v", ttl)
	}
	wantBody(t, serve(t, h, "POST", keyPath+"k/expire", `{"ttl_ms":0}`), `{"found":true}`)
	if r = serve(t, h, "GET", keyPath+"k", ""); r.body["ttl_ms"] != 0.0 {
		t.Errorf("persisted: ttl_ms %v", r.body["ttl_ms"])
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/expire", `{}`), 400, httpapi.CodeBadRequest)
	wantStatus(t, serve(t, h, "POST", keyPath+"k/expire", ``), 400, httpapi.CodeBadRequest)
}

func TestGetPut(t *testing.T) {
	c, h := newDataHandler(t)
	r := serve(t, h, "POST", keyPath+"k/getput", `{"value":{"n":1}}`)
	wantStatus(t, r, 200, "")
	v1 := wantStored(t, c, "d", "k", []byte(`{"n":1}`))
	wantBody(t, r, fmt.Sprintf(`{"previous":null,"found":false,"version":%d}`, v1))
	r = serve(t, h, "POST", keyPath+"k/getput", `{"value_base64":"AAE="}`)
	v2 := wantStored(t, c, "d", "k", []byte{0, 1})
	wantBody(t, r, fmt.Sprintf(`{"previous":{"n":1},"found":true,"version":%d}`, v2))
	r = serve(t, h, "POST", keyPath+"k/getput", `{"value":null}`)
	v3 := wantStored(t, c, "d", "k", []byte(`null`))
	wantBody(t, r, fmt.Sprintf(`{"previous_base64":"AAE=","found":true,"version":%d}`, v3))
	r = serve(t, h, "POST", keyPath+"k/getput", `{"value":1}`)
	wantBody(t, r, fmt.Sprintf(`{"previous":null,"found":true,"version":%d}`, v3+1))
	if !(v1 < v2 && v2 < v3) {
		t.Errorf("versions %d %d %d", v1, v2, v3)
	}
}

func TestLocks(t *testing.T) {
	c, h := newDataHandler(t)
	r := serve(t, h, "POST", keyPath+"k/lock", `{"ttl_ms":60000,"wait_ms":0}`)
	wantStatus(t, r, 200, "")
	wantKeys(t, "lock", r.body, "token")
	tok := uint64(r.body["token"].(float64))
	if last := c.Calls().LastRequest; last.Op != dataplane.OpLock || last.TTL != time.Minute || last.Wait != 0 {
		t.Errorf("request %+v", last)
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/lock", `{"ttl_ms":1000,"wait_ms":10}`), 409, httpapi.CodeLocked)
	wantStatus(t, serve(t, h, "POST", keyPath+"k/lock", ``), 409, httpapi.CodeLocked) // body optional
	wantStatus(t, serve(t, h, "POST", keyPath+"k/unlock", fmt.Sprintf(`{"token":%d}`, tok+1)), 409, httpapi.CodeNoSuchLock)
	wantStatus(t, serve(t, h, "POST", keyPath+"k/lease", fmt.Sprintf(`{"token":%d,"ttl_ms":5000}`, tok+1)), 409, httpapi.CodeNoSuchLock)
	r = serve(t, h, "POST", keyPath+"k/lease", fmt.Sprintf(`{"token":%d,"ttl_ms":5000}`, tok))
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"extended":true}`)
	if last := c.Calls().LastRequest; last.Op != dataplane.OpLease || last.Token != tok || last.TTL != 5*time.Second {
		t.Errorf("request %+v", last)
	}

	// A waiting lock gets it when the holder unlocks.
	got := make(chan response, 1)
	go func() {
		req := httptest.NewRequest("POST", keyPath+"k/lock", strings.NewReader(`{"ttl_ms":1000,"wait_ms":20000}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := response{status: rec.Code, raw: rec.Body.Bytes()}
		_ = json.Unmarshal(res.raw, &res.body)
		got <- res
	}()
	waitFor(t, func() bool { l := c.Calls().LastRequest; return l.Op == dataplane.OpLock && l.Wait == 20*time.Second })
	r = serve(t, h, "POST", keyPath+"k/unlock", fmt.Sprintf(`{"token":%d}`, tok))
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"unlocked":true}`)
	r = <-got
	if r.status != 200 || uint64(r.body["token"].(float64)) <= tok {
		t.Errorf("waiting lock: %d %s (first token %d)", r.status, r.raw, tok)
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/unlock", fmt.Sprintf(`{"token":%d}`, tok)), 409, httpapi.CodeNoSuchLock)

	for _, tc := range []struct{ path, body string }{
		{"k/unlock", `{}`},
		{"k/unlock", ``},
		{"k/unlock", `{"token":-1}`},
		{"k/lease", `{"token":1}`},
		{"k/lease", `{"ttl_ms":1}`},
		{"k/lock", `{"wait_ms":30001}`},
		{"k/lock", `{"ttl_ms":-1}`},
		{"k/lock", `{"token":1}`},
	} {
		wantStatus(t, serve(t, h, "POST", keyPath+tc.path, tc.body), 400, httpapi.CodeBadRequest)
	}
}

// TestUnlockNotFound: a node that answers Found false (or not_found) for
// an unlock or lease that held nothing is a 409 no_such_lock too.
func TestUnlockNotFound(t *testing.T) {
	c := &foundFalse{Cluster: httpapitest.NewCluster(1, 1, 1)}
	h := httpapi.New(c, httpapi.Options{Logger: testLogger(t)})
	wantStatus(t, serve(t, h, "POST", keyPath+"k/unlock", `{"token":1}`), 409, httpapi.CodeNoSuchLock)
	wantStatus(t, serve(t, h, "POST", keyPath+"k/lease", `{"token":1,"ttl_ms":1}`), 409, httpapi.CodeNoSuchLock)
	c.err = dataplane.ErrNotFound
	wantStatus(t, serve(t, h, "POST", keyPath+"k/unlock", `{"token":1}`), 409, httpapi.CodeNoSuchLock)
	wantBody(t, serve(t, h, "POST", keyPath+"k/expire", `{"ttl_ms":1}`), `{"found":false}`)
	// An infinite float (against the contract) is an overflow, not a 500.
	c.err, c.resp = nil, &dataplane.Response{Float: math.Inf(1)}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/incrbyfloat", `{"delta":1}`), 409, httpapi.CodeOverflow)
}

// foundFalse answers every Do with resp (default: an empty response) or
// err.
type foundFalse struct {
	*httpapitest.Cluster
	resp *dataplane.Response
	err  error
}

func (f *foundFalse) Do(context.Context, *dataplane.Request) (*dataplane.Response, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.resp != nil {
		return f.resp, nil
	}
	return &dataplane.Response{}, nil
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestScan(t *testing.T) {
	c, h := newDataHandler(t)
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("user:%02d", i)
		want = append(want, k)
		wantStatus(t, serve(t, h, "PUT", keyPath+k, `{"value":1}`), 200, "")
	}
	wantStatus(t, serve(t, h, "PUT", keyPath+"other", `{"value":1}`), 200, "")

	scanAll := func(query string) ([]string, int) {
		t.Helper()
		var got []string
		cursor, pages := "", 0
		for {
			r := serve(t, h, "GET", "/v1/dmaps/d/keys?"+query+"&cursor="+cursor, "")
			wantStatus(t, r, 200, "")
			wantKeys(t, "scan", r.body, "keys", "cursor")
			for _, k := range r.body["keys"].([]any) {
				got = append(got, k.(string))
			}
			pages++
			cursor = r.body["cursor"].(string)
			if cursor == "" {
				return got, pages
			}
			if pages > 100 {
				t.Fatal("scan does not end")
			}
		}
	}
	got, pages := scanAll("match=user:*&limit=10")
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("%d pages: %q", pages, got)
	}
	if s := c.Calls().LastScan; s.DMap != "d" || s.Match != "user:*" || s.Limit != 10 {
		t.Errorf("scan call %+v", s)
	}
	got, _ = scanAll("")
	if len(got) != 26 || c.Calls().LastScan.Limit != 100 {
		t.Errorf("default: %d keys, limit %d", len(got), c.Calls().LastScan.Limit)
	}
	// Short pages (partition ends) still visit every key exactly once.
	c.Set(func(s *httpapitest.State) { s.ScanPage = 3 })
	got, pages = scanAll("match=user:1?&limit=10")
	if !slices.Equal(got, want[10:20]) || pages < 4 {
		t.Errorf("short pages: %d pages: %q", pages, got)
	}
	c.Set(func(s *httpapitest.State) { s.ScanPage = 0 })
	got, _ = scanAll(fmt.Sprintf("limit=%d", dataplane.MaxScanLimit))
	if len(got) != 26 {
		t.Errorf("max limit: %d keys", len(got))
	}

	r := serve(t, h, "GET", "/v1/dmaps/empty/keys", "")
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"keys":[],"cursor":""}`)

	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "limit=", "limit=10001", "limit=1.5", "cursor=%zz", "match=" + strings.Repeat("a", dataplane.MaxKeyLen+1)} {
		wantStatus(t, serve(t, h, "GET", "/v1/dmaps/d/keys?"+q, ""), 400, httpapi.CodeBadRequest)
	}
	// The data plane's own refusals (a cursor it never gave, a bad pattern).
	wantStatus(t, serve(t, h, "GET", "/v1/dmaps/d/keys?cursor=!!", ""), 400, httpapi.CodeBadRequest)
	wantStatus(t, serve(t, h, "GET", "/v1/dmaps/d/keys?match=%5Babc", ""), 400, httpapi.CodeBadRequest)
}

func TestDestroy(t *testing.T) {
	c, h := newDataHandler(t)
	wantStatus(t, serve(t, h, "PUT", keyPath+"k", `{"value":1}`), 200, "")
	wantStatus(t, serve(t, h, "PUT", "/v1/dmaps/e/keys/k", `{"value":1}`), 200, "")
	r := serve(t, h, "DELETE", "/v1/dmaps/d", "")
	wantStatus(t, r, 200, "")
	wantBody(t, r, `{"destroyed":true}`)
	wantStatus(t, serve(t, h, "GET", keyPath+"k", ""), 404, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "GET", "/v1/dmaps/e/keys/k", ""), 200, "")
	if got := c.Calls().Destroyed; !slices.Equal(got, []string{"d"}) {
		t.Errorf("destroyed %q", got)
	}
	wantStatus(t, serve(t, h, "DELETE", "/v1/dmaps/"+strings.Repeat("x", dataplane.MaxDMapNameLen+1), ""), 413, httpapi.CodeTooLarge)
}

// TestPathEscaping: keys and DMap names are percent-decoded path
// segments; any byte, '/' included, goes through.
func TestPathEscaping(t *testing.T) {
	c, h := newDataHandler(t)
	for _, tc := range []struct{ dmap, key, escDMap, escKey string }{
		{"d", "a/b", "d", "a%2Fb"},
		{"d", "a//b", "d", "a%2F%2Fb"},
		{"d", "..", "d", "%2E%2E"},
		{"d", ".", "d", "%2e"},
		{"d", "/", "d", "%2F"},
		{"d", "100%", "d", "100%25"},
		{"d", "a b?c#d&e", "d", "a%20b%3Fc%23d&e"},
		{"d", "☃", "d", "%E2%98%83"},
		{"d", "\x00\xff", "d", "%00%FF"},
		{"a/b", "k", "a%2Fb", "k"},
		{"/", "/", "%2F", "%2f"},
		{"/", "k", "%2f", "k"},
	} {
		t.Run(tc.escKey, func(t *testing.T) {
			base := "/v1/dmaps/" + tc.escDMap + "/keys/" + tc.escKey
			wantStatus(t, serve(t, h, "PUT", base, `{"value":"x"}`), 200, "")
			if last := c.Calls().LastRequest; last.DMap != tc.dmap || last.Key != tc.key {
				t.Errorf("got dmap %q key %q", last.DMap, last.Key)
			}
			wantStored(t, c, tc.dmap, tc.key, []byte(`"x"`))
			r := serve(t, h, "GET", base, "")
			wantStatus(t, r, 200, "")
			if want := strings.ToValidUTF8(tc.key, "\uFFFD"); r.body["key"] != want {
				t.Errorf("key %q, want %q", r.body["key"], want)
			}
			wantStatus(t, serve(t, h, "POST", base+"/incr", ""), 409, httpapi.CodeNotANumber)
			wantBody(t, serve(t, h, "DELETE", base, ""), `{"deleted":true}`)
		})
	}
	r := serve(t, h, "DELETE", "/v1/dmaps/%2F", "")
	wantBody(t, r, `{"destroyed":true}`)
	if got := c.Calls().Destroyed; !slices.Equal(got, []string{"/"}) {
		t.Errorf("destroyed %q", got)
	}
	wantStatus(t, serve(t, h, "PATCH", "/v1/dmaps/%2F/keys/%2F", ""), 405, httpapi.CodeMethodNotAllowed)
	// An unescaped slash is another path.
	wantStatus(t, serve(t, h, "GET", keyPath+"a/b", ""), 404, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "GET", keyPath+"a/incr", ""), 405, httpapi.CodeMethodNotAllowed)
	wantStatus(t, serve(t, h, "GET", keyPath+"..", ""), 404, httpapi.CodeNotFound)
	wantStatus(t, serve(t, h, "GET", keyPath, ""), 404, httpapi.CodeNotFound)
}

func TestDataLimits(t *testing.T) {
	c := httpapitest.NewCluster(3, 7, 2)
	h := newHandler(t, c, httpapi.Options{MaxValueBytes: 1000})
	key := strings.Repeat("k", dataplane.MaxKeyLen)
	wantStatus(t, serve(t, h, "PUT", keyPath+key, `{"value":1}`), 200, "")
	wantStatus(t, serve(t, h, "GET", keyPath+key, ""), 200, "")
	// 64 KiB after unescaping: percent-encoded bytes count once.
	wantStatus(t, serve(t, h, "GET", keyPath+strings.Repeat("%2F", dataplane.MaxKeyLen), ""), 404, httpapi.CodeNotFound)
	long := keyPath + key + "k"
	for _, req := range [][3]string{
		{"GET", long, ""},
		{"PUT", long, `{"value":1}`},
		{"DELETE", long, ""},
		{"POST", long + "/incr", ""},
		{"POST", long + "/incrbyfloat", `{"delta":1}`},
		{"POST", long + "/expire", `{"ttl_ms":1}`},
		{"POST", long + "/getput", `{"value":1}`},
		{"POST", long + "/lock", ``},
		{"POST", long + "/unlock", `{"token":1}`},
		{"POST", long + "/lease", `{"token":1,"ttl_ms":1}`},
		{"GET", keyPath + strings.Repeat("%2F", dataplane.MaxKeyLen+1), ""},
		{"PUT", "/v1/dmaps/" + strings.Repeat("d", dataplane.MaxDMapNameLen+1) + "/keys/k", `{"value":1}`},
		{"GET", "/v1/dmaps/" + strings.Repeat("d", dataplane.MaxDMapNameLen+1) + "/keys", ""},
	} {
		wantStatus(t, serve(t, h, req[0], req[1], req[2]), 413, httpapi.CodeTooLarge)
	}
	wantStatus(t, serve(t, h, "PUT", "/v1/dmaps/"+strings.Repeat("d", dataplane.MaxDMapNameLen)+"/keys/k", `{"value":1}`), 200, "")

	calls := c.Calls().DataCalls
	// Values: the limit exactly, JSON and base64, then one more byte.
	maxJSON := `"` + strings.Repeat("v", 998) + `"`
	wantStatus(t, serve(t, h, "PUT", keyPath+"v", `{"value":`+maxJSON+`}`), 200, "")
	bin := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 1000))
	wantStatus(t, serve(t, h, "PUT", keyPath+"v", `{"value_base64":"`+bin+`"}`), 200, "")
	wantStatus(t, serve(t, h, "POST", keyPath+"v/getput", `{"value_base64":"`+bin+`"}`), 200, "")
	over := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 1001))
	wantStatus(t, serve(t, h, "PUT", keyPath+"v", `{"value":"`+strings.Repeat("v", 999)+`"}`), 413, httpapi.CodeTooLarge)
	wantStatus(t, serve(t, h, "PUT", keyPath+"v", `{"value_base64":"`+over+`"}`), 413, httpapi.CodeTooLarge)
	wantStatus(t, serve(t, h, "POST", keyPath+"v/getput", `{"value_base64":"`+over+`"}`), 413, httpapi.CodeTooLarge)
	// A body over DataBodyLimit.
	huge := `{"value":"` + strings.Repeat("v", int(httpapi.DataBodyLimit(1000))) + `"}`
	wantStatus(t, serve(t, h, "PUT", keyPath+"v", huge), 413, httpapi.CodeTooLarge)
	wantStatus(t, serve(t, h, "POST", keyPath+"v/incr", `{"delta":1`+strings.Repeat(" ", int(httpapi.DataBodyLimit(1000)))+`}`), 413, httpapi.CodeTooLarge)
	if got := c.Calls().DataCalls - calls; got != 3 {
		t.Errorf("%d data calls, want 3 (oversize values must not reach the cluster)", got)
	}
}

// TestDefaultValueLimit: with the default limit, a 16 MiB value fits in
// base64 and one more byte is refused; control-plane bodies keep 1 MiB.
func TestDefaultValueLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	if got, want := httpapi.DataBodyLimit(dataplane.DefaultMaxValueLen), int64(4*(16<<20+2)/3)+64<<10; got != want {
		t.Errorf("DataBodyLimit %d, want %d", got, want)
	}
	c := httpapitest.NewCluster(1, 1, 1)
	h := newHandler(t, c, httpapi.Options{})
	val := bytes.Repeat([]byte{0xfe}, dataplane.DefaultMaxValueLen)
	body := `{"value_base64":"` + base64.StdEncoding.EncodeToString(val) + `","ttl_ms":1000}`
	wantStatus(t, serve(t, h, "PUT", keyPath+"big", body), 200, "")
	wantStored(t, c, "d", "big", val)
	r := serve(t, h, "GET", keyPath+"big", "")
	if got, _ := base64.StdEncoding.DecodeString(r.body["value_base64"].(string)); !bytes.Equal(got, val) {
		t.Error("16 MiB value did not round-trip")
	}
	body = `{"value_base64":"` + base64.StdEncoding.EncodeToString(append(val, 0)) + `"}`
	wantStatus(t, serve(t, h, "PUT", keyPath+"big", body), 413, httpapi.CodeTooLarge)
	wantStatus(t, serve(t, h, "POST", "/v1/cluster/join", `{"addrs":["`+strings.Repeat("a", 2<<20)+`:1"]}`), 413, httpapi.CodeTooLarge)
}

// TestDataBadInput: malformed data requests are 400 and never reach the
// cluster.
func TestDataBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"put empty body", "PUT", "k", ""},
		{"put null", "PUT", "k", "null"},
		{"put array", "PUT", "k", "[1]"},
		{"put no value", "PUT", "k", `{}`},
		{"put null base64", "PUT", "k", `{"value_base64":null}`},
		{"put both", "PUT", "k", `{"value":1,"value_base64":"AA=="}`},
		{"put bad base64", "PUT", "k", `{"value_base64":"@@@"}`},
		{"put base64 not string", "PUT", "k", `{"value_base64":1}`},
		{"put unknown field", "PUT", "k", `{"value":1,"ttl":5}`},
		{"put malformed", "PUT", "k", `{"value":`},
		{"put bad value", "PUT", "k", `{"value":tru}`},
		{"put trailing", "PUT", "k", `{"value":1} {}`},
		{"put nx xx", "PUT", "k", `{"value":1,"nx":true,"xx":true}`},
		{"put nx if_version", "PUT", "k", `{"value":1,"nx":true,"if_version":0}`},
		{"put xx if_version", "PUT", "k", `{"value":1,"xx":true,"if_version":3}`},
		{"put nx string", "PUT", "k", `{"value":1,"nx":"yes"}`},
		{"put ttl negative", "PUT", "k", `{"value":1,"ttl_ms":-1}`},
		{"put ttl too long", "PUT", "k", fmt.Sprintf(`{"value":1,"ttl_ms":%d}`, dataplane.MaxTTL.Milliseconds()+1)},
		{"put ttl float", "PUT", "k", `{"value":1,"ttl_ms":1.5}`},
		{"put ttl huge", "PUT", "k", `{"value":1,"ttl_ms":1e30}`},
		{"put if_version negative", "PUT", "k", `{"value":1,"if_version":-1}`},
		{"incr float", "POST", "k/incr", `{"delta":1.5}`},
		{"incr string", "POST", "k/incr", `{"delta":"1"}`},
		{"incr huge", "POST", "k/incr", `{"delta":9223372036854775808}`},
		{"incr unknown", "POST", "k/incr", `{"by":1}`},
		{"incrbyfloat string", "POST", "k/incrbyfloat", `{"delta":"1"}`},
		{"expire negative", "POST", "k/expire", `{"ttl_ms":-5}`},
		{"expire null", "POST", "k/expire", `{"ttl_ms":null}`},
		{"getput empty", "POST", "k/getput", `{}`},
		{"getput ttl", "POST", "k/getput", `{"value":1,"ttl_ms":5}`},
		{"lock wait negative", "POST", "k/lock", `{"wait_ms":-1}`},
		{"unlock token string", "POST", "k/unlock", `{"token":"1"}`},
		{"lease negative", "POST", "k/lease", `{"token":1,"ttl_ms":-1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, h := newDataHandler(t)
			r := serve(t, h, tc.method, keyPath+tc.path, tc.body)
			wantStatus(t, r, 400, httpapi.CodeBadRequest)
			if n := c.Calls().DataCalls; n != 0 {
				t.Errorf("%d calls reached the cluster", n)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	c, h := newDataHandler(t)
	req := httptest.NewRequest("PUT", keyPath+"k", strings.NewReader(`{"value":1}`))
	req.Header.Set(httpapi.HeaderRequestID, "req-7")
	wantStatus(t, serveReq(t, h, req), 200, "")
	if got := c.Calls().LastRequest.RequestID; got != "req-7" {
		t.Errorf("RequestID %q", got)
	}
	req = httptest.NewRequest("POST", keyPath+"k/incr", nil)
	req.Header.Set(httpapi.HeaderRequestID, strings.Repeat("x", httpapi.MaxRequestIDLen+1))
	wantStatus(t, serveReq(t, h, req), 400, httpapi.CodeBadRequest)
}

// TestDataErrorCodes maps every data-plane sentinel (wrapped, as the node
// returns them) through every data route.
func TestDataErrorCodes(t *testing.T) {
	routes := [][3]string{
		{"GET", keyPath + "k", ""},
		{"PUT", keyPath + "k", `{"value":1}`},
		{"DELETE", keyPath + "k", ""},
		{"POST", keyPath + "k/incr", ""},
		{"POST", keyPath + "k/incrbyfloat", `{"delta":1}`},
		{"POST", keyPath + "k/expire", `{"ttl_ms":1}`},
		{"POST", keyPath + "k/getput", `{"value":1}`},
		{"POST", keyPath + "k/lock", `{"ttl_ms":1}`},
		{"POST", keyPath + "k/unlock", `{"token":1}`},
		{"POST", keyPath + "k/lease", `{"token":1,"ttl_ms":1}`},
		{"GET", "/v1/dmaps/d/keys", ""},
		{"DELETE", "/v1/dmaps/d", ""},
	}
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{dataplane.ErrKeyExists, 409, httpapi.CodeKeyExists},
		{dataplane.ErrVersionMismatch, 409, httpapi.CodeVersionMismatch},
		{dataplane.ErrNotANumber, 409, httpapi.CodeNotANumber},
		{dataplane.ErrOverflow, 409, httpapi.CodeOverflow},
		{dataplane.ErrLocked, 409, httpapi.CodeLocked},
		{dataplane.ErrNoSuchLock, 409, httpapi.CodeNoSuchLock},
		{dataplane.ErrInvalid, 400, httpapi.CodeBadRequest},
		{dataplane.ErrTooLarge, 413, httpapi.CodeTooLarge},
		{dataplane.ErrUnavailable, 503, httpapi.CodeUnavailable},
		{dataplane.ErrOverloaded, 503, httpapi.CodeOverloaded},
		{dataplane.ErrIndeterminate, 503, httpapi.CodeTimeout},
		{dataplane.ErrStaleRouting, 503, httpapi.CodeUnavailable},
		{dataplane.ErrFencedEpoch, 503, httpapi.CodeUnavailable},
		{dataplane.ErrSeqGap, 503, httpapi.CodeUnavailable},
		{dataplane.ErrFull, 507, httpapi.CodeFull},
		{errors.Join(dataplane.ErrUnavailable, nil, dataplane.ErrOverloaded), 503, httpapi.CodeUnavailable},
		{fmt.Errorf("%w: %w", dataplane.ErrIndeterminate, context.DeadlineExceeded), 503, httpapi.CodeTimeout},
		{node.ErrClosed, 503, httpapi.CodeClosed},
		{node.ErrLeaving, 503, httpapi.CodeLeaving},
		{fmt.Errorf("%w: %w", node.ErrClosed, dataplane.ErrUnavailable), 503, httpapi.CodeClosed},
		{errors.New("unexpected"), 500, httpapi.CodeInternal},
	} {
		t.Run(tc.code+"/"+tc.err.Error(), func(t *testing.T) {
			c, h := newDataHandler(t)
			c.Set(func(s *httpapitest.State) { s.DataErr = fmt.Errorf("op failed: %w", tc.err) })
			for _, rt := range routes {
				r := serve(t, h, rt[0], rt[1], rt[2])
				wantStatus(t, r, tc.status, tc.code)
				msg, _ := r.body["error"].(map[string]any)["message"].(string)
				if !strings.Contains(msg, "op failed") {
					t.Errorf("%s %s: message %q does not carry the error", rt[0], rt[1], msg)
				}
				if errors.Is(tc.err, dataplane.ErrIndeterminate) && !strings.Contains(msg, "the write may or may not have happened; retry with the same request id") {
					t.Errorf("%s %s: message %q", rt[0], rt[1], msg)
				}
			}
		})
	}

	// not_found: 404 where there is a key to miss; delete and expire
	// answer false instead.
	c, h := newDataHandler(t)
	c.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrNotFound })
	for _, rt := range routes {
		r := serve(t, h, rt[0], rt[1], rt[2])
		switch {
		case rt[0] == "DELETE" && strings.Contains(rt[1], "/keys/"):
			wantBody(t, r, `{"deleted":false}`)
		case strings.HasSuffix(rt[1], "/expire"):
			wantBody(t, r, `{"found":false}`)
		case strings.HasSuffix(rt[1], "/unlock") || strings.HasSuffix(rt[1], "/lease"):
			wantStatus(t, r, 409, httpapi.CodeNoSuchLock)
		default:
			wantStatus(t, r, 404, httpapi.CodeNotFound)
		}
	}
}

// TestDataTimeouts: the data budget applies, and a write that ran out of
// time is indeterminate while a read is just a timeout.
func TestDataTimeouts(t *testing.T) {
	c, h := newDataHandler(t)
	var deadlines []time.Duration
	var mu sync.Mutex
	c.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, method string) error {
			dl, ok := ctx.Deadline()
			if !ok {
				return fmt.Errorf("%s without a deadline", method)
			}
			mu.Lock()
			deadlines = append(deadlines, time.Until(dl))
			mu.Unlock()
			return fmt.Errorf("gave up: %w", context.DeadlineExceeded)
		}
	})
	r := serve(t, h, "PUT", keyPath+"k", `{"value":1}`)
	wantStatus(t, r, 503, httpapi.CodeTimeout)
	if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "retry with the same request id") {
		t.Errorf("write timeout message %q", msg)
	}
	r = serve(t, h, "GET", keyPath+"k", "")
	wantStatus(t, r, 503, httpapi.CodeTimeout)
	if msg := r.body["error"].(map[string]any)["message"].(string); strings.Contains(msg, "may or may not") {
		t.Errorf("read timeout message %q", msg)
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/lock", `{"wait_ms":20000}`), 503, httpapi.CodeTimeout)
	wantStatus(t, serve(t, h, "GET", "/v1/dmaps/d/keys", ""), 503, httpapi.CodeTimeout)
	wantStatus(t, serve(t, h, "DELETE", "/v1/dmaps/d", ""), 503, httpapi.CodeTimeout)
	mu.Lock()
	defer mu.Unlock()
	if len(deadlines) != 5 || deadlines[0] > 15*time.Second || deadlines[2] < 30*time.Second || deadlines[2] > 35*time.Second {
		t.Errorf("budgets %v", deadlines)
	}
}

func TestDataMethodNotAllowed(t *testing.T) {
	_, h := newDataHandler(t)
	for target, allow := range map[string]string{
		keyPath + "k":        "GET, HEAD, PUT, DELETE",
		keyPath + "k/incr":   "POST",
		keyPath + "k/unlock": "POST",
		"/v1/dmaps/d/keys":   "GET, HEAD",
		"/v1/dmaps/d":        "DELETE",
	} {
		r := serve(t, h, "PATCH", target, "")
		wantStatus(t, r, 405, httpapi.CodeMethodNotAllowed)
		if r.header.Get("Allow") != allow {
			t.Errorf("PATCH %s: Allow %q, want %q", target, r.header.Get("Allow"), allow)
		}
	}
	wantStatus(t, serve(t, h, "POST", keyPath+"k/decr", ""), 404, httpapi.CodeNotFound)
}

// TestDataOverHTTP: through a real server and net/http's client, encoded
// slashes stay one segment and big values pass.
func TestDataOverHTTP(t *testing.T) {
	c := httpapitest.NewCluster(3, 7, 2)
	srv := httptest.NewServer(httpapi.New(c, httpapi.Options{Logger: testLogger(t)}))
	defer srv.Close()
	do := func(method, path, body string) (int, []byte, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	if code, b, hdr := do("PUT", "/v1/dmaps/d/keys/a%2Fb", `{"value":[1, 2]}`); code != 200 || hdr.Get(httpapi.HeaderRoutingVersion) != "42" {
		t.Fatalf("put: %d %s", code, b)
	}
	wantStored(t, c, "d", "a/b", []byte(`[1, 2]`))
	code, b, _ := do("GET", "/v1/dmaps/d/keys/a%2Fb", "")
	if code != 200 || !bytes.Contains(b, []byte(`"key":"a/b","value":[1, 2],`)) {
		t.Errorf("get: %d %s", code, b)
	}
	key := strings.Repeat("%2F", dataplane.MaxKeyLen)
	if code, b, _ := do("PUT", "/v1/dmaps/d/keys/"+key, `{"value":1}`); code != 200 {
		t.Errorf("64 KiB key, percent-encoded: %d %s", code, b)
	}
}
