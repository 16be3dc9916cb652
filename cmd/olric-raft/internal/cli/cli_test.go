package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// result is what one run of the binary printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary's Main with args and env; NewNode, if nil, fails.
func run(t *testing.T, d Deps, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	d.Stdout, d.Stderr, d.LookupEnv = &stdout, &stderr, envOf(env)
	if d.Version == "" {
		d.Version = "test-version"
	}
	code := Main(context.Background(), args, d)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// apiServer serves httpapi over a fake cluster.
func apiServer(t *testing.T, fake *httpapitest.Cluster) string {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout does not contain %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
		}
	}
}

// cells splits a table row into its cells (separated by two or more spaces).
func cells(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// findRow returns the cells of the first stdout line whose first cell is
// first.
func findRow(out, first string) []string {
	for _, line := range strings.Split(out, "\n") {
		if c := cells(line); len(c) > 0 && c[0] == first {
			return c
		}
	}
	return nil
}

func TestMembersCommand(t *testing.T) {
	fake := httpapitest.NewCluster(3, 12, 2)
	addr := apiServer(t, fake)

	r := run(t, Deps{}, nil, "members", "--address", addr)
	r.want(t, 0, []string{"routing version: 42", "ID", "STATE", "GOSSIP", "RAFT", "LEADER", "PRIMARIES", "BACKUPS", "CLUSTER_ADDR"}, nil)
	row := findRow(r.stdout, "node-1")
	if !slices.Equal(row, []string{"node-1", "alive", "alive", "voter", "*", "4", "4", "127.0.0.1:13331", "127.0.0.1:13332", "127.0.0.1:13390"}) {
		t.Errorf("node-1 row: %q\n%s", row, r.stdout)
	}
	if row := findRow(r.stdout, "node-2"); len(row) != 10 || row[4] != "-" {
		t.Errorf("node-2 row: %q", row)
	}

	r = run(t, Deps{}, nil, "members", "--address", addr, "-o", "json")
	r.want(t, 0, nil, nil)
	var ms client.Members
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		t.Fatalf("json output: %v\n%s", err, r.stdout)
	}
	if ms.RoutingVersion != 42 || len(ms.Members) != 3 || ms.Members[2].ID != "node-3" || ms.Members[2].RaftSuffrage != "voter" {
		t.Errorf("json members: %+v", ms)
	}
}

func TestRoutingCommand(t *testing.T) {
	fake := httpapitest.NewCluster(3, 7, 2)
	fake.Set(func(s *httpapitest.State) {
		t := s.Table.Clone()
		t.Partitions[5].State, t.Partitions[5].HandoffTo = metadata.PartitionHandoff, "node-2"
		s.Table = t
	})
	addr := apiServer(t, fake)

	r := run(t, Deps{}, nil, "routing", "--address", addr)
	r.want(t, 0, []string{"MEMBER", "PARTITION", "PRIMARY", "HANDOFF_TO"}, nil)
	for first, want := range map[string][]string{
		"routing version:": {"routing version:", "42"},
		"partition count:": {"partition count:", "7"},
		"replicas:":        {"replicas:", "2"},
		"node-1":           {"node-1", "alive", "yes", "3", "2"},
		"node-2":           {"node-2", "alive", "yes", "2", "3"},
		"0":                {"0", "node-1", "node-2", "active", "1", "-"},
		"5":                {"5", "node-3", "node-1", "handoff", "1", "node-2"},
		"6":                {"6", "node-1", "node-2", "active", "1", "-"},
	} {
		if got := findRow(r.stdout, first); !slices.Equal(got, want) {
			t.Errorf("row %q: got %q, want %q\n%s", first, got, want, r.stdout)
		}
	}
	if findRow(r.stdout, "7") != nil {
		t.Errorf("a partition 7 row:\n%s", r.stdout)
	}

	r = run(t, Deps{}, nil, "routing", "--address", addr, "--partition", "5")
	r.want(t, 0, []string{"routing version:", "partition count:"}, nil)
	if got := findRow(r.stdout, "5"); !slices.Equal(got, []string{"5", "node-3", "node-1", "handoff", "1", "node-2"}) {
		t.Errorf("partition 5: %q\n%s", got, r.stdout)
	}
	if findRow(r.stdout, "0") != nil || strings.Contains(r.stdout, "MEMBER") {
		t.Errorf("--partition shows more than the partition:\n%s", r.stdout)
	}

	r = run(t, Deps{}, nil, "routing", "--address", addr, "-o", "json", "--partition", "0")
	r.want(t, 0, nil, nil)
	var rt client.Routing
	if err := json.Unmarshal([]byte(r.stdout), &rt); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if rt.RoutingVersion != 42 || rt.PartitionCount != 7 || len(rt.Partitions) != 1 || rt.Partitions[0].Primary != "node-1" {
		t.Errorf("json routing: %+v", rt)
	}

	r = run(t, Deps{}, nil, "routing", "--address", addr, "--partition", "7")
	r.want(t, 1, nil, []string{"error: not_found: partition 7 does not exist", "hint: no such partition"})
}

func TestStatusCommand(t *testing.T) {
	addr := apiServer(t, httpapitest.NewCluster(3, 12, 2))
	r := run(t, Deps{}, nil, "status", "--address", addr)
	r.want(t, 0, nil, nil)
	for first, want := range map[string]string{
		"node id:":         "node-1",
		"raft state:":      "Leader",
		"leader:":          "node-1 (127.0.0.1:13331, term 3)",
		"routing version:": "42",
		"members:":         "3 (3 alive, 3 voters, 3 in gossip)",
		"uptime:":          "13s",
	} {
		if got := findRow(r.stdout, first); len(got) != 2 || got[1] != want {
			t.Errorf("%s got %q, want %q\n%s", first, got, want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "WARNING") || r.stderr != "" {
		t.Errorf("a warning without unavailable partitions:\n%s\n%s", r.stdout, r.stderr)
	}
	r = run(t, Deps{}, nil, "status", "--address", addr, "-o", "json")
	var st client.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.NodeID != "node-1" || st.Leader == nil {
		t.Errorf("json status: %v %+v", err, st)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestStatusWarnsUnavailable: while partitions are unavailable, status
// leads with a warning naming both fixes.
func TestStatusWarnsUnavailable(t *testing.T) {
	fake := httpapitest.NewCluster(3, 12, 2)
	fake.LosePartitions(1, 2)
	addr := apiServer(t, fake)
	warning := []string{
		"WARNING: 2 partitions are UNAVAILABLE",
		"Bring back the members that held them if you can",
		"'olric-raft partition force-assign --all-unavailable --yes'",
		"their data is lost",
	}
	r := run(t, Deps{}, nil, "status", "--address", addr)
	r.want(t, 0, warning, nil)
	if first := strings.SplitN(r.stdout, "\n", 2)[0]; !strings.HasPrefix(first, "WARNING: ") {
		t.Errorf("the warning is not the first line:\n%s", r.stdout)
	}
	if got := findRow(r.stdout, "partitions:"); !slices.Equal(got, []string{"partitions:", "12 (2 unavailable, 0 in handoff, 0 backups syncing)"}) {
		t.Errorf("partitions row %q", got)
	}

	r = run(t, Deps{}, nil, "status", "--address", addr, "-o", "json")
	r.want(t, 0, nil, warning)
	var st client.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Unavailable != 2 {
		t.Errorf("json status: %v %+v", err, st)
	}

	fake.LosePartitions(3)
	fake.LosePartitions() // a new version, nothing more lost
	r = run(t, Deps{}, nil, "status", "--address", addr)
	r.want(t, 0, []string{"WARNING: 3 partitions are UNAVAILABLE"}, nil)
	fake.Set(func(s *httpapitest.State) { s.Status.Unavailable = 1 })
	r = run(t, Deps{}, nil, "status", "--address", addr)
	r.want(t, 0, []string{"WARNING: 1 partition is UNAVAILABLE"}, nil)
}

func TestForceAssignCommand(t *testing.T) {
	fake := httpapitest.NewCluster(3, 8, 2)
	fake.LosePartitions(2, 5, 6) // version 43
	addr := apiServer(t, fake)
	env := map[string]string{"OLRIC_RAFT_ADDRESS": addr}

	// Without --yes: exit 2, the data loss spelled out, nothing sent.
	r := run(t, Deps{}, env, "partition", "force-assign", "5")
	r.want(t, 2, nil, []string{"error: force-assign DELETES the data of partition 5 forever: it has no replica left",
		"served again EMPTY", "run the command again with --yes", "Run 'olric-raft partition force-assign --help' for usage."})
	r = run(t, Deps{}, env, "partition", "force-assign", "--all-unavailable", "--node", "node-2")
	r.want(t, 2, nil, []string{"DELETES the data of every unavailable partition forever: they have no replica left",
		"they will be served again EMPTY", "--yes"})
	r = run(t, Deps{}, map[string]string{"OLRIC_RAFT_ADDRESS": addr, "OLRIC_RAFT_YES": "true"}, "partition", "force-assign", "5")
	r.want(t, 2, nil, []string{"DELETES"})
	r = run(t, Deps{}, env, "partition", "force-assign", "5", "--yes=false")
	r.want(t, 2, nil, []string{"DELETES"})
	if n := len(fake.Calls().ForceAssigns); n != 0 {
		t.Fatalf("%d force-assigns sent without --yes", n)
	}

	// One partition, owner as an argument.
	r = run(t, Deps{}, env, "partition", "force-assign", "5", "node-3", "--yes")
	r.want(t, 0, []string{"force-assigned 1 partition at routing version 44: 5\n", "its data is lost"}, nil)
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}

	// Every unavailable partition, owner with --node, as JSON.
	r = run(t, Deps{}, env, "partition", "force-assign", "--all-unavailable", "--node", "node-2", "--yes", "-o", "json")
	r.want(t, 0, nil, nil)
	var res client.ForceAssignResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.RoutingVersion != 45 || !slices.Equal(res.Partitions, []uint32{2, 6}) {
		t.Errorf("json: %v %+v\n%s", err, res, r.stdout)
	}
	if !strings.Contains(r.stdout, `"routing_version": 45`) {
		t.Errorf("json keys:\n%s", r.stdout)
	}

	// Nothing left to force.
	r = run(t, Deps{}, env, "partition", "force-assign", "--all-unavailable", "--yes")
	r.want(t, 0, []string{"force-assigned 0 partitions at routing version 45: no partition was unavailable"}, nil)
	r = run(t, Deps{}, env, "partition", "force-assign", "--all-unavailable", "--yes", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"routing_version\": 45,\n  \"partitions\": []\n}" {
		t.Errorf("json, nothing forced: %+v", r)
	}

	// Several at once in the table output; the leader picks the owners.
	fake.LosePartitions(0, 7) // version 46
	r = run(t, Deps{}, env, "partition", "force-assign", "--all-unavailable", "--yes")
	r.want(t, 0, []string{"force-assigned 2 partitions at routing version 47: 0, 7\n", "their data is lost"}, nil)

	want := []httpapitest.ForceAssignCall{
		{Partitions: []uint32{5}, Owner: "node-3"},
		{Partitions: nil, Owner: "node-2"},
		{Partitions: nil, Owner: ""},
		{Partitions: nil, Owner: ""},
		{Partitions: nil, Owner: ""},
	}
	got := fake.Calls().ForceAssigns
	if len(got) != len(want) {
		t.Fatalf("calls: %+v", got)
	}
	for i := range want {
		if !slices.Equal(got[i].Partitions, want[i].Partitions) || got[i].Owner != want[i].Owner {
			t.Errorf("call %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if p := fake.Routing().Partitions[5]; p.Primary != "node-3" || p.State != metadata.PartitionActive {
		t.Errorf("partition 5: %+v", p)
	}
}

// TestForceAssignErrors: refusals exit 1 with the code, the message and a
// hint for force-assign.
func TestForceAssignErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(s *httpapitest.State)
		args  []string
		wants []string
	}{
		{"available", nil, []string{"3", "--yes"},
			[]string{"error: partition_available: node: partition is available: partition 3 is active",
				"hint: partition 3 still has a primary; force-assign is only for unavailable partitions (see olric-raft routing)"}},
		{"available all", func(s *httpapitest.State) {
			s.ForceAssignErr = fmt.Errorf("%w: partition 1 is active", node.ErrPartitionAvailable)
		},
			[]string{"--all-unavailable", "--yes"},
			[]string{"error: partition_available:", "hint: a partition still has a primary; force-assign is only for unavailable partitions (see olric-raft routing)"}},
		{"unknown owner", nil, []string{"4", "node-9", "--yes"},
			[]string{"error: not_found: node: unknown member: node-9 is not an alive member",
				"hint: there is no alive member with that id; pick one from 'olric-raft members'"}},
		{"bad owner", nil, []string{"4", "--node", "a/b", "--yes"},
			[]string{"error: bad_request: node: ", "hint: check the partition number"}},
		{"out of range", nil, []string{"8", "--yes"},
			[]string{"error: bad_request: partitions[0]: partition 8 does not exist (0 to 7)", "hint: check the partition number (0 to the partition count - 1"}},
		{"timeout", func(s *httpapitest.State) { s.ForceAssignErr = node.ErrTimeout },
			[]string{"4", "--yes"},
			[]string{"error: timeout:", "hint: the force-assign timed out and may still take effect; check 'olric-raft routing'"}},
		{"no leader", func(s *httpapitest.State) { s.ForceAssignErr = node.ErrNoLeader },
			[]string{"--all-unavailable", "--yes"},
			[]string{"error: no_leader:", "hint: the cluster has no leader"}},
		{"not ready", func(s *httpapitest.State) { s.Table = nil },
			[]string{"4", "--yes"},
			[]string{"error: not_ready:", "hint: the member is still catching up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := httpapitest.NewCluster(3, 8, 2)
			fake.LosePartitions(4)
			if tc.set != nil {
				fake.Set(tc.set)
			}
			addr := apiServer(t, fake)
			r := run(t, Deps{}, nil, append([]string{"partition", "force-assign", "--address", addr}, tc.args...)...)
			r.want(t, 1, nil, tc.wants)
			if r.stdout != "" {
				t.Errorf("stdout on error: %q", r.stdout)
			}
		})
	}
}

func TestJoinLeaveRemoveCommands(t *testing.T) {
	fake := httpapitest.NewCluster(3, 3, 2)
	addr := apiServer(t, fake)

	r := run(t, Deps{}, nil, "join", "--address", addr, "10.0.0.1:3322,10.0.0.2:3322", "10.0.0.3:3322")
	r.want(t, 0, []string{"joined: contacted 3 of 3 address(es)"}, nil)
	if got := fake.Calls().Joins; len(got) != 1 || !slices.Equal(got[0], []string{"10.0.0.1:3322", "10.0.0.2:3322", "10.0.0.3:3322"}) {
		t.Errorf("joins: %v", got)
	}
	r = run(t, Deps{}, nil, "join", "--address", addr, "-o", "json", "a:1")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"joined\": 1\n}" {
		t.Errorf("join json: %+v", r)
	}

	r = run(t, Deps{}, nil, "remove", "--address", addr, "node-3")
	r.want(t, 0, []string{"removed: node-3"}, nil)
	r = run(t, Deps{}, nil, "remove", "--address", addr, "-o", "json", "node-2")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"removed\": \"node-2\"\n}" {
		t.Errorf("remove json: %+v", r)
	}
	if got := fake.Calls().Removed; !slices.Equal(got, []metadata.NodeID{"node-3", "node-2"}) {
		t.Errorf("removed: %v", got)
	}

	r = run(t, Deps{}, nil, "leave", "--address", addr)
	r.want(t, 0, []string{"left: the member at " + addr}, nil)
	r = run(t, Deps{}, nil, "leave", "--address", addr, "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"left\": true\n}" {
		t.Errorf("leave json: %+v", r)
	}
	if got := fake.Calls().Leaves; got != 2 {
		t.Errorf("leaves: %d", got)
	}
}

// TestErrorsAndHints: every failure prints "error: <code>: <message>" and
// a hint on stderr, nothing on stdout, and exits 1.
func TestErrorsAndHints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(s *httpapitest.State)
		args  []string
		wants []string
	}{
		{"no leader", func(s *httpapitest.State) { s.RemoveErr = node.ErrNoLeader },
			[]string{"remove", "node-2"},
			[]string{"error: no_leader: node: no leader", "hint: the cluster has no leader; check that a majority of voters is up"}},
		{"member alive", func(s *httpapitest.State) { s.RemoveErr = fmt.Errorf("%w: node-2 is alive", node.ErrMemberAlive) },
			[]string{"remove", "node-2"},
			[]string{"error: member_alive: node: member is alive: node-2 is alive", "hint: the member is alive: run 'olric-raft leave'"}},
		{"unknown member", func(s *httpapitest.State) { s.RemoveErr = node.ErrUnknownMember },
			[]string{"remove", "node-9"},
			[]string{"error: not_found:", "hint: no such member; list them with 'olric-raft members'"}},
		{"bad id", nil, []string{"remove", "bad id"}, []string{"error: bad_request:", "hint: check the command's arguments"}},
		{"join failed", func(s *httpapitest.State) { s.JoinErr = node.ErrJoinFailed },
			[]string{"join", "a:1"}, []string{"error: join_failed:", "hint: none of the addresses answered"}},
		{"bad join addr", nil, []string{"join", "nope"}, []string{"error: bad_request: addrs[0]:", "hint:"}},
		{"leave timeout", func(s *httpapitest.State) { s.LeaveErr = node.ErrTimeout },
			[]string{"leave"}, []string{"error: timeout:", "may still take effect", "hint: the operation timed out and may still take effect"}},
		{"leaving", func(s *httpapitest.State) { s.LeaveErr = node.ErrLeaving },
			[]string{"leave"}, []string{"error: leaving:", "hint: this member is leaving"}},
		{"uninitialized", func(s *httpapitest.State) { s.Table = nil },
			[]string{"routing", "--partition", "1"}, []string{"error: unavailable:", "hint: the routing table is not initialized yet"}},
		{"internal", func(s *httpapitest.State) { s.JoinErr = fmt.Errorf("bug") },
			[]string{"join", "a:1"}, []string{"error: internal:", "hint: this is a bug"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := httpapitest.NewCluster(3, 3, 2)
			if tc.set != nil {
				fake.Set(tc.set)
			}
			addr := apiServer(t, fake)
			r := run(t, Deps{}, nil, append(tc.args, "--address", addr)...)
			r.want(t, 1, nil, tc.wants)
			if r.stdout != "" {
				t.Errorf("stdout on error: %q", r.stdout)
			}
		})
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := run(t, Deps{}, nil, "members", "--address", dead)
	r.want(t, 1, nil, []string{"error: unreachable: cannot reach http://" + dead, "hint: is olric-raft running there? set --address or OLRIC_RAFT_ADDRESS"})

	fake := httpapitest.NewCluster(1, 1, 1)
	fake.Set(func(s *httpapitest.State) {
		s.Hook = func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() }
	})
	addr := apiServer(t, fake)
	r = run(t, Deps{}, nil, "remove", "node-1", "--address", addr, "--timeout", "100ms")
	r.want(t, 1, nil, []string{"error: timeout: no answer from " + addr + " within 100ms", "hint:"})
}

func TestAddressFromEnv(t *testing.T) {
	addr := apiServer(t, httpapitest.NewCluster(1, 1, 1))
	r := run(t, Deps{}, map[string]string{"OLRIC_RAFT_ADDRESS": addr, "OLRIC_RAFT_OUTPUT": "json"}, "status")
	r.want(t, 0, []string{`"node_id": "node-1"`}, nil)
	// The flag wins over the environment.
	r = run(t, Deps{}, map[string]string{"OLRIC_RAFT_ADDRESS": "127.0.0.1:1"}, "status", "--address", addr)
	r.want(t, 0, []string{"node id:"}, nil)
	// Without either, the default address is used.
	r = run(t, Deps{}, map[string]string{"OLRIC_RAFT_ADDRESS": strings.TrimPrefix(addr, "http://")}, "status")
	r.want(t, 0, []string{"node id:"}, nil)
}

// TestUsageErrors: mistakes on the command line exit 2 with a message and
// a pointer to --help, and send nothing.
func TestUsageErrors(t *testing.T) {
	fake := httpapitest.NewCluster(1, 1, 1)
	addr := apiServer(t, fake)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"membrs"}, nil, `unknown command "membrs"; did you mean members?`},
		{[]string{"members", "extra"}, nil, `unknown command "extra"`},
		{[]string{"members", "--bogus"}, nil, "unknown flag: --bogus"},
		{[]string{"members", "-o", "yaml"}, nil, `--output "yaml" must be table or json`},
		{[]string{"members"}, map[string]string{"OLRIC_RAFT_OUTPUT": "xml"}, `--output "xml"`},
		{[]string{"members"}, map[string]string{"OLRIC_RAFT_TIMEOUT": "soon"}, "OLRIC_RAFT_TIMEOUT"},
		{[]string{"members", "--timeout", "-1s"}, nil, "--timeout -1s must be positive"},
		{[]string{"members", "--timeout", "xyz"}, nil, "invalid argument"},
		{[]string{"members", "--address", "ftp://x"}, nil, "--address"},
		{[]string{"routing", "--partition", "-1"}, nil, "invalid argument"},
		{[]string{"remove"}, nil, "accepts 1 arg(s)"},
		{[]string{"remove", "a", "b"}, nil, "accepts 1 arg(s)"},
		{[]string{"remove", " "}, nil, "remove needs a node id"},
		{[]string{"join"}, nil, "requires at least 1 arg(s)"},
		{[]string{"join", ",,"}, nil, "join needs at least one address"},
		{[]string{"leave", "now"}, nil, `unknown command "now"`},
		{[]string{"server", "--raft-voters", "x"}, nil, "invalid argument"},
		{[]string{"server", "extra"}, nil, `unknown command "extra"`},
		{[]string{"server", "--dev", "--raft-voters", "2"}, nil, "raft_voters"},
		{[]string{"version", "x"}, nil, `unknown command "x"`},
		{[]string{"partition", "bogus"}, nil, `unknown command "bogus"`},
		{[]string{"partition", "force-asign"}, nil, `did you mean force-assign?`},
		{[]string{"partition", "force-assign"}, nil, "force-assign needs a partition number P, or --all-unavailable"},
		{[]string{"partition", "force-assign", "--yes"}, nil, "force-assign needs a partition number P"},
		{[]string{"partition", "force-assign", "x", "--yes"}, nil, `partition "x" is not a partition number`},
		{[]string{"partition", "force-assign", "4294967296", "--yes"}, nil, `partition "4294967296" is not a partition number`},
		{[]string{"partition", "force-assign", "+1", "--yes"}, nil, `partition "+1" is not a partition number`},
		{[]string{"partition", "force-assign", "-1", "--yes"}, nil, "unknown shorthand flag"},
		{[]string{"partition", "force-assign", "1", "a", "b", "--yes"}, nil, "accepts at most 2 arg(s)"},
		{[]string{"partition", "force-assign", "--all-unavailable", "1", "--yes"}, nil, "--all-unavailable takes no partition argument"},
		{[]string{"partition", "force-assign", "0", "node-1", "--node", "node-1", "--yes"}, nil, "either as the NODE argument or with --node, not both"},
		{[]string{"partition", "force-assign", "0", " ", "--yes"}, nil, "the owner node id is empty"},
		{[]string{"partition", "force-assign", "--all-unavailable", "--node", "", "--yes"}, nil, "the owner node id is empty"},
		{[]string{"partition", "force-assign", "0", "-o", "yaml", "--yes"}, nil, `--output "yaml"`},
		{[]string{"partition", "force-assign", "0"}, nil, "DELETES the data of partition 0 forever"},
		{[]string{"partition", "force-assign", "--all-unavailable"}, map[string]string{"OLRIC_RAFT_YES": "1"}, "DELETES the data of every unavailable partition forever"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			env := map[string]string{"OLRIC_RAFT_ADDRESS": addr}
			for k, v := range tc.env {
				env[k] = v
			}
			d := Deps{NewNode: func(node.Config) (Node, error) {
				t.Error("a usage error started a node")
				return nil, fmt.Errorf("no")
			}}
			r := run(t, d, env, tc.args...)
			r.want(t, 2, nil, []string{"error: ", tc.want, "--help' for usage."})
		})
	}
	if got := fake.Calls(); got.Leaves+len(got.Joins)+len(got.Removed)+len(got.ForceAssigns) != 0 {
		t.Errorf("a usage error reached the server: %+v", got)
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := run(t, Deps{}, nil)
	r.want(t, 0, []string{"Usage:", "server", "members", "routing", "status", "join", "leave", "remove", "partition", "version"}, nil)
	r = run(t, Deps{}, nil, "partition")
	r.want(t, 0, []string{"force-assign", "DATA LOSS"}, nil)
	r = run(t, Deps{}, nil, "partition", "force-assign", "--help")
	r.want(t, 0, []string{"--all-unavailable", "--node", "--yes", "DELETED for good", "--address", "--output"}, nil)
	r = run(t, Deps{}, nil, "server", "--help")
	r.want(t, 0, []string{"--node-id", "--bootstrap-expect", "--timing", "--config", "--dev", "--log-format",
		"--tls-cert", "--tls-key", "--tls-ca", "--tls-clients", "--gossip-key", "SIGHUP"}, nil)
	if strings.Contains(r.stdout, "unsafe-test-fault") || strings.Contains(r.stdout, "completion") {
		t.Errorf("unexpected flags or commands:\n%s", r.stdout)
	}
	r = run(t, Deps{}, nil, "version")
	r.want(t, 0, []string{"olric-raft test-version (go"}, nil)
	r = run(t, Deps{}, nil, "version", "-o", "json")
	r.want(t, 0, []string{`"version": "test-version"`, `"go": "go`, `"platform": "`}, nil)
	r = run(t, Deps{}, nil, "version", "-o", "yaml")
	r.want(t, ExitUsage, nil, []string{`-o "yaml": want table or json`})
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRoutingWatchSummary: the --watch line counts partitions by state,
// syncing backups and primaries per alive member (zero included).
func TestRoutingWatchSummary(t *testing.T) {
	rt := &client.Routing{RoutingVersion: 9, Members: []client.Member{
		{ID: "a", State: "alive"}, {ID: "b", State: "alive"}, {ID: "c", State: "failed"},
	}, Partitions: []client.Partition{
		{ID: 0, Primary: "a", Backups: []string{"b"}, State: "active", Syncing: []string{"b"}},
		{ID: 1, Primary: "a", State: "active"},
		{ID: 2, State: "unavailable"},
	}}
	s := summarize(rt)
	if s.RoutingVersion != 9 || s.Alive != 2 || s.Members != 3 || s.Active != 2 || s.Unavailable != 1 || s.Syncing != 1 {
		t.Fatalf("summary = %+v", s)
	}
	if s.Primaries["a"] != 2 || s.Primaries["b"] != 0 || len(s.Primaries) != 2 {
		t.Fatalf("primaries = %v", s.Primaries)
	}
	// Settled: active with no backup being filled (partition 1 only).
	if s.Settled != 1 || s.Total != 3 {
		t.Fatalf("settled %d of %d, want 1 of 3", s.Settled, s.Total)
	}
}
