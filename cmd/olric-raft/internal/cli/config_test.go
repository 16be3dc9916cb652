package cli

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

func parseServerFlags(t *testing.T, args ...string) *serverFlags {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	f := addServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func hostnameOf(h string) func() (string, error) {
	return func() (string, error) { return h, nil }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "olric-raft.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t *testing.T, env map[string]string, args ...string) (*serverConfig, error) {
	t.Helper()
	return buildServerConfig(parseServerFlags(t, args...), envOf(env), hostnameOf("test-host"))
}

func mustBuild(t *testing.T, env map[string]string, args ...string) *serverConfig {
	t.Helper()
	sc, err := build(t, env, args...)
	if err != nil {
		t.Fatalf("build %v (env %v): %v", args, env, err)
	}
	return sc
}

func TestDefaults(t *testing.T) {
	sc := mustBuild(t, nil, "--data-dir", "/var/lib/olric")
	want := node.DefaultConfig()
	want.NodeID, want.DataDir = "test-host", "/var/lib/olric"
	if !configEqual(sc.Node, want) {
		t.Errorf("got %+v\nwant %+v", sc.Node, want)
	}
	if sc.LogLevel != slog.LevelInfo || sc.LogFormat != "text" || sc.Dev || sc.TempDataDir {
		t.Errorf("got %+v", sc)
	}
}

func configEqual(a, b node.Config) bool {
	return a.NodeID == b.NodeID && a.DataDir == b.DataDir && a.ClusterAddr == b.ClusterAddr &&
		a.GossipAddr == b.GossipAddr && a.HTTPAddr == b.HTTPAddr && a.RESPAddr == b.RESPAddr &&
		slices.Equal(a.Join, b.Join) && a.Bootstrap == b.Bootstrap && a.BootstrapExpect == b.BootstrapExpect &&
		a.RaftVoters == b.RaftVoters && a.PartitionCount == b.PartitionCount && a.Replicas == b.Replicas &&
		a.Timing == b.Timing
}

// TestPrecedence checks flag > env > file > default for settings of every
// kind (string, int, uint32, bool, list, logging).
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
node_id: from-file
data_dir: /file
http_addr: 10.0.0.1:1
join: [f1:1, f2:2]
bootstrap_expect: 3
replicas: 3
partition_count: 100
log_level: warn
log_format: json
`)
	env := map[string]string{
		"OLRIC_RAFT_CONFIG":          file,
		"OLRIC_RAFT_NODE_ID":         "from-env",
		"OLRIC_RAFT_HTTP_ADDR":       "10.0.0.2:2",
		"OLRIC_RAFT_JOIN":            "e1:1, e2:2",
		"OLRIC_RAFT_BOOTSTRAP":       "false",
		"OLRIC_RAFT_REPLICAS":        "4",
		"OLRIC_RAFT_PARTITION_COUNT": "200",
		"OLRIC_RAFT_LOG_LEVEL":       "error",
		"OLRIC_RAFT_UNRELATED":       "x",
	}
	flags := []string{
		"--node-id", "from-flag", "--http-addr", "10.0.0.3:3", "--join", "g1:1",
		"--replicas", "5", "--partition-count", "300", "--log-level", "debug",
	}

	// Flags win over everything.
	sc := mustBuild(t, env, flags...)
	if sc.Node.NodeID != "from-flag" || sc.Node.HTTPAddr != "10.0.0.3:3" || !slices.Equal(sc.Node.Join, []string{"g1:1"}) ||
		sc.Node.Replicas != 5 || sc.Node.PartitionCount != 300 || sc.LogLevel != slog.LevelDebug {
		t.Errorf("flags: %+v", sc)
	}
	// Settings not given as flags come from env, then file.
	if sc.Node.DataDir != "/file" || sc.Node.BootstrapExpect != 3 || sc.LogFormat != "json" {
		t.Errorf("file under flags: %+v", sc)
	}

	// Env wins over the file.
	sc = mustBuild(t, env)
	if sc.Node.NodeID != "from-env" || sc.Node.HTTPAddr != "10.0.0.2:2" || !slices.Equal(sc.Node.Join, []string{"e1:1", "e2:2"}) ||
		sc.Node.Replicas != 4 || sc.Node.PartitionCount != 200 || sc.LogLevel != slog.LevelError || sc.Node.Bootstrap {
		t.Errorf("env: %+v", sc)
	}

	// The file wins over defaults.
	sc = mustBuild(t, nil, "--config", file)
	if sc.Node.NodeID != "from-file" || sc.Node.HTTPAddr != "10.0.0.1:1" || !slices.Equal(sc.Node.Join, []string{"f1:1", "f2:2"}) ||
		sc.Node.Replicas != 3 || sc.Node.PartitionCount != 100 || sc.LogLevel != slog.LevelWarn || sc.LogFormat != "json" {
		t.Errorf("file: %+v", sc)
	}
	// Defaults fill in the rest.
	d := node.DefaultConfig()
	if sc.Node.ClusterAddr != d.ClusterAddr || sc.Node.RaftVoters != d.RaftVoters || sc.Node.Timing != d.Timing {
		t.Errorf("defaults under file: %+v", sc.Node)
	}

	// An empty env variable counts as unset.
	sc = mustBuild(t, map[string]string{"OLRIC_RAFT_HTTP_ADDR": "", "OLRIC_RAFT_DATA_DIR": "/d"})
	if sc.Node.HTTPAddr != d.HTTPAddr || sc.Node.DataDir != "/d" {
		t.Errorf("empty env: %+v", sc.Node)
	}
}

func TestConfigFileEveryKey(t *testing.T) {
	file := writeFile(t, `
node_id: n1
data_dir: /data
cluster_addr: 10.0.0.1:4001
gossip_addr: 10.0.0.1:4002
http_addr: 10.0.0.1:4003
resp_addr: 10.0.0.1:4004
join: ["10.0.0.2:4002"]
bootstrap: false
bootstrap_expect: 3
raft_voters: 5
partition_count: 1021
replicas: 3
timing:
  raft_heartbeat_timeout: 2s
  reconcile_interval: 1500ms
log_level: debug
log_format: json
`)
	sc := mustBuild(t, nil, "--config", file)
	want := node.Config{
		NodeID: "n1", DataDir: "/data", ClusterAddr: "10.0.0.1:4001", GossipAddr: "10.0.0.1:4002",
		HTTPAddr: "10.0.0.1:4003", RESPAddr: "10.0.0.1:4004", Join: []string{"10.0.0.2:4002"},
		BootstrapExpect: 3, RaftVoters: 5, PartitionCount: 1021, Replicas: 3, Timing: node.LANTiming(),
	}
	// A partial timing section overrides only its keys.
	want.Timing.RaftHeartbeatTimeout = 2 * time.Second
	want.Timing.ReconcileInterval = 1500 * time.Millisecond
	if !configEqual(sc.Node, want) {
		t.Errorf("got  %+v\nwant %+v", sc.Node, want)
	}
	if sc.LogLevel != slog.LevelDebug || sc.LogFormat != "json" {
		t.Errorf("logging: %+v", sc)
	}
	// --timing replaces the file's timing as a whole.
	sc = mustBuild(t, nil, "--config", file, "--timing", "dev")
	if sc.Node.Timing != node.DevTiming() {
		t.Errorf("--timing dev over file: %+v", sc.Node.Timing)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown key", "data_dir: /d\nnode_ide: x\n", "node_ide"},
		{"unknown nested key", "data_dir: /d\ntiming:\n  raft_heartbeat: 1s\n", "raft_heartbeat"},
		{"security flag not yet", "data_dir: /d\ngossip_key: k\n", "gossip_key"},
		{"wrong type", "data_dir: /d\nreplicas: two\n", "line 2: cannot unmarshal !!str `two`"},
		{"negative count", "data_dir: /d\npartition_count: -1\n", "-1"},
		{"bad duration", "data_dir: /d\ntiming:\n  raft_heartbeat_timeout: soon\n", "soon"},
		{"bare int duration", "data_dir: /d\ntiming:\n  raft_heartbeat_timeout: 5\n", "line 3: cannot unmarshal !!int `5` into time.Duration"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal"},
		{"two documents", "data_dir: /d\n---\nreplicas: 3\n", "one YAML document"},
		{"malformed", "data_dir: [\n", "yaml"},
		{"invalid values", "data_dir: /d\nraft_voters: 4\n", "raft_voters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, nil, "--config", writeFile(t, tc.content))
			wantUsageError(t, err, tc.want)
			if strings.Contains(err.Error(), "data_dir: required") {
				t.Errorf("a broken file also reports the settings it would have made:\n%v", err)
			}
		})
	}
	_, err := build(t, nil, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	wantUsageError(t, err, "missing.yaml")

	// An empty file is an empty configuration.
	sc := mustBuild(t, nil, "--config", writeFile(t, ""), "--data-dir", "/d")
	if sc.Node.NodeID != "test-host" {
		t.Errorf("empty file: %+v", sc.Node)
	}
}

func wantUsageError(t *testing.T, err error, substrings ...string) {
	t.Helper()
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v (%T), want a usage error", err, err)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not mention %q:\n%v", s, err)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	_, err := build(t, map[string]string{
		"OLRIC_RAFT_REPLICAS":        "two",
		"OLRIC_RAFT_BOOTSTRAP":       "maybe",
		"OLRIC_RAFT_PARTITION_COUNT": "-5",
		"OLRIC_RAFT_DATA_DIR":        "/d",
	})
	wantUsageError(t, err, "OLRIC_RAFT_REPLICAS", "OLRIC_RAFT_BOOTSTRAP", "OLRIC_RAFT_PARTITION_COUNT")
}

// TestValidationReportsEverything: every bad setting is named in one error.
func TestValidationReportsEverything(t *testing.T) {
	_, err := build(t, nil,
		"--node-id", "bad id!", "--raft-voters", "2", "--partition-count", "0", "--replicas", "9",
		"--timing", "wan", "--log-level", "loud", "--log-format", "xml", "--http-addr", "nope",
		"--join", "a:1,noport", "--bootstrap", "--bootstrap-expect", "3")
	wantUsageError(t, err, "node_id", "data_dir", "raft_voters", "partition count", "replicas", "--timing",
		`"loud"`, `"xml"`, "http_addr", "noport", "exclusive")
}

func TestMissingDataDir(t *testing.T) {
	_, err := build(t, nil)
	wantUsageError(t, err, "data_dir: required", "--data-dir", "OLRIC_RAFT_DATA_DIR")
}

func TestHostnameFailure(t *testing.T) {
	f := parseServerFlags(t, "--data-dir", "/d")
	_, err := buildServerConfig(f, envOf(nil), func() (string, error) { return "", errors.New("no hostname") })
	wantUsageError(t, err, "node_id")
	f = parseServerFlags(t, "--data-dir", "/d", "--node-id", "explicit")
	if _, err := buildServerConfig(f, envOf(nil), func() (string, error) { return "", errors.New("no hostname") }); err != nil {
		t.Errorf("explicit node id: %v", err)
	}
}

func TestDev(t *testing.T) {
	sc := mustBuild(t, nil, "--dev")
	if !sc.Dev || !sc.TempDataDir || sc.Node.DataDir != "" || !sc.Node.Bootstrap || sc.Node.Timing != node.DevTiming() {
		t.Errorf("--dev: %+v", sc)
	}
	sc = mustBuild(t, nil, "--dev", "--data-dir", "/keep", "--timing", "lan", "--http-addr", "127.0.0.1:0")
	if sc.TempDataDir || sc.Node.DataDir != "/keep" || sc.Node.Timing != node.LANTiming() || sc.Node.HTTPAddr != "127.0.0.1:0" {
		t.Errorf("--dev with settings: %+v", sc)
	}
	sc = mustBuild(t, map[string]string{"OLRIC_RAFT_DEV": "true"})
	if !sc.Dev || !sc.Node.Bootstrap {
		t.Errorf("OLRIC_RAFT_DEV: %+v", sc)
	}
	sc = mustBuild(t, nil, "--dev", "--config", writeFile(t, "data_dir: /from-file\n"))
	if sc.TempDataDir || sc.Node.DataDir != "/from-file" {
		t.Errorf("--dev with file data_dir: %+v", sc)
	}

	_, err := build(t, nil, "--dev", "--join", "a:1")
	wantUsageError(t, err, "--join")
	_, err = build(t, map[string]string{"OLRIC_RAFT_BOOTSTRAP_EXPECT": "3"}, "--dev")
	wantUsageError(t, err, "--bootstrap-expect")
	_, err = build(t, nil, "--dev", "--config", writeFile(t, "join: [a:1]\n"))
	wantUsageError(t, err, "--join")
}

func TestSanitizeNodeID(t *testing.T) {
	for in, want := range map[string]metadata.NodeID{
		"host-1.example.com":     "host-1.example.com",
		"My Host":                "My-Host",
		"ünïcode":                "n-code",
		"  spaced\n":             "spaced",
		"":                       "olric-raft",
		"...":                    "olric-raft",
		strings.Repeat("a", 300): metadata.NodeID(strings.Repeat("a", metadata.MaxNodeIDLen)),
	} {
		got := sanitizeNodeID(in)
		if got != want {
			t.Errorf("sanitizeNodeID(%q) = %q, want %q", in, got, want)
		}
		if err := metadata.ValidateNodeID(got); err != nil {
			t.Errorf("sanitizeNodeID(%q) = %q: %v", in, got, err)
		}
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"node-id": "OLRIC_RAFT_NODE_ID", "bootstrap-expect": "OLRIC_RAFT_BOOTSTRAP_EXPECT",
		"dev": "OLRIC_RAFT_DEV", "address": "OLRIC_RAFT_ADDRESS",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}
