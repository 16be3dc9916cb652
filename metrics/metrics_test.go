package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/latency"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/metrics"
	"github.com/olric-raft/olric-raft/node"
)

// parse reads the text exposition into "name{labels}" → value, failing on
// a malformed line or a series seen twice.
func parse(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, dup := out[line[:i]]; dup {
			t.Fatalf("series %s twice", line[:i])
		}
		out[line[:i]] = v
	}
	return out
}

func scrape(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkContentType(t, res.Header.Get("Content-Type"))
	return parse(t, string(body))
}

// checkContentType fails unless ct is the Prometheus text format 0.0.4
// (promhttp may add parameters, such as escaping).
func checkContentType(t *testing.T, ct string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/plain" || params["version"] != "0.0.4" {
		t.Errorf("Content-Type %q, want text/plain; version=0.0.4 (%v)", ct, err)
	}
}

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	table   *metadata.RoutingTable
	raft    node.RaftStats
	stats   dataplane.Stats
	open    bool
	control node.ControlStats
	service dataplane.ServiceStats
}

func (f *fakeSource) ID() metadata.NodeID                  { return "a" }
func (f *fakeSource) Routing() *metadata.RoutingTable      { return f.table }
func (f *fakeSource) RaftStats() node.RaftStats            { return f.raft }
func (f *fakeSource) EngineStats() (dataplane.Stats, bool) { return f.stats, f.open }
func (f *fakeSource) GossipMembers() int                   { return 2 }
func (f *fakeSource) LeaseRemaining() time.Duration        { return 750 * time.Millisecond }
func (f *fakeSource) ControlStats() node.ControlStats      { return f.control }
func (f *fakeSource) ServiceStats() (dataplane.ServiceStats, bool) {
	return f.service, f.open
}

var _ metrics.Source = (*fakeSource)(nil)

func TestNodeCollectorFake(t *testing.T) {
	src := &fakeSource{
		table: &metadata.RoutingTable{
			Version: 42,
			Members: []metadata.Member{
				{ID: "a", State: metadata.MemberAlive}, {ID: "b", State: metadata.MemberAlive},
				{ID: "c", State: metadata.MemberFailed},
			},
			Partitions: []metadata.Partition{
				{ID: 0, Primary: "a", Backups: []metadata.NodeID{"b"}, State: metadata.PartitionActive, Written: true},
				{ID: 1, Primary: "b", Backups: []metadata.NodeID{"a"}, State: metadata.PartitionHandoff, HandoffTo: "a"},
				{ID: 2, State: metadata.PartitionUnavailable},
			},
		},
		raft: node.RaftStats{State: "Follower", Term: 3, LastLogIndex: 50, CommitIndex: 49, AppliedIndex: 48,
			LastContact: 1500 * time.Millisecond, HasContact: true},
	}
	src.control = node.ControlStats{LeaseRenewals: 7, LeaseRenewalFailures: 2, LeaseExpiries: 1}
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewNodeCollector(src))

	got := scrape(t, reg)
	want := map[string]float64{
		"olric_raft_raft_leader":                             0,
		`olric_raft_raft_state{state="follower"}`:            1,
		`olric_raft_raft_state{state="leader"}`:              0,
		"olric_raft_raft_term":                               3,
		"olric_raft_raft_last_log_index":                     50,
		"olric_raft_raft_commit_index":                       49,
		"olric_raft_raft_applied_index":                      48,
		"olric_raft_raft_last_contact_seconds":               1.5,
		"olric_raft_routing_version":                         42,
		`olric_raft_routing_members{state="alive"}`:          2,
		`olric_raft_routing_members{state="leaving"}`:        0,
		`olric_raft_routing_members{state="failed"}`:         1,
		`olric_raft_routing_partitions{state="active"}`:      1,
		`olric_raft_routing_partitions{state="handoff"}`:     1,
		`olric_raft_routing_partitions{state="unavailable"}`: 1,
		"olric_raft_routing_written_partitions":              1,
		"olric_raft_member_primary_partitions":               1,
		"olric_raft_member_backup_partitions":                1,
		"olric_raft_gossip_members":                          2,
		"olric_raft_member_lease_remaining_seconds":          0.75,
		"olric_raft_routing_syncing_backups":                 0,
		"olric_raft_dataplane_open":                          0,
		// Per member and role, and copies in sync per partition.
		`olric_raft_routing_member_partitions{member="a",role="primary"}`: 1,
		`olric_raft_routing_member_partitions{member="a",role="backup"}`:  1,
		`olric_raft_routing_member_partitions{member="b",role="primary"}`: 1,
		`olric_raft_routing_member_partitions{member="c",role="primary"}`: 0,
		`olric_raft_routing_member_partitions{member="c",role="syncing"}`: 0,
		`olric_raft_routing_partitions_by_in_sync_replicas{replicas="2"}`: 2,
		`olric_raft_routing_partitions_by_in_sync_replicas{replicas="1"}`: 0,
		`olric_raft_routing_partitions_by_in_sync_replicas{replicas="0"}`: 1,
		"olric_raft_handoffs_in_flight":                                   1,
		// Control-plane counters.
		`olric_raft_lease_renewals_total{result="ok"}`:                7,
		`olric_raft_lease_renewals_total{result="failed"}`:            2,
		"olric_raft_lease_expiries_total":                             1,
		"olric_raft_raft_proposal_duration_seconds_count":             0,
		`olric_raft_raft_proposal_duration_seconds_bucket{le="+Inf"}`: 0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, name := range []string{`olric_raft_dataplane_keys{dmap="m"}`, "olric_raft_dataplane_forwarded_total"} {
		if _, ok := got[name]; ok {
			t.Errorf("data-plane series %s while the data plane is closed", name)
		}
	}

	// The leader has no last contact; an opened data plane reports DMaps.
	src.raft = node.RaftStats{State: "Leader", Leader: true}
	src.open = true
	src.stats = dataplane.Stats{Partitions: 2, DMaps: map[string]dataplane.DMapStats{
		"m": {Keys: 3, Bytes: 30, Locks: 1, Evictions: 4, Expirations: 5},
	}}
	var wait latency.Histogram
	wait.Observe(2 * time.Millisecond)
	wait.Observe(30 * time.Millisecond)
	src.service = dataplane.ServiceStats{
		Forwarded: 11, Retries: [5]uint64{dataplane.RetryStaleRouting: 3, dataplane.RetryNoLease: 1},
		ReplicationWait: wait.Snapshot(),
		HandoffPause:    wait.Snapshot(),
		SentBytes:       [2]uint64{dataplane.LaneStream: 1000, dataplane.LaneBackfill: 5000},
		BackupsFailed:   1,
		Backups:         []dataplane.BackupStats{{Member: "b", Queued: 4, Backfill: 1, Lag: 250 * time.Millisecond}},
	}
	got = scrape(t, reg)
	for k, v := range map[string]float64{
		"olric_raft_dataplane_forwarded_total":                            11,
		`olric_raft_dataplane_retries_total{reason="stale_routing"}`:      3,
		`olric_raft_dataplane_retries_total{reason="no_lease"}`:           1,
		`olric_raft_dataplane_retries_total{reason="unreachable"}`:        0,
		"olric_raft_replication_wait_duration_seconds_count":              2,
		"olric_raft_handoff_pause_duration_seconds_count":                 2,
		`olric_raft_replication_wait_duration_seconds_bucket{le="0.005"}`: 1,
		`olric_raft_replication_wait_duration_seconds_bucket{le="0.05"}`:  2,
		`olric_raft_replication_sent_bytes_total{lane="stream"}`:          1000,
		`olric_raft_replication_sent_bytes_total{lane="backfill"}`:        5000,
		"olric_raft_replication_backups_failed_total":                     1,
		`olric_raft_replication_lag_seconds{backup="b"}`:                  0.25,
		`olric_raft_replication_queued_items{backup="b",lane="stream"}`:   4,
		`olric_raft_replication_queued_items{backup="b",lane="backfill"}`: 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k, v := range map[string]float64{
		"olric_raft_raft_leader":                           1,
		"olric_raft_dataplane_open":                        1,
		"olric_raft_dataplane_partitions":                  2,
		`olric_raft_dataplane_keys{dmap="m"}`:              3,
		`olric_raft_dataplane_bytes{dmap="m"}`:             30,
		`olric_raft_dataplane_locks{dmap="m"}`:             1,
		`olric_raft_dataplane_evictions_total{dmap="m"}`:   4,
		`olric_raft_dataplane_expirations_total{dmap="m"}`: 5,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["olric_raft_raft_last_contact_seconds"]; ok {
		t.Error("last contact reported on the leader")
	}
}

// TestDMapLabelCap: beyond MaxDMapLabels DMaps, the rest are summed into
// dmap="_other"; names that collide once made valid UTF-8 are summed, never
// emitted twice.
func TestDMapLabelCap(t *testing.T) {
	dmaps := make(map[string]dataplane.DMapStats)
	n := metrics.MaxDMapLabels + 50
	for i := range n {
		dmaps[fmt.Sprintf("d%03d", i)] = dataplane.DMapStats{Keys: 1, Evictions: 1}
	}
	dmaps["bad\xff"] = dataplane.DMapStats{Keys: 1}
	dmaps["bad\xfe"] = dataplane.DMapStats{Keys: 1}
	src := &fakeSource{table: &metadata.RoutingTable{}, open: true, stats: dataplane.Stats{DMaps: dmaps}}
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewNodeCollector(src))
	got := scrape(t, reg) // parse fails on a duplicate series

	var series int
	var total float64
	for k, v := range got {
		if strings.HasPrefix(k, "olric_raft_dataplane_keys{") {
			series++
			total += v
		}
	}
	if series != metrics.MaxDMapLabels+1 {
		t.Errorf("%d dmap series, want %d", series, metrics.MaxDMapLabels+1)
	}
	if total != float64(n+2) {
		t.Errorf("keys sum to %v, want %d", total, n+2)
	}
	if bad := got["olric_raft_dataplane_keys{dmap=\"bad\uFFFD\"}"]; bad != 2 {
		t.Errorf("colliding invalid names not summed: %v", bad)
	}
	// "bad\uFFFD" sorts first, so d000..d098 keep their own series and the
	// other 51 are summed.
	if other := got[`olric_raft_dataplane_evictions_total{dmap="_other"}`]; other != float64(n-(metrics.MaxDMapLabels-1)) {
		t.Errorf("_other evictions = %v, want %d", other, n-(metrics.MaxDMapLabels-1))
	}
}

// TestRegistryDuplicatesAndLint: a collector registered twice is refused;
// the node collector passes client_golang's lint; HTTP registers once.
func TestRegistryDuplicatesAndLint(t *testing.T) {
	src := &fakeSource{table: &metadata.RoutingTable{}, open: true,
		stats: dataplane.Stats{DMaps: map[string]dataplane.DMapStats{"m": {Keys: 1}}}}
	reg := metrics.NewRegistry()
	c := metrics.NewNodeCollector(src)
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(metrics.NewNodeCollector(src)); !errors.As(err, &are) {
		t.Fatalf("second Register = %v, want AlreadyRegisteredError", err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(c, "olric_raft_dataplane_keys"); n != 1 {
		t.Errorf("%d dataplane_keys series, want 1", n)
	}
	// HTTP registers once and returns the same value after.
	if h1, h2 := reg.HTTP(), reg.HTTP(); h1 != h2 {
		t.Error("Registry.HTTP returned two values")
	}
}

// TestForNodeWithoutSource: a value that is not a Source gets the runtime
// and process collectors only.
func TestForNodeWithoutSource(t *testing.T) {
	got := scrape(t, metrics.ForNode(struct{}{}))
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no go_goroutines")
	}
	if _, ok := got["olric_raft_routing_version"]; ok {
		t.Error("node series without a Source")
	}
}

func TestHTTPHistogram(t *testing.T) {
	reg := metrics.NewRegistry()
	h := reg.HTTP()
	h.Observe("GET /x", 200, 3*time.Millisecond)
	h.Observe("GET /x", 204, 200*time.Millisecond)
	h.Observe("GET /x", 503, 20*time.Second)
	got := scrape(t, reg)
	for k, v := range map[string]float64{
		`olric_raft_http_requests_total{code="200",route="GET /x"}`:                                   1,
		`olric_raft_http_requests_total{code="204",route="GET /x"}`:                                   1,
		`olric_raft_http_requests_total{code="503",route="GET /x"}`:                                   1,
		`olric_raft_http_request_duration_seconds_bucket{code_class="2xx",route="GET /x",le="0.005"}`: 1,
		`olric_raft_http_request_duration_seconds_bucket{code_class="2xx",route="GET /x",le="0.1"}`:   1,
		`olric_raft_http_request_duration_seconds_bucket{code_class="2xx",route="GET /x",le="0.25"}`:  2,
		`olric_raft_http_request_duration_seconds_bucket{code_class="2xx",route="GET /x",le="+Inf"}`:  2,
		`olric_raft_http_request_duration_seconds_count{code_class="2xx",route="GET /x"}`:             2,
		`olric_raft_http_request_duration_seconds_bucket{code_class="5xx",route="GET /x",le="10"}`:    0,
		`olric_raft_http_request_duration_seconds_bucket{code_class="5xx",route="GET /x",le="+Inf"}`:  1,
		`olric_raft_http_request_duration_seconds_sum{code_class="5xx",route="GET /x"}`:               20,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// TestRealNodeMetricsChange starts a real single-member cluster, scrapes,
// writes through the node, and scrapes again: the series exist and move.
func TestRealNodeMetricsChange(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.NodeID = "solo"
	cfg.DataDir = t.TempDir()
	cfg.ClusterAddr = freeAddr(t)
	cfg.GossipAddr = freeAddr(t)
	cfg.Bootstrap = true
	cfg.Timing = node.DevTiming()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })

	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.Ready(ctx)
		if err == nil {
			err = n.DataPlaneReady()
		}
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	reg := metrics.ForNode(n)
	before := scrape(t, reg)
	for k, want := range map[string]float64{
		"olric_raft_raft_leader":                             1,
		`olric_raft_raft_state{state="leader"}`:              1,
		`olric_raft_routing_members{state="alive"}`:          1,
		"olric_raft_gossip_members":                          1,
		"olric_raft_dataplane_open":                          1,
		`olric_raft_routing_partitions{state="unavailable"}`: 0,
	} {
		if g, ok := before[k]; !ok || g != want {
			t.Errorf("before: %s = %v (present %v), want %v", k, g, ok, want)
		}
	}
	if before["olric_raft_routing_version"] <= 0 || before["olric_raft_raft_term"] <= 0 ||
		before["olric_raft_raft_commit_index"] <= 0 {
		t.Errorf("before: routing version %v, term %v, commit index %v; want all > 0",
			before["olric_raft_routing_version"], before["olric_raft_raft_term"], before["olric_raft_raft_commit_index"])
	}
	parts := before[`olric_raft_routing_partitions{state="active"}`]
	if parts == 0 || before["olric_raft_member_primary_partitions"] != parts {
		t.Errorf("before: %v active partitions, %v led here; want all, > 0", parts, before["olric_raft_member_primary_partitions"])
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds"} {
		if _, ok := before[name]; !ok {
			t.Errorf("before: no %s", name)
		}
	}
	if k := before[`olric_raft_dataplane_keys{dmap="m"}`]; k != 0 {
		t.Errorf("before: %v keys in m, want 0", k)
	}

	const puts = 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range puts {
		req := &dataplane.Request{Op: dataplane.OpPut, DMap: "m", Key: fmt.Sprintf("k%d", i), Value: []byte("value")}
		if _, err := n.Do(ctx, req); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}

	after := scrape(t, reg)
	// The writes marked partitions written: proposals through Raft,
	// applied by the FSM; the lease is renewed all along; one member
	// holds one copy of each partition.
	for _, name := range []string{"olric_raft_raft_proposal_duration_seconds_count", "olric_raft_fsm_apply_duration_seconds_count"} {
		if after[name] <= before[name] {
			t.Errorf("%s %v -> %v, want an increase", name, before[name], after[name])
		}
	}
	if after[`olric_raft_lease_renewals_total{result="ok"}`] == 0 || after["olric_raft_lease_grants_total"] == 0 {
		t.Errorf("lease renewals %v, grants %v; want > 0", after[`olric_raft_lease_renewals_total{result="ok"}`], after["olric_raft_lease_grants_total"])
	}
	if got := after[`olric_raft_routing_partitions_by_in_sync_replicas{replicas="1"}`]; got != parts {
		t.Errorf("partitions with 1 copy in sync: %v, want %v", got, parts)
	}
	if got := after[`olric_raft_routing_member_partitions{member="solo",role="primary"}`]; got != parts {
		t.Errorf("partitions led by solo: %v, want %v", got, parts)
	}
	if got := after["olric_raft_dataplane_forwarded_total"]; got != 0 {
		t.Errorf("forwarded %v on a single member, want 0", got)
	}
	if got := after["olric_raft_replication_wait_duration_seconds_count"]; got < puts {
		t.Errorf("replication waits %v, want ≥ %d (one per request)", got, puts)
	}
	if got := after[`olric_raft_dataplane_keys{dmap="m"}`]; got != puts {
		t.Errorf("after: %v keys in m, want %d", got, puts)
	}
	if got := after[`olric_raft_dataplane_bytes{dmap="m"}`]; got <= 0 {
		t.Errorf("after: %v bytes in m, want > 0", got)
	}
	// The first write of a partition commits Written: the routing version
	// and the written count both move.
	if after["olric_raft_routing_written_partitions"] <= before["olric_raft_routing_written_partitions"] {
		t.Errorf("written partitions %v -> %v, want an increase",
			before["olric_raft_routing_written_partitions"], after["olric_raft_routing_written_partitions"])
	}
	if after["olric_raft_routing_version"] <= before["olric_raft_routing_version"] {
		t.Errorf("routing version %v -> %v, want an increase", before["olric_raft_routing_version"], after["olric_raft_routing_version"])
	}
	if after["olric_raft_raft_applied_index"] <= before["olric_raft_raft_applied_index"] {
		t.Errorf("applied index %v -> %v, want an increase", before["olric_raft_raft_applied_index"], after["olric_raft_raft_applied_index"])
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// As in package node: raft-boltdb's metrics emitter and the
		// go-metrics sinks are not ours.
		goleak.IgnoreTopFunction("github.com/hashicorp/raft-boltdb/v2.(*BoltStore).runMetrics"),
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

// TestRESPCommandMetrics: commands count by name and result, unknown names
// as "other", latency in a histogram per command; commands never run have
// no series.
func TestRESPCommandMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	m := reg.RESP([]string{"get", "set"})
	if reg.RESP(nil) != m {
		t.Fatal("RESP returned a second collector")
	}
	m.Observe("get", false, time.Millisecond)
	m.Observe("get", false, 3*time.Millisecond)
	m.Observe("get", true, time.Millisecond)
	m.Observe("flushall", true, time.Microsecond)
	got := scrape(t, reg)
	for k, v := range map[string]float64{
		`olric_raft_resp_commands_total{command="get",result="ok"}`:                 2,
		`olric_raft_resp_commands_total{command="get",result="error"}`:              1,
		`olric_raft_resp_commands_total{command="other",result="error"}`:            1,
		`olric_raft_resp_command_duration_seconds_count{command="get"}`:             3,
		`olric_raft_resp_command_duration_seconds_bucket{command="get",le="0.001"}`: 2,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got[`olric_raft_resp_commands_total{command="set",result="ok"}`]; ok {
		t.Error("a series for a command never run")
	}
}
