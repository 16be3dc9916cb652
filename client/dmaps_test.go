package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/dataplane"
)

// TestValuesRoundTrip: every value comes back byte for byte, as JSON when
// it is JSON text, and is stored as given.
func TestValuesRoundTrip(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	for i, tc := range []struct {
		value []byte
		json  bool
	}{
		{[]byte(`{"a": [1, 2], "h": "<&>"}`), true},
		{[]byte(`"héllo"`), true},
		{[]byte(`42`), true},
		{[]byte(`null`), true},
		{[]byte(`hello`), false},
		{[]byte(` 42`), false},
		{[]byte("\"\xff\""), false},
		{[]byte{0, 1, 2, 0xff}, false},
		{[]byte{}, false},
		{bytes.Repeat([]byte("x"), 100_000), false},
	} {
		key := fmt.Sprintf("k%d", i)
		if got := client.IsJSONText(tc.value); got != tc.json {
			t.Errorf("IsJSONText(%q) = %v", tc.value, got)
		}
		v, err := c.Put(ctx, "d", key, tc.value)
		if err != nil {
			t.Fatalf("put %q: %v", tc.value, err)
		}
		stored, ver, _, ok := fake.Entry("d", key)
		if !ok || !bytes.Equal(stored, tc.value) || ver != v {
			t.Errorf("put %q: stored %q version %d, answered %d", tc.value, stored, ver, v)
		}
		e, err := c.Get(ctx, "d", key)
		if err != nil {
			t.Fatalf("get %q: %v", tc.value, err)
		}
		if !bytes.Equal(e.Value, tc.value) || e.JSON != tc.json || e.Version != v || e.TTL != 0 {
			t.Errorf("get %.40q: %+v", tc.value, e)
		}
	}
	_, err := c.Get(ctx, "d", "missing")
	wantAPIError(t, err, 404, client.CodeNotFound)
}

func TestPutJSON(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, _ := newServer(t, fake)
	if _, err := c.PutJSON(context.Background(), "d", "k", map[string]any{"html": "<b>", "n": 1}); err != nil {
		t.Fatal(err)
	}
	if v, _, _, _ := fake.Entry("d", "k"); string(v) != `{"html":"<b>","n":1}` {
		t.Errorf("stored %s", v)
	}
	if _, err := c.PutJSON(context.Background(), "d", "k", func() {}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("unencodable: %v", err)
	}
}

func TestKeysEscaped(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	for _, k := range [][2]string{
		{"d", "a/b"}, {"d", "/"}, {"d", "//"}, {"d", "."}, {"d", ".."}, {"d", "a b?c#d&e=f"},
		{"d", "100%"}, {"d", "☃"}, {"d", "\x00\xff"}, {"a/b", "k"}, {"/", "/"}, {"..", "."},
		{"d", strings.Repeat("k", dataplane.MaxKeyLen)},
	} {
		if _, err := c.Put(ctx, k[0], k[1], []byte("1")); err != nil {
			t.Fatalf("put %.20q/%.20q: %v", k[0], k[1], err)
		}
		if last := fake.Calls().LastRequest; last.DMap != k[0] || last.Key != k[1] {
			t.Errorf("sent %.20q/%.20q, the cluster got %.20q/%.20q", k[0], k[1], last.DMap, last.Key)
		}
		if e, err := c.Get(ctx, k[0], k[1]); err != nil || string(e.Value) != "1" {
			t.Errorf("get %.20q/%.20q: %+v %v", k[0], k[1], e, err)
		}
		if ok, err := c.Delete(ctx, k[0], k[1]); !ok || err != nil {
			t.Errorf("delete %.20q/%.20q: %v %v", k[0], k[1], ok, err)
		}
	}
	_, err := c.Put(ctx, "d", strings.Repeat("k", dataplane.MaxKeyLen+1), []byte("1"))
	wantAPIError(t, err, 413, client.CodeTooLarge)
	for _, k := range [][2]string{{"", "k"}, {"d", ""}} {
		if _, err := c.Put(ctx, k[0], k[1], nil); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("put %q/%q: %v", k[0], k[1], err)
		}
		if _, err := c.Get(ctx, k[0], k[1]); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("get %q/%q: %v", k[0], k[1], err)
		}
	}
	if fake.Calls().DataCalls != 3*13 {
		t.Errorf("%d data calls: invalid arguments were sent", fake.Calls().DataCalls)
	}
}

func TestPutOptions(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()

	_, err := c.Put(ctx, "d", "k", []byte("1"), client.XX())
	wantAPIError(t, err, 404, client.CodeNotFound)
	v1, err := c.Put(ctx, "d", "k", []byte("1"), client.NX(), client.WithTTL(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if last := fake.Calls().LastRequest; !last.NX || last.XX || last.HasIfVersion || last.TTL != 90*time.Second {
		t.Errorf("request %+v", last)
	}
	e, err := c.Get(ctx, "d", "k")
	if err != nil || e.TTL <= 89*time.Second || e.TTL > 90*time.Second {
		t.Errorf("get: %+v %v", e, err)
	}
	_, err = c.Put(ctx, "d", "k", []byte("2"), client.NX())
	wantAPIError(t, err, 409, client.CodeKeyExists)
	_, err = c.Put(ctx, "d", "k", []byte("2"), client.IfVersion(0))
	wantAPIError(t, err, 409, client.CodeVersionMismatch)
	_, err = c.Put(ctx, "d", "k", []byte("2"), client.IfVersion(v1+1))
	wantAPIError(t, err, 409, client.CodeVersionMismatch)
	v2, err := c.Put(ctx, "d", "k", []byte("2"), client.IfVersion(v1))
	if err != nil || v2 <= v1 {
		t.Fatalf("cas: %d %v", v2, err)
	}
	if last := fake.Calls().LastRequest; !last.HasIfVersion || last.IfVersion != v1 || last.TTL != 0 {
		t.Errorf("request %+v", last)
	}
	if _, err := c.Put(ctx, "d", "k", []byte("3"), client.XX(), client.WithTTL(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	if last := fake.Calls().LastRequest; !last.XX || last.TTL != time.Millisecond {
		t.Errorf("a sub-millisecond TTL must round up: %+v", last)
	}
	if _, err := c.Put(ctx, "new", "k", []byte("1"), client.IfVersion(0)); err != nil {
		t.Errorf("IfVersion(0) on a missing key: %v", err)
	}

	calls := fake.Calls().DataCalls
	for _, opts := range [][]client.PutOption{
		{client.NX(), client.XX()},
		{client.IfVersion(1), client.NX()},
		{client.WithTTL(-time.Second)},
	} {
		if _, err := c.Put(ctx, "d", "k", []byte("1"), opts...); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("got %v, want ErrInvalidArgument", err)
		}
	}
	if fake.Calls().DataCalls != calls {
		t.Error("invalid options were sent")
	}
}

func TestDeleteIncrExpire(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()

	n, v1, err := c.Incr(ctx, "d", "n", 5)
	if err != nil || n != 5 {
		t.Fatalf("incr: %d %v", n, err)
	}
	n, v2, err := c.Incr(ctx, "d", "n", -7)
	if err != nil || n != -2 || v2 <= v1 {
		t.Errorf("decr: %d %d %v", n, v2, err)
	}
	if e, _ := c.Get(ctx, "d", "n"); string(e.Value) != "-2" || !e.JSON {
		t.Errorf("counter reads %+v", e)
	}
	f, _, err := c.IncrByFloat(ctx, "d", "n", 0.5)
	if err != nil || f != -1.5 {
		t.Errorf("incrbyfloat: %v %v", f, err)
	}
	_, _, err = c.Incr(ctx, "d", "n", 1)
	wantAPIError(t, err, 409, client.CodeNotANumber)
	if _, err := c.Put(ctx, "d", "max", []byte("9223372036854775807")); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Incr(ctx, "d", "max", 1)
	wantAPIError(t, err, 409, client.CodeOverflow)

	found, err := c.Expire(ctx, "d", "n", time.Minute)
	if !found || err != nil {
		t.Errorf("expire: %v %v", found, err)
	}
	if e, _ := c.Get(ctx, "d", "n"); e.TTL <= 59*time.Second || e.TTL > time.Minute {
		t.Errorf("TTL %v", e.TTL)
	}
	if found, err = c.Expire(ctx, "d", "n", 0); !found || err != nil {
		t.Errorf("persist: %v %v", found, err)
	}
	if e, _ := c.Get(ctx, "d", "n"); e.TTL != 0 {
		t.Errorf("TTL after persist %v", e.TTL)
	}
	if found, err = c.Expire(ctx, "d", "missing", time.Second); found || err != nil {
		t.Errorf("expire missing: %v %v", found, err)
	}
	if _, err := c.Expire(ctx, "d", "n", -1); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("negative: %v", err)
	}

	if ok, err := c.Delete(ctx, "d", "n"); !ok || err != nil {
		t.Errorf("delete: %v %v", ok, err)
	}
	if ok, err := c.Delete(ctx, "d", "n"); ok || err != nil {
		t.Errorf("delete again: %v %v", ok, err)
	}
}

func TestGetPut(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	prev, v1, err := c.GetPut(ctx, "d", "k", []byte(`{"a":1}`))
	if prev != nil || err != nil || v1 == 0 {
		t.Fatalf("first: %+v %d %v", prev, v1, err)
	}
	prev, v2, err := c.GetPut(ctx, "d", "k", []byte{0xff})
	if err != nil || v2 <= v1 || prev == nil || string(prev.Value) != `{"a":1}` || !prev.JSON {
		t.Fatalf("second: %+v %d %v", prev, v2, err)
	}
	prev, _, err = c.GetPut(ctx, "d", "k", []byte(`null`))
	if err != nil || prev == nil || !bytes.Equal(prev.Value, []byte{0xff}) || prev.JSON {
		t.Fatalf("third: %+v %v", prev, err)
	}
	// A previous JSON null is a value, not "no previous value".
	prev, _, err = c.GetPut(ctx, "d", "k", []byte(`1`))
	if err != nil || prev == nil || string(prev.Value) != "null" || !prev.JSON {
		t.Fatalf("fourth: %+v %v", prev, err)
	}
}

func TestLocks(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	tok, err := c.Lock(ctx, "d", "lk", time.Minute, 0)
	if err != nil || tok == 0 {
		t.Fatalf("lock: %d %v", tok, err)
	}
	if last := fake.Calls().LastRequest; last.Op != dataplane.OpLock || last.TTL != time.Minute || last.Wait != 0 {
		t.Errorf("request %+v", last)
	}
	_, err = c.Lock(ctx, "d", "lk", time.Minute, 10*time.Millisecond)
	wantAPIError(t, err, 409, client.CodeLocked)
	wantAPIError(t, c.Unlock(ctx, "d", "lk", tok+1), 409, client.CodeNoSuchLock)
	wantAPIError(t, c.Lease(ctx, "d", "lk", tok+1, time.Second), 409, client.CodeNoSuchLock)
	if err := c.Lease(ctx, "d", "lk", tok, 2*time.Minute); err != nil {
		t.Errorf("lease: %v", err)
	}

	// A second holder waits for the first to unlock; its token is larger.
	var wg sync.WaitGroup
	var tok2 uint64
	var err2 error
	wg.Go(func() { tok2, err2 = c.Lock(ctx, "d", "lk", time.Minute, 20*time.Second) })
	waitFor(t, func() bool {
		l := fake.Calls().LastRequest
		return l.Op == dataplane.OpLock && l.Wait == 20*time.Second
	})
	if err := c.Unlock(ctx, "d", "lk", tok); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	wg.Wait()
	if err2 != nil || tok2 <= tok {
		t.Errorf("second holder: %d %v (first token %d)", tok2, err2, tok)
	}
	wantAPIError(t, c.Unlock(ctx, "d", "lk", tok), 409, client.CodeNoSuchLock)
	if _, err := c.Lock(ctx, "d", "lk", -1, 0); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("negative ttl: %v", err)
	}
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
	fake := httpapitest.NewCluster(3, 7, 2)
	fake.Set(func(s *httpapitest.State) { s.ScanPage = 7 }) // short pages
	c, _ := newServer(t, fake)
	ctx := context.Background()
	var want []string
	for i := range 1200 { // more than one ScanAll page
		k := fmt.Sprintf("user/%04d", i)
		want = append(want, k)
		if _, err := c.Put(ctx, "d", k, []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "d", "other", []byte("1")); err != nil {
		t.Fatal(err)
	}

	keys, next, err := c.Scan(ctx, "d", "user/*", "", 5)
	if err != nil || !slices.Equal(keys, want[:5]) || next == "" {
		t.Fatalf("first page: %q %q %v", keys, next, err)
	}
	if s := fake.Calls().LastScan; s.Match != "user/*" || s.Limit != 5 || s.Cursor != "" || s.DMap != "d" {
		t.Errorf("scan call %+v", s)
	}
	keys, _, err = c.Scan(ctx, "d", "user/*", next, 5)
	if err != nil || !slices.Equal(keys, want[5:10]) {
		t.Errorf("second page: %q %v", keys, err)
	}
	if _, _, err := c.Scan(ctx, "d", "", "", 0); err != nil || fake.Calls().LastScan.Limit != 100 {
		t.Errorf("default limit: %v %+v", err, fake.Calls().LastScan)
	}

	fake.Set(func(s *httpapitest.State) { s.ScanPage = 0 })
	var got []string
	for k, err := range c.ScanAll(ctx, "d", "user/*") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if !slices.Equal(got, want) || fake.Calls().LastScan.Limit != client.ScanAllPageSize {
		t.Errorf("ScanAll: %d keys, limit %d", len(got), fake.Calls().LastScan.Limit)
	}
	// Breaking out stops the scan.
	n := 0
	for range c.ScanAll(ctx, "d", "") {
		if n++; n == 3 {
			break
		}
	}
	// An error ends the iteration.
	fake.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrUnavailable })
	var errs []error
	for k, err := range c.ScanAll(ctx, "d", "") {
		if k != "" {
			t.Errorf("key %q with the error", k)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 {
		t.Fatalf("errors %v", errs)
	}
	wantAPIError(t, errs[0], 503, client.CodeUnavailable)

	empty, next, err := c.Scan(ctx, "", "", "", 0)
	if !errors.Is(err, client.ErrInvalidArgument) || empty != nil || next != "" {
		t.Errorf("empty dmap: %v", err)
	}
}

func TestDestroy(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	if _, err := c.Put(ctx, "a/b", "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a/b", "k"); !client.IsCode(err, client.CodeNotFound) {
		t.Errorf("after destroy: %v", err)
	}
	if got := fake.Calls().Destroyed; !slices.Equal(got, []string{"a/b"}) {
		t.Errorf("destroyed %q", got)
	}
	if err := c.Destroy(ctx, ""); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("empty: %v", err)
	}
}

func TestRequestID(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, _ := newServer(t, fake)
	ctx := client.ContextWithRequestID(context.Background(), "retry-me-1")
	if _, _, err := c.Incr(ctx, "d", "n", 1); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls().LastRequest.RequestID; got != "retry-me-1" {
		t.Errorf("request id %q", got)
	}
	if _, err := c.Put(context.Background(), "d", "k", nil); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls().LastRequest.RequestID; got != "" {
		t.Errorf("request id %q without one", got)
	}
}

// TestDataErrors: every data-plane code arrives as an *APIError; 503s
// carry Retry-After.
func TestDataErrors(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	c, _ := newServer(t, fake)
	ctx := context.Background()
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{dataplane.ErrUnavailable, 503, client.CodeUnavailable},
		{dataplane.ErrOverloaded, 503, client.CodeOverloaded},
		{dataplane.ErrIndeterminate, 503, client.CodeTimeout},
		{dataplane.ErrTooLarge, 413, client.CodeTooLarge},
		{dataplane.ErrInvalid, 400, client.CodeBadRequest},
		{dataplane.ErrLocked, 409, client.CodeLocked},
	} {
		fake.Set(func(s *httpapitest.State) { s.DataErr = tc.err })
		_, err := c.Put(ctx, "d", "k", []byte("1"))
		ae := wantAPIError(t, err, tc.status, tc.code)
		if tc.code == client.CodeTimeout && !strings.Contains(ae.Message, "retry with the same request id") {
			t.Errorf("timeout message %q", ae.Message)
		}
		if err := c.Destroy(ctx, "d"); !client.IsCode(err, tc.code) {
			t.Errorf("destroy: %v", err)
		}
	}
}

// TestDataCodesMatchServer keeps the client's data-plane codes equal to
// the server's.
func TestDataCodesMatchServer(t *testing.T) {
	for _, p := range [][2]string{
		{client.CodeKeyExists, httpapi.CodeKeyExists},
		{client.CodeVersionMismatch, httpapi.CodeVersionMismatch},
		{client.CodeNotANumber, httpapi.CodeNotANumber},
		{client.CodeOverflow, httpapi.CodeOverflow},
		{client.CodeLocked, httpapi.CodeLocked},
		{client.CodeNoSuchLock, httpapi.CodeNoSuchLock},
		{client.CodeOverloaded, httpapi.CodeOverloaded},
		{client.CodeFull, httpapi.CodeFull},
		{client.CodeQuorumAtRisk, httpapi.CodeQuorumAtRisk},
		{client.CodeNotFound, dataplane.CodeNotFound},
		{client.CodeBadRequest, dataplane.CodeInvalid},
		{client.CodeTooLarge, dataplane.CodeTooLarge},
		{client.CodeTimeout, dataplane.CodeIndeterminate},
		{client.CodeUnavailable, dataplane.CodeUnavailable},
	} {
		if p[0] != p[1] {
			t.Errorf("client code %q != server code %q", p[0], p[1])
		}
	}
}
