package resp

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
)

// Regression tests for what Olric 0.6.1's Go client sends and expects
// (integration/olricclient runs the client itself against real
// processes).

// decodeEntry decodes Olric's storage entry as its client does.
func decodeEntry(t *testing.T, s string) (key string, ttl int64, value []byte) {
	t.Helper()
	b := []byte(s)
	if len(b) < 29 || len(b) < 29+int(b[0]) {
		t.Fatalf("entry of %d bytes: %q", len(b), b)
	}
	kl := int(b[0])
	key = string(b[1 : 1+kl])
	o := 1 + kl
	ttl = int64(binary.BigEndian.Uint64(b[o:]))
	o += 24 // ttl, timestamp, last access
	vl := int(binary.BigEndian.Uint32(b[o:]))
	o += 4
	if len(b) != o+vl {
		t.Fatalf("entry of %d bytes, value length %d at %d", len(b), vl, o)
	}
	return key, ttl, b[o:]
}

func TestOlricGetRaw(t *testing.T) {
	_, rc := start(t, httpapitest.NewCluster(1, 3, 1))
	ctx := context.Background()
	must(rc.Do(ctx, "DM.PUT", "dm", "k", "v1").Result())
	// Without RW: the value; with RW: the entry Olric's client decodes.
	if v := must(rc.Do(ctx, "DM.GET", "dm", "k").Text()); v != "v1" {
		t.Fatal(v)
	}
	key, ttl, val := decodeEntry(t, must(rc.Do(ctx, "DM.GET", "dm", "k", "RW").Text()))
	if key != "k" || ttl != 0 || string(val) != "v1" {
		t.Fatalf("entry %q %d %q", key, ttl, val)
	}
	must(rc.Do(ctx, "DM.PUT", "dm", "k", "v2", "PX", "60000").Result())
	_, ttl, _ = decodeEntry(t, must(rc.Do(ctx, "DM.GET", "dm", "k", "RW").Text()))
	if d := time.Until(time.UnixMilli(ttl)); d <= 58*time.Second || d > 60*time.Second {
		t.Fatalf("entry expiry %d is %v away, want about 60s", ttl, d)
	}
	// Keys over Olric's 255-byte limit are left out of the entry.
	long := strings.Repeat("x", 300)
	must(rc.Do(ctx, "DM.PUT", "dm", long, "v").Result())
	if key, _, val := decodeEntry(t, must(rc.Do(ctx, "DM.GET", "dm", long, "RW").Text())); key != "" || string(val) != "v" {
		t.Fatalf("long key entry %q %q", key, val)
	}
	_, err := rc.Do(ctx, "DM.GET", "dm", "missing", "RW").Result()
	wantErr(t, err, "KEYNOTFOUND")
	_, err = rc.Do(ctx, "DM.GET", "dm", "k", "XX").Result()
	wantErr(t, err, "ERR syntax error")
	_, err = rc.Do(ctx, "DM.GET", "dm", "k", "RW", "RW").Result()
	wantErr(t, err, "ERR wrong number of arguments")

	// DM.GETPUT ... RW: a null bulk first, then the previous entry.
	if _, err := rc.Do(ctx, "DM.GETPUT", "dm", "g", "a", "RW").Result(); err != redis.Nil {
		t.Fatal(err)
	}
	key, _, val = decodeEntry(t, must(rc.Do(ctx, "DM.GETPUT", "dm", "g", "b", "RW").Text()))
	if key != "g" || string(val) != "a" {
		t.Fatalf("getput entry %q %q", key, val)
	}
	_, err = rc.Do(ctx, "DM.GETPUT", "dm", "g", "c", "LC").Result()
	wantErr(t, err, "ERR syntax error")
}

func TestOlricFractionalSeconds(t *testing.T) {
	fake := httpapitest.NewCluster(1, 3, 1)
	_, rc := start(t, fake)
	ctx := context.Background()
	lastTTL := func() time.Duration { return fake.Calls().LastRequest.TTL }
	// Olric's client sends time.Duration.Seconds(): "1.5", "0.25".
	must(rc.Do(ctx, "DM.PUT", "default", "k", "v", "EX", "1.5").Result())
	if d := lastTTL(); d != 1500*time.Millisecond {
		t.Fatalf("DM.PUT EX 1.5: TTL %v", d)
	}
	at := time.Now().Add(time.Hour)
	must(rc.Do(ctx, "DM.PUT", "default", "k", "v", "EXAT", fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)).Result())
	if got := fake.Calls().LastRequest.ExpireAt; got != at.UnixMilli() {
		t.Fatalf("DM.PUT EXAT: expire at %d, want %d", got, at.UnixMilli())
	}
	must(rc.Do(ctx, "DM.EXPIRE", "default", "k", "0.25").Result())
	if d := lastTTL(); d != 250*time.Millisecond {
		t.Fatalf("DM.EXPIRE 0.25: TTL %v", d)
	}
	// Plain SET keeps Redis's integer-only EX.
	_, err := rc.Do(ctx, "SET", "k", "v", "EX", "1.5").Result()
	wantErr(t, err, "ERR value is not an integer or out of range")
	for _, bad := range [][]any{
		{"DM.PUT", "dm", "k", "v", "EX", "0.0001"},
		{"DM.PUT", "dm", "k", "v", "EX", "-1"},
		{"DM.PUT", "dm", "k", "v", "EX", "1e300"},
		{"DM.EXPIRE", "dm", "k", "0"},
		{"DM.EXPIRE", "dm", "k", "NaN"},
		{"DM.LOCK", "dm", "k", "-0.5"},
		{"DM.LOCK", "dm", "k", "inf"},
		{"DM.LOCKLEASE", "dm", "k", "1", "0"},
	} {
		if _, err := rc.Do(ctx, bad...).Result(); err == nil || !strings.HasPrefix(err.Error(), "ERR") {
			t.Errorf("%v: %v, want an ERR", bad, err)
		}
	}

	// DM.LOCK: the wait in float seconds; without EX/PX the lease is at
	// least dataplane.DefaultLockLease (Olric's Lock never expires).
	tok := must(rc.Do(ctx, "DM.LOCK", "dm", "l", "0.5").Text())
	if req := fake.Calls().LastRequest; req.TTL != dataplane.DefaultLockLease || req.Wait <= 0 || req.Wait > 500*time.Millisecond {
		t.Fatalf("DM.LOCK 0.5: lease %v wait %v", req.TTL, req.Wait)
	}
	must(rc.Do(ctx, "DM.LOCKLEASE", "dm", "l", tok, "1.5").Result())
	if d := lastTTL(); d != 1500*time.Millisecond {
		t.Fatalf("DM.LOCKLEASE 1.5: lease %v", d)
	}
	must(rc.Do(ctx, "DM.UNLOCK", "dm", "l", tok).Result())
	must(rc.Do(ctx, "DM.LOCK", "dm", "l", "0", "EX", "2.5").Text())
	if d := lastTTL(); d != 2500*time.Millisecond {
		t.Fatalf("DM.LOCK EX 2.5: lease %v", d)
	}
	must(rc.Do(ctx, "DM.LOCK", "dm", "l2", "0", "PX", "700").Text())
	if d := lastTTL(); d != 700*time.Millisecond {
		t.Fatalf("DM.LOCK PX 700: lease %v", d)
	}
	_, err = rc.Do(ctx, "DM.LOCK", "dm", "l2", "0", "PX", "1.5").Result()
	wantErr(t, err, "ERR value is not an integer or out of range")
}

func TestOlricClusterReplies(t *testing.T) {
	fake := httpapitest.NewCluster(3, 5, 2)
	_, rc := start(t, fake)
	ctx := context.Background()
	tbl := fake.Routing()
	addr := map[metadata.NodeID]string{}
	for _, m := range tbl.Members {
		addr[m.ID] = m.RESPAddr
	}

	// CLUSTER.ROUTINGTABLE: [id, [primary address], [backup addresses],
	// then ours]; the addresses are RESP addresses.
	rt := must(rc.Do(ctx, "CLUSTER.ROUTINGTABLE").Slice())
	if len(rt) != 5 {
		t.Fatalf("%d entries", len(rt))
	}
	for i, raw := range rt {
		e := raw.([]any)
		p := tbl.Partitions[i]
		if len(e) != 7 || e[0] != int64(p.ID) {
			t.Fatalf("entry %d: %v", i, e)
		}
		if prim := e[1].([]any); len(prim) != 1 || prim[0] != addr[p.Primary] {
			t.Fatalf("partition %d primary owners %v, want [%s]", p.ID, prim, addr[p.Primary])
		}
		backups := e[2].([]any)
		if len(backups) != len(p.Backups) {
			t.Fatalf("partition %d backups %v", p.ID, backups)
		}
		for j, b := range p.Backups {
			if backups[j] != addr[b] {
				t.Fatalf("partition %d backup %d: %v, want %s", p.ID, j, backups[j], addr[b])
			}
		}
		if e[3] != p.State.String() || e[4] != string(p.Primary) || e[6] != int64(p.LeaderEpoch) {
			t.Fatalf("partition %d: %v", p.ID, e)
		}
	}
	// An uninitialized table is TRYAGAIN, never an empty array (Olric's
	// client would divide by zero).
	fake.Set(func(s *httpapitest.State) { s.Table = &metadata.RoutingTable{} })
	_, err := rc.Do(ctx, "CLUSTER.ROUTINGTABLE").Result()
	wantErr(t, err, "TRYAGAIN")
	fake.Set(func(s *httpapitest.State) { s.Table = tbl })

	// CLUSTER.MEMBERS: [RESP address, birthdate (int), "true" on the
	// leader, then ours]; failed or dead members are left out.
	ms := must(rc.Do(ctx, "CLUSTER.MEMBERS").Slice())
	if len(ms) != 3 {
		t.Fatalf("%d members", len(ms))
	}
	coordinators := 0
	for _, raw := range ms {
		m := raw.([]any)
		name, ok := m[0].(string)
		birth, ok2 := m[1].(int64)
		if !ok || !ok2 || !slices.Contains(slices.Collect(maps.Values(addr)), name) || birth <= 0 || (m[2] != "true" && m[2] != "false") {
			t.Fatalf("member %v", m)
		}
		if m[2] == "true" {
			coordinators++
			if m[3] != "node-1" {
				t.Fatalf("coordinator %v", m)
			}
		}
	}
	if coordinators != 1 {
		t.Fatalf("%d coordinators", coordinators)
	}
	fake.Set(func(s *httpapitest.State) {
		s.Members = slices.Clone(s.Members)
		s.Members[1].State = metadata.MemberFailed
		s.Members[2].Gossip = "dead"
	})
	if ms := must(rc.Do(ctx, "CLUSTER.MEMBERS").Slice()); len(ms) != 1 {
		t.Fatalf("members with a failed and a dead one: %v", ms)
	}

	// STATS [CR]: a bulk string of JSON in Olric's stats.Stats shape.
	var st struct {
		UptimeSeconds int64 `json:"uptime_seconds"`
		Runtime       *struct {
			NumGoroutine int `json:"num_goroutine"`
		}
		ClusterCoordinator struct{ Name string }      `json:"cluster_coordinator"`
		Member             struct{ Name string }      `json:"member"`
		Partitions         map[string]json.RawMessage `json:"partitions"`
		Backups            map[string]json.RawMessage `json:"backups"`
		ClusterMembers     map[string]json.RawMessage `json:"cluster_members"`
		OlricRaft          struct {
			NodeID string `json:"node_id"`
		} `json:"olric_raft"`
	}
	if err := json.Unmarshal([]byte(must(rc.Do(ctx, "STATS").Text())), &st); err != nil {
		t.Fatal(err)
	}
	primaries, backups := 0, 0
	for _, p := range tbl.Partitions {
		if p.Primary == "node-1" {
			primaries++
		}
		if slices.Contains(p.Backups, "node-1") {
			backups++
		}
	}
	if st.Member.Name != addr["node-1"] || st.ClusterCoordinator.Name != addr["node-1"] || st.Runtime != nil ||
		len(st.Partitions) != primaries || len(st.Backups) != backups || len(st.ClusterMembers) != 1 || st.OlricRaft.NodeID != "node-1" {
		t.Fatalf("STATS %+v", st)
	}
	for id := range st.Partitions {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			t.Fatalf("partition key %q", id)
		}
	}
	st.Runtime = nil
	if err := json.Unmarshal([]byte(must(rc.Do(ctx, "STATS", "CR").Text())), &st); err != nil || st.Runtime == nil || st.Runtime.NumGoroutine == 0 {
		t.Fatalf("STATS CR: %v %+v", err, st.Runtime)
	}
	_, err = rc.Do(ctx, "STATS", "XX").Result()
	wantErr(t, err, "ERR syntax error")
}

// testOlricScan checks Olric's DM.SCAN partID dmap cursor [MATCH re]
// [COUNT n] [RC] against a real node (it scans with the data plane's
// per-partition scan).
func testOlricScan(t *testing.T, rc *redis.Client, partitions uint32) {
	ctx := context.Background()
	var want []string
	for i := range 40 {
		k := fmt.Sprintf("os-%02d", i)
		want = append(want, k)
		must(rc.Do(ctx, "DM.PUT", "olricscan", k, "v").Result())
	}
	must(rc.Do(ctx, "DM.PUT", "olricscan", "zz", "v").Result())
	want = append(want, "zz")
	scan := func(pid uint32, opts ...any) []string {
		var keys []string
		cursor := uint64(0)
		for i := 0; ; i++ {
			if i > 1000 {
				t.Fatal("DM.SCAN does not end")
			}
			args := append([]any{"DM.SCAN", pid, "olricscan", cursor}, opts...)
			cmd := redis.NewScanCmd(ctx, nil, args...)
			_ = rc.Process(ctx, cmd)
			page, next, err := cmd.Result()
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			keys = append(keys, page...)
			if next == 0 {
				return keys
			}
			cursor = next
		}
	}
	var all, matched []string
	for pid := range partitions {
		got := scan(pid, "COUNT", 2)
		for _, k := range got {
			if p := metadata.PartitionOf("olricscan", k, partitions); p != pid {
				t.Fatalf("partition %d returned %s of partition %d", pid, k, p)
			}
		}
		all = append(all, got...)
		// MATCH is a regular expression, as in Olric.
		matched = append(matched, scan(pid, "MATCH", "^os-[0-9]5$")...)
		if got := scan(pid, "RC"); len(got) != 0 {
			t.Fatalf("RC scan of partition %d: %v", pid, got)
		}
	}
	slices.Sort(all) // and no key twice: the cursor is exact
	if !slices.Equal(all, want) {
		t.Fatalf("DM.SCAN over every partition: %v", all)
	}
	slices.Sort(matched)
	if !slices.Equal(matched, []string{"os-05", "os-15", "os-25", "os-35"}) {
		t.Fatalf("DM.SCAN MATCH: %v", matched)
	}
	for _, bad := range [][]any{
		{"DM.SCAN", partitions, "olricscan", 0},
		{"DM.SCAN", 0, "olricscan", 0, "MATCH", "("},
		{"DM.SCAN", 0, "olricscan", 0, "COUNT"},
		{"DM.SCAN", 0, "olricscan", 0, "COUNT", 0},
		{"DM.SCAN", 0, "olricscan", uint64(1<<63 | 999999)},
	} {
		if _, err := rc.Do(ctx, bad...).Result(); err == nil || !strings.HasPrefix(err.Error(), "ERR") {
			t.Errorf("%v: %v, want an ERR", bad, err)
		}
	}
	// Our own form still works next to Olric's (it may repeat keys).
	keys := dmScanAll(t, rc, "olricscan", 5)
	slices.Sort(keys)
	if keys = slices.Compact(keys); len(keys) != len(want) {
		t.Fatalf("DM.SCAN dmap cursor: %d keys", len(keys))
	}
}
