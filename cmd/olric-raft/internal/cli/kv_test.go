package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
)

func TestKVPutGet(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	addr := apiServer(t, fake)
	kv := func(args ...string) result {
		return run(t, Deps{}, nil, append(append([]string{"kv"}, args...), "--address", addr)...)
	}

	r := kv("put", "users", "alice", `{"age": 30}`)
	r.want(t, 0, []string{"version: 1"}, nil)
	if v, ver, _, ok := fake.Entry("users", "alice"); !ok || string(v) != `{"age": 30}` || ver != 1 {
		t.Errorf("stored %q version %d", v, ver)
	}
	r = kv("get", "users", "alice")
	r.want(t, 0, nil, nil)
	for first, want := range map[string][]string{
		"key:":     {"key:", "alice"},
		"value:":   {"value:", `{"age": 30}`},
		"version:": {"version:", "1"},
		"ttl:":     {"ttl:", "none"},
	} {
		if got := findRow(r.stdout, first); !slices.Equal(got, want) {
			t.Errorf("row %q: %q\n%s", first, got, r.stdout)
		}
	}
	r = kv("get", "users", "alice", "-o", "json")
	r.want(t, 0, nil, nil)
	var got struct {
		Key     string          `json:"key"`
		Value   json.RawMessage `json:"value"`
		Version uint64          `json:"version"`
		TTLMs   int64           `json:"ttl_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Key != "alice" || got.Version != 1 || got.TTLMs != 0 {
		t.Errorf("json: %+v %v\n%s", got, err, r.stdout)
	}
	var age struct{ Age int }
	if err := json.Unmarshal(got.Value, &age); err != nil || age.Age != 30 {
		t.Errorf("json value %s", got.Value)
	}

	// Plain text: stored as is, shown as text, in JSON as base64.
	kv("put", "users", "a/b", "hello world").want(t, 0, []string{"version: 2"}, nil)
	if v, _, _, _ := fake.Entry("users", "a/b"); string(v) != "hello world" {
		t.Errorf("stored %q", v)
	}
	kv("get", "users", "a/b").want(t, 0, []string{"hello world"}, nil)
	kv("get", "users", "a/b", "-o", "json").want(t, 0, []string{`"value_base64": "aGVsbG8gd29ybGQ="`}, nil)
	// Bytes that are not text show as base64.
	if _, err := fake.Do(t.Context(), &dataplane.Request{Op: dataplane.OpPut, DMap: "users", Key: "bin", Value: []byte{0, 0xff}}); err != nil {
		t.Fatal(err)
	}
	kv("get", "users", "bin").want(t, 0, []string{"value (base64):", "AP8="}, nil)

	r = kv("get", "users", "nobody")
	r.want(t, 1, nil, []string{"error: not_found:", "hint: no such key"})
	if r.stdout != "" {
		t.Errorf("stdout on error: %q", r.stdout)
	}
}

func TestKVPutOptions(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	addr := apiServer(t, fake)
	kv := func(args ...string) result {
		return run(t, Deps{}, nil, append(append([]string{"kv"}, args...), "--address", addr)...)
	}

	kv("put", "d", "k", "1", "--xx").want(t, 1, nil, []string{"error: not_found:", "hint: no such key (--xx writes only over an existing key)"})
	kv("put", "d", "k", "1", "--nx", "--ttl", "90s").want(t, 0, []string{"version: 1"}, nil)
	if last := fake.Calls().LastRequest; !last.NX || last.TTL != 90*time.Second {
		t.Errorf("request %+v", last)
	}
	r := kv("get", "d", "k")
	if row := findRow(r.stdout, "ttl:"); len(row) != 2 || !strings.HasPrefix(row[1], "1m2") && !strings.HasPrefix(row[1], "1m30s") {
		t.Errorf("ttl row %q", row)
	}
	kv("put", "d", "k", "2", "--nx").want(t, 1, nil, []string{"error: key_exists:", "hint: the key exists and --nx was given"})
	kv("put", "d", "k", "2", "--if-version", "0").want(t, 1, nil, []string{"error: version_mismatch:", "hint: the key's version is not --if-version"})
	kv("put", "d", "k", "2", "--if-version", "1", "-o", "json").want(t, 0, []string{`"version": 2`}, nil)
	if last := fake.Calls().LastRequest; !last.HasIfVersion || last.IfVersion != 1 {
		t.Errorf("request %+v", last)
	}
	kv("put", "d", "k", "3", "--xx").want(t, 0, []string{"version: 3"}, nil)
}

func TestKVDelIncrExpire(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	addr := apiServer(t, fake)
	kv := func(args ...string) result {
		return run(t, Deps{}, nil, append(append([]string{"kv"}, args...), "--address", addr)...)
	}

	kv("incr", "d", "n").want(t, 0, []string{"value:", "1"}, nil)
	r := kv("incr", "d", "n", "--by", "-5", "-o", "json")
	r.want(t, 0, nil, nil)
	var out struct{ Value, Version int64 }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Value != -4 || out.Version != 2 {
		t.Errorf("incr json: %+v %v", out, err)
	}
	kv("put", "d", "s", "abc").want(t, 0, nil, nil)
	kv("incr", "d", "s").want(t, 1, nil, []string{"error: not_a_number:", "hint: the value is not an integer"})

	kv("expire", "d", "n", "30s").want(t, 0, []string{"the key expires in 30s"}, nil)
	if _, _, ttl, _ := fake.Entry("d", "n"); ttl <= 29*time.Second || ttl > 30*time.Second {
		t.Errorf("ttl %v", ttl)
	}
	kv("expire", "d", "n", "0").want(t, 0, []string{"the key no longer expires"}, nil)
	if _, _, ttl, _ := fake.Entry("d", "n"); ttl != 0 {
		t.Errorf("ttl %v after persist", ttl)
	}
	kv("expire", "d", "nope", "1m").want(t, 1, nil, []string{"error: not_found:", "hint: no such key"})

	kv("del", "d", "n").want(t, 0, []string{"deleted"}, nil)
	kv("del", "d", "n").want(t, 0, []string{"not deleted: no such key"}, nil)
	kv("del", "d", "s", "-o", "json").want(t, 0, []string{`"deleted": true`}, nil)
}

func TestKVScanAndDestroy(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	fake.Set(func(s *httpapitest.State) { s.ScanPage = 2 })
	addr := apiServer(t, fake)
	kv := func(args ...string) result {
		return run(t, Deps{}, nil, append(append([]string{"kv"}, args...), "--address", addr)...)
	}
	var want []string
	for i := range 7 {
		k := fmt.Sprintf("key-%d", i)
		want = append(want, k)
		kv("put", "d", k, "1").want(t, 0, nil, nil)
	}
	kv("put", "d", "other", "1").want(t, 0, nil, nil)

	r := kv("scan", "d", "--match", "key-*", "--limit", "3")
	r.want(t, 0, nil, []string{"more keys: run again with --cursor "})
	if got := strings.Fields(r.stdout); !slices.Equal(got, want[:2]) {
		t.Errorf("first page %q", got)
	}
	cursor := strings.Fields(strings.TrimPrefix(r.stderr, "more keys: run again with --cursor "))[0]
	r = kv("scan", "d", "--match", "key-*", "--cursor", cursor)
	if got := strings.Fields(r.stdout); !slices.Equal(got, want[2:4]) {
		t.Errorf("second page %q", got)
	}
	r = kv("scan", "d", "--match", "key-*", "--all")
	r.want(t, 0, nil, nil)
	if got := strings.Fields(r.stdout); !slices.Equal(got, want) || r.stderr != "" {
		t.Errorf("--all: %q, stderr %q", got, r.stderr)
	}
	r = kv("scan", "d", "--all", "-o", "json")
	var page struct {
		Keys   []string `json:"keys"`
		Cursor string   `json:"cursor"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Keys) != 8 || page.Cursor != "" {
		t.Errorf("json: %+v %v", page, err)
	}
	kv("scan", "empty", "-o", "json").want(t, 0, []string{`"keys": []`}, nil)
	kv("scan", "d", "--match", "[x").want(t, 1, nil, []string{"error: bad_request:", "hint: check --match"})

	kv("destroy", "d").want(t, 0, []string{"destroyed: d"}, nil)
	if _, _, _, ok := fake.Entry("d", "key-0"); ok {
		t.Error("destroy left keys")
	}
	fake.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrUnavailable })
	kv("destroy", "d").want(t, 1, nil, []string{"error: unavailable:", "hint: a partition of the DMap has no primary right now"})
}

func TestKVLocks(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	addr := apiServer(t, fake)
	kv := func(args ...string) result {
		return run(t, Deps{}, nil, append(append([]string{"kv"}, args...), "--address", addr)...)
	}

	r := kv("lock", "d", "job", "-o", "json")
	r.want(t, 0, nil, nil)
	var out struct{ Token uint64 }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Token == 0 {
		t.Fatalf("lock: %v %s", err, r.stdout)
	}
	if last := fake.Calls().LastRequest; last.TTL != 30*time.Second || last.Wait != 0 {
		t.Errorf("default lock request %+v", last)
	}
	kv("lock", "d", "job", "--wait", "10ms", "--ttl", "1m").want(t, 1, nil, []string{"error: locked:", "hint: the lock is held by someone else"})
	if last := fake.Calls().LastRequest; last.TTL != time.Minute || last.Wait != 10*time.Millisecond {
		t.Errorf("lock request %+v", last)
	}
	kv("unlock", "d", "job", fmt.Sprint(out.Token+1)).want(t, 1, nil, []string{"error: no_such_lock:", "hint: the lock is not held with that token"})
	kv("unlock", "d", "job", fmt.Sprint(out.Token)).want(t, 0, []string{"unlocked"}, nil)
	kv("lock", "d", "job").want(t, 0, []string{"token: "}, nil)
}

func TestKVErrorsAndUsage(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	addr := apiServer(t, fake)
	fake.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrUnavailable })
	r := run(t, Deps{}, nil, "kv", "get", "d", "k", "--address", addr)
	r.want(t, 1, nil, []string{"error: unavailable:", "hint: the key's partition has no primary right now: see 'olric-raft status'"})
	fake.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrIndeterminate })
	r = run(t, Deps{}, nil, "kv", "put", "d", "k", "v", "--address", addr)
	r.want(t, 1, nil, []string{"error: timeout:", "retry with the same request id", "hint: the write may or may not have happened"})
	fake.Set(func(s *httpapitest.State) { s.DataErr = nil })

	calls := fake.Calls().DataCalls
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kv", "bogus"}, `unknown command "bogus"`},
		{[]string{"kv", "gte"}, "did you mean get?"},
		{[]string{"kv", "put", "d", "k"}, "accepts 3 arg(s)"},
		{[]string{"kv", "get", "d"}, "accepts 2 arg(s)"},
		{[]string{"kv", "put", "", "k", "v"}, "DMAP is empty"},
		{[]string{"kv", "get", "d", ""}, "KEY is empty"},
		{[]string{"kv", "put", "d", "k", "v", "--nx", "--xx"}, "exclude each other"},
		{[]string{"kv", "put", "d", "k", "v", "--nx", "--if-version", "0"}, "--if-version already says"},
		{[]string{"kv", "put", "d", "k", "v", "--ttl", "-1s"}, "--ttl -1s must not be negative"},
		{[]string{"kv", "put", "d", "k", "v", "--if-version", "-1"}, "invalid argument"},
		{[]string{"kv", "incr", "d", "k", "--by", "1.5"}, "invalid argument"},
		{[]string{"kv", "expire", "d", "k", "soon"}, `DURATION "soon" is not a duration`},
		{[]string{"kv", "expire", "d", "k", "-1s"}, "unknown shorthand flag"},
		{[]string{"kv", "scan", "d", "--limit", "0"}, "--limit 0 must be from 1 to 10000"},
		{[]string{"kv", "scan", "d", "--all", "--cursor", "x"}, "drop --cursor"},
		{[]string{"kv", "lock", "d", "k", "--wait", "-1s"}, "must not be negative"},
		{[]string{"kv", "unlock", "d", "k", "x"}, `TOKEN "x" is not a token`},
		{[]string{"kv", "destroy"}, "accepts 1 arg(s)"},
		{[]string{"kv", "del", "d", "k", "-o", "yaml"}, `--output "yaml"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, Deps{}, map[string]string{"OLRIC_RAFT_ADDRESS": addr}, tc.args...)
			r.want(t, 2, nil, []string{"error: ", tc.want, "--help' for usage."})
		})
	}
	if got := fake.Calls().DataCalls; got != calls {
		t.Errorf("usage errors reached the server: %d calls", got-calls)
	}

	run(t, Deps{}, nil).want(t, 0, []string{"kv", "bench"}, nil)
	r = run(t, Deps{}, nil, "kv")
	r.want(t, 0, []string{"put", "get", "del", "incr", "expire", "scan", "lock", "unlock", "destroy"}, nil)
	r = run(t, Deps{}, nil, "kv", "put", "--help")
	r.want(t, 0, []string{"--ttl", "--nx", "--xx", "--if-version", "--address", "--output"}, nil)
}
