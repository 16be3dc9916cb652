package cli

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
)

// TestBench runs the bench for about a second against the fake and checks
// the summary's shape.
func TestBench(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	addr := apiServer(t, fake)
	r := run(t, Deps{}, nil, "bench", "--address", addr, "--duration", "1s", "--concurrency", "4",
		"--keys", "50", "--value-size", "32", "--read-ratio", "0.5", "-o", "json")
	r.want(t, 0, nil, []string{"bench: 4 workers against " + addr})

	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, r.stdout)
	}
	wantFields := []string{"addresses", "dmap", "concurrency", "keys", "value_size", "read_ratio", "duration_seconds",
		"ops", "ops_per_second", "errors", "errors_by_code", "reads", "writes"}
	if got := sortedKeys(raw); !slices.Equal(got, sortedCopy(wantFields)) {
		t.Errorf("summary fields %q", got)
	}
	for _, op := range []string{"reads", "writes"} {
		m := raw[op].(map[string]any)
		if got := sortedKeys(m); !slices.Equal(got, []string{"errors", "latency_ms", "not_found", "ops"}) {
			t.Errorf("%s fields %q", op, got)
		}
		if got := sortedKeys(m["latency_ms"].(map[string]any)); !slices.Equal(got, []string{"max", "p50", "p99", "p999"}) {
			t.Errorf("%s latency fields %q", op, got)
		}
	}

	var s benchSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Ops == 0 || s.Reads.Ops == 0 || s.Writes.Ops == 0 || s.Ops != s.Reads.Ops+s.Writes.Ops {
		t.Errorf("ops %d = %d reads + %d writes", s.Ops, s.Reads.Ops, s.Writes.Ops)
	}
	if s.Errors != 0 || len(s.ErrorsByCode) != 0 {
		t.Errorf("errors %d %v", s.Errors, s.ErrorsByCode)
	}
	if s.DurationSeconds < 1 || s.DurationSeconds > 30 || s.OpsPerSecond <= 0 {
		t.Errorf("duration %v, %v ops/s", s.DurationSeconds, s.OpsPerSecond)
	}
	if !slices.Equal(s.Addresses, []string{addr}) || s.DMap != "bench" || s.Concurrency != 4 || s.Keys != 50 || s.ValueSize != 32 || s.ReadRatio != 0.5 {
		t.Errorf("settings %+v", s)
	}
	for _, op := range []benchOpSummary{s.Reads, s.Writes} {
		l := op.LatencyMs
		if !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("latencies %+v", l)
		}
	}
	// The puts stored values of --value-size bytes in the key space.
	keys, _, err := fake.Scan(t.Context(), "bench", "", "", dataplane.MaxScanLimit)
	if err != nil || len(keys) == 0 || len(keys) > 50 {
		t.Fatalf("keys %d %v", len(keys), err)
	}
	if v, _, _, _ := fake.Entry("bench", keys[0]); len(v) != 32 || v[0] != '"' {
		t.Errorf("value %q", v)
	}
}

func TestBenchTableAndRequests(t *testing.T) {
	fakes := []*httpapitest.Cluster{httpapitest.NewCluster(1, 1, 1), httpapitest.NewCluster(1, 1, 1)}
	addrs := []string{apiServer(t, fakes[0]), apiServer(t, fakes[1])}
	r := run(t, Deps{}, nil, "bench", "--address", strings.Join(addrs, ","), "--requests", "200", "--dmap", "b")
	r.want(t, 0, []string{"ops:", "errors:", "OP", "P50", "P99", "P999", "MAX"}, []string{"200 requests"})
	if row := findRow(r.stdout, "errors:"); !slices.Equal(row, []string{"errors:", "0"}) {
		t.Errorf("errors row %q\n%s", row, r.stdout)
	}
	read, write := findRow(r.stdout, "read"), findRow(r.stdout, "write")
	if len(read) != 8 || len(write) != 8 {
		t.Fatalf("rows %q %q\n%s", read, write, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "ops:") || !strings.Contains(findRow(r.stdout, "ops:")[1], "200 in") {
		t.Errorf("ops line:\n%s", r.stdout)
	}
	// Round-robin: each address got half the requests.
	for i, f := range fakes {
		if n := f.Calls().DataCalls; n != 100 {
			t.Errorf("address %d got %d requests, want 100", i, n)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	fake.Set(func(s *httpapitest.State) { s.DataErr = dataplane.ErrUnavailable })
	addr := apiServer(t, fake)
	r := run(t, Deps{}, nil, "bench", "--address", addr, "--requests", "20", "-o", "json")
	r.want(t, 1, nil, []string{"error: bench_failed: no operation succeeded (20 errors, most of them unavailable)", "hint:"})
	var s benchSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if s.Ops != 0 || s.Errors != 20 || s.ErrorsByCode["unavailable"] != 20 || s.Reads.Errors+s.Writes.Errors != 20 {
		t.Errorf("summary %+v", s)
	}

	// Some errors, not all: a success, with the errors in the table.
	fake.Set(func(s *httpapitest.State) { s.DataErr = nil })
	var n atomic.Int32
	fake.Set(func(s *httpapitest.State) {
		s.Hook = func(context.Context, string) error {
			if n.Add(1)%2 == 0 {
				return dataplane.ErrOverloaded
			}
			return nil
		}
	})
	r = run(t, Deps{}, nil, "bench", "--address", addr, "--requests", "10", "--concurrency", "1")
	r.want(t, 0, []string{"ERROR", "COUNT"}, nil)
	if row := findRow(r.stdout, "overloaded"); !slices.Equal(row, []string{"overloaded", "5"}) {
		t.Errorf("overloaded row %q\n%s", row, r.stdout)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "0"}, "--concurrency 0 must be from 1 to 10000"},
		{[]string{"--keys", "0"}, "--keys 0 must be at least 1"},
		{[]string{"--value-size", "-1"}, "--value-size -1 must be from 0"},
		{[]string{"--read-ratio", "1.5"}, "--read-ratio 1.5 must be from 0 to 1"},
		{[]string{"--read-ratio", "NaN"}, "--read-ratio NaN"},
		{[]string{"--duration", "0s"}, "--duration 0s must be positive"},
		{[]string{"--requests", "-1"}, "--requests -1 must not be negative"},
		{[]string{"--timeout", "0s"}, "--timeout 0s must be positive"},
		{[]string{"--address", ","}, "no address given"},
		{[]string{"--address", "a:1,ftp://b"}, "--address"},
		{[]string{"--dmap", ""}, "--dmap must not be empty"},
		{[]string{"-o", "yaml"}, `--output "yaml"`},
		{[]string{"extra"}, `unknown command "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, Deps{}, nil, append([]string{"bench"}, tc.args...)...)
			r.want(t, 2, nil, []string{"error: ", tc.want, "--help' for usage."})
		})
	}
	r := run(t, Deps{}, nil, "bench", "--help")
	r.want(t, 0, []string{"--concurrency", "--keys", "--value-size", "--read-ratio", "--duration", "--requests", "--dmap", "--address", "--output"}, nil)
}

// TestHistogram: quantiles within the histogram's precision.
func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.maximum() != 0 {
		t.Error("empty histogram")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var all []time.Duration
	for range 100_000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all = append(all, d)
		h.record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := all[int(math.Ceil(q*float64(len(all))))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.02 {
			t.Errorf("q%v: got %v, want %v (off by %.1f%%)", q, got, want, rel*100)
		}
	}
	if h.maximum() != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.maximum(), all[len(all)-1])
	}
	// Buckets are continuous and ordered.
	for v := uint64(0); v < 1<<20; v += 7 {
		if b := histBucket(v); b < 0 || b >= len(h.counts) || histBucket(v+1) < b {
			t.Fatalf("bucket of %d: %d", v, b)
		}
	}
	if b := histBucket(math.MaxUint64); b != len(h.counts)-1 {
		t.Errorf("bucket of max: %d of %d", b, len(h.counts))
	}
	for i := range len(h.counts) - 1 {
		if v := histValue(i); histBucket(v) != i {
			t.Fatalf("value %d of bucket %d is in bucket %d", v, i, histBucket(v))
		}
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
