package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/node"
)

// fuzzErrors are the errors the fake cluster may return, picked by the low
// bits of the fuzzer's mode byte: everything the node's contract allows.
var fuzzErrors = []error{
	nil,
	node.ErrClosed, node.ErrNotReady, node.ErrNoLeader, node.ErrNotLeader,
	node.ErrUnknownMember, node.ErrMemberAlive, node.ErrLeaving, node.ErrTimeout,
	node.ErrJoinFailed, node.ErrInvalidArgument, context.DeadlineExceeded,
	node.ErrPartitionAvailable,
}

// fuzzDataErrors are the errors the fake's data plane may return when
// mode bit 7 is set, picked by the low bits: every sentinel of dataplane
// and the node errors a data operation may meet.
var fuzzDataErrors = []error{
	dataplane.ErrNotFound, dataplane.ErrKeyExists, dataplane.ErrVersionMismatch,
	dataplane.ErrNotANumber, dataplane.ErrOverflow, dataplane.ErrLocked, dataplane.ErrNoSuchLock,
	dataplane.ErrInvalid, dataplane.ErrTooLarge, dataplane.ErrUnavailable, dataplane.ErrStaleRouting,
	dataplane.ErrFencedEpoch, dataplane.ErrIndeterminate, dataplane.ErrOverloaded,
	dataplane.ErrFull, node.ErrClosed,
}

// FuzzHandler feeds arbitrary requests to the handler: whatever a client
// sends, the answer is never a 500, always JSON, and carries the headers of
// the contract. The mode byte picks the fake cluster's state: bits 0-3 an
// error for every fallible method (none: the fake's simulation of
// force-assign), bit 4 no leader, bit 5 an uninitialized routing table, bit
// 6 partitions 1, 4 and 12 unavailable, bit 7 the data plane fails with
// one of fuzzDataErrors (picked by bits 0-3; otherwise it is the fake's
// in-memory store, holding the key "k" of DMap "d", which is 7).
func FuzzHandler(f *testing.F) {
	for _, s := range []struct {
		method, target, body string
		mode                 uint8
	}{
		{"GET", "/v1/cluster/routing", "", 0},
		{"GET", "/v1/cluster/routing?partition=3", "", 0},
		{"GET", "/v1/cluster/routing?partition=x", "", 0},
		{"GET", "/v1/cluster/routing?partition=3", "", 32},
		{"GET", "/v1/cluster/members", "", 0},
		{"GET", "/v1/cluster/leader", "", 16},
		{"GET", "/v1/cluster/locate?dmap=a&key=b", "", 0},
		{"GET", "/v1/cluster/locate?dmap=a", "", 32},
		{"POST", "/v1/cluster/join", `{"addrs":["127.0.0.1:3322"]}`, 0},
		{"POST", "/v1/cluster/join", `{"addrs":["127.0.0.1:3322"]}`, 9},
		{"POST", "/v1/cluster/join", `{"addrs":[1,{}]}`, 0},
		{"POST", "/v1/cluster/leave", "", 1},
		{"POST", "/v1/cluster/leave", "{}", 0},
		{"DELETE", "/v1/cluster/members/node-2", "", 6},
		{"DELETE", "/v1/cluster/members/%00", "", 0},
		{"POST", "/v1/cluster/partitions/force-assign", `{}`, 0},
		{"POST", "/v1/cluster/partitions/force-assign", `{}`, 64},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[4,12],"node":"node-2"}`, 64},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[1],"node":"node-9"}`, 64},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[3]}`, 64},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[1]}`, 12},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[1]}`, 32 + 64},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[-1,1e9,4294967296,null,"x"]}`, 0},
		{"POST", "/v1/cluster/partitions/force-assign", `{"partitions":[],"node":"a/b"}`, 0},
		{"POST", "/v1/cluster/partitions/force-assign", `null`, 0},
		{"GET", "/v1/cluster/partitions/force-assign", "", 0},
		{"GET", "/v1/status", "", 0},
		{"GET", "/v1/status", "", 64},
		{"GET", "/healthz", "", 0},
		{"GET", "/readyz", "", 2},
		{"PATCH", "/v1/cluster/join", "", 0},
		{"GET", "/v1/../../etc/passwd", "", 0},
		{"GET", "http://example.com/v1/status", "", 0},
		{"PUT", "/v1/dmaps/d/keys/k", `{"value":{"a":[1,2]},"ttl_ms":1000,"nx":true}`, 0},
		{"PUT", "/v1/dmaps/d/keys/a%2Fb", `{"value_base64":"AP8=","if_version":0}`, 0},
		{"PUT", "/v1/dmaps/%2F/keys/%2F", `{"value":1,"xx":true}`, 0},
		{"PUT", "/v1/dmaps/d/keys/k", `{"value":1,"value_base64":"AA=="}`, 0},
		{"PUT", "/v1/dmaps/d/keys/k", `{"value":1,"ttl_ms":-1}`, 0},
		{"PUT", "/v1/dmaps/d/keys/k", `{"value":1}`, 0x80 | 12},
		{"GET", "/v1/dmaps/d/keys/k", "", 0},
		{"GET", "/v1/dmaps/d/keys/k", "", 0x80},
		{"DELETE", "/v1/dmaps/d/keys/k", "", 0},
		{"POST", "/v1/dmaps/d/keys/k/incr", `{"delta":5}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/incr", ``, 0x80 | 4},
		{"POST", "/v1/dmaps/d/keys/k/incrbyfloat", `{"delta":1.5e308}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/expire", `{"ttl_ms":0}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/getput", `{"value":"x"}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/lock", `{"ttl_ms":100,"wait_ms":1}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/unlock", `{"token":1}`, 0},
		{"POST", "/v1/dmaps/d/keys/k/lease", `{"token":1,"ttl_ms":5}`, 0},
		{"GET", "/v1/dmaps/d/keys?match=k*&limit=5", "", 0},
		{"GET", "/v1/dmaps/d/keys?cursor=zz&limit=0", "", 0},
		{"DELETE", "/v1/dmaps/d", "", 0x80 | 9},
	} {
		f.Add(s.method, s.target, []byte(s.body), s.mode)
	}
	logger := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, method, target string, body []byte, mode uint8) {
		req, ok := fuzzRequest(method, target, body)
		if !ok {
			return
		}
		c := httpapitest.NewCluster(3, 13, 2)
		if mode&0x40 != 0 {
			c.LosePartitions(1, 4, 12)
		}
		if _, err := c.Do(context.Background(), &dataplane.Request{Op: dataplane.OpPut, DMap: "d", Key: "k", Value: []byte("7")}); err != nil {
			t.Fatal(err)
		}
		c.Set(func(s *httpapitest.State) {
			err := fuzzErrors[int(mode&0x0f)%len(fuzzErrors)]
			s.ReadyErr, s.JoinErr, s.LeaveErr, s.RemoveErr, s.ForceAssignErr = err, err, err, err, err
			if mode&0x80 != 0 {
				s.DataErr = fuzzDataErrors[int(mode&0x0f)%len(fuzzDataErrors)]
			}
			if mode&0x10 != 0 {
				s.HasLeader = false
			}
			if mode&0x20 != 0 {
				s.Table = nil
			}
		})
		h := httpapi.New(c, httpapi.Options{Logger: logger, MaxBodyBytes: 4096, MaxValueBytes: 1024, OnLeft: func() {}})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code == http.StatusInternalServerError || rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("%s %q: status %d: %s", method, target, rec.Code, rec.Body.Bytes())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %q: Content-Type %q", method, target, ct)
		}
		if rec.Header().Get(httpapi.HeaderRoutingVersion) == "" {
			t.Fatalf("%s %q: no %s", method, target, httpapi.HeaderRoutingVersion)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %q: body %q is not a JSON object: %v", method, target, rec.Body.Bytes(), err)
		}
		if rec.Code >= 400 {
			e, _ := m["error"].(map[string]any)
			if code, _ := e["code"].(string); code == "" {
				t.Fatalf("%s %q: error without code: %s", method, target, rec.Body.Bytes())
			}
		}
		if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s %q: 503 without Retry-After", method, target)
		}
		if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
			t.Fatalf("%s %q: 405 without Allow", method, target)
		}
	})
}

// fuzzRequest builds the request net/http's server would hand the handler,
// or false when the server would have rejected it before (bad method or
// request target).
func fuzzRequest(method, target string, body []byte) (*http.Request, bool) {
	if method == "" || len(method) > 32 || strings.ContainsFunc(method, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	}) {
		return nil, false
	}
	if strings.ContainsFunc(target, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || (u.Scheme == "" && !strings.HasPrefix(target, "/")) {
		return nil, false
	}
	req, err := http.NewRequest(method, "http://example.com/", bytes.NewReader(body))
	if err != nil {
		return nil, false
	}
	req.URL = u
	req.RequestURI = target
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return req, true
}
