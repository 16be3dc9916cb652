package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// DefaultMaxConnections is --max-connections' default (redis-server's
// maxclients).
const DefaultMaxConnections = 10000

// envPrefix prefixes the environment variable of every flag:
// --http-addr is OLRIC_RAFT_HTTP_ADDR.
const envPrefix = "OLRIC_RAFT_"

// envName returns the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// serverFlags are the server command's flags, bound to a FlagSet.
type serverFlags struct {
	fs *pflag.FlagSet

	nodeID, dataDir                             string
	httpAddr, respAddr, clusterAddr, gossipAddr string
	join                                        []string
	bootstrap                                   bool
	bootstrapExpect, raftVoters, replicas       int
	partitionCount                              uint32
	timing, config, logLevel, logFormat         string
	dev                                         bool
	unsafeFaults                                []string
	tlsCert, tlsKey, tlsCA, gossipKey           string
	tlsClients                                  bool
	maxConnections                              int
	authTokens                                  string
}

// addServerFlags defines the server flags on fs, with node.DefaultConfig's
// values as defaults.
func addServerFlags(fs *pflag.FlagSet) *serverFlags {
	d := node.DefaultConfig()
	f := &serverFlags{fs: fs}
	fs.StringVar(&f.nodeID, "node-id", "", "name of this member, stable across restarts (default: the host name, sanitized)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the Raft log, stable store and snapshots (required, except with --dev)")
	fs.StringVar(&f.httpAddr, "http-addr", d.HTTPAddr, "HTTP API listen address")
	fs.StringVar(&f.respAddr, "resp-addr", d.RESPAddr, "RESP (Redis protocol) address")
	fs.StringVar(&f.clusterAddr, "cluster-addr", d.ClusterAddr, "cluster address (Raft and cluster RPC)")
	fs.StringVar(&f.gossipAddr, "gossip-addr", d.GossipAddr, "gossip (memberlist) address")
	fs.StringSliceVar(&f.join, "join", nil, "gossip addresses of existing members to join, comma-separated")
	fs.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a new single-member cluster if this member has no Raft state")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once this many members (all started with the same value) see each other")
	fs.IntVar(&f.raftVoters, "raft-voters", d.RaftVoters, "number of Raft voters (odd, 1 to 7); other members are non-voters")
	fs.Uint32Var(&f.partitionCount, "partition-count", d.PartitionCount, "partitions of a new cluster (fixed for its life)")
	fs.IntVar(&f.replicas, "replicas", d.Replicas, "copies of each partition in a new cluster (primary + backups)")
	fs.StringVar(&f.timing, "timing", "lan", "timeout profile: lan or dev")
	fs.StringVar(&f.config, "config", "", "YAML configuration file (keys as node_id, data_dir, ..., log_level, log_format)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&f.dev, "dev", false, "single-member development cluster: --bootstrap, dev timing, and a temporary data dir removed on exit unless one is set")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate of this member: mutual TLS on the cluster port (with --tls-key and --tls-ca); reloaded on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA certificate(s) every member's certificate must chain to")
	fs.IntVar(&f.maxConnections, "max-connections", DefaultMaxConnections, "most client connections each of the HTTP and RESP listeners serves at once; one more gets a busy answer (HTTP 503 overloaded, RESP error) and is closed (0: no limit)")
	fs.BoolVar(&f.tlsClients, "tls-clients", false, "also serve TLS on the HTTP and RESP listeners with --tls-cert (clients need no certificate)")
	fs.StringVar(&f.gossipKey, "gossip-key", "", "file holding a base64 key of 16, 24 or 32 bytes: encrypts gossip (memberlist)")
	fs.StringVar(&f.authTokens, "auth-tokens", "", "file of client tokens, one \"ROLE TOKEN\" per line (roles read, write, admin): HTTP and RESP clients must authenticate; reloaded on SIGHUP (default: no authentication)")
	fs.StringSliceVar(&f.unsafeFaults, "unsafe-test-fault", nil, "TESTS ONLY: break a safety mechanism on purpose (ack-before-replication, ignore-lease) so tests can show that their checkers catch it")
	_ = fs.MarkHidden("unsafe-test-fault")
	return f
}

// serverConfig is everything the server command runs with.
type serverConfig struct {
	// Node is validated, except that DataDir is empty when TempDataDir.
	Node      node.Config
	LogLevel  slog.Level
	LogFormat string // text or json
	Dev       bool
	// TempDataDir: --dev without a configured data dir; the server creates
	// a temporary one and removes it on exit.
	TempDataDir bool
	// MaxConnections per client listener (0: no limit).
	MaxConnections int
	// TLSClients: serve TLS on the HTTP and RESP listeners too, with the
	// cluster port's certificate (Node.TLS).
	TLSClients bool
	// AuthTokens is the --auth-tokens file ("": no authentication); Auth
	// its tokens, loaded and checked by buildServerConfig.
	AuthTokens string
	Auth       *auth.Store
}

// fileConfig is the --config file: node.Config's yaml keys plus logging.
type fileConfig struct {
	node.Config `yaml:",inline"`
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (logfmt-like key=value) or json (one object per
	// line); every line carries the member id.
	LogFormat string `yaml:"log_format"`
	// TLSClients serves TLS on the HTTP and RESP listeners too.
	TLSClients bool `yaml:"tls_clients"`
	// MaxConnections is the most client connections each of the HTTP and
	// RESP listeners serves at once (0: no limit); connections over it get
	// a busy answer and are closed.
	MaxConnections int `yaml:"max_connections"`
	// AuthTokens is a file of client tokens, one "ROLE TOKEN" per line
	// (roles read, write, admin; '#' comments): HTTP and RESP clients must
	// present one, of a role strong enough for what they do. Reloaded on
	// SIGHUP. Empty: no authentication.
	AuthTokens string `yaml:"auth_tokens"`
}

// buildServerConfig resolves the server's settings from the parsed flags,
// the environment, the --config file and the defaults, in that order of
// precedence (flag > env > file > default), and validates them. It reports
// every problem at once, as a usage error; it never panics.
//
// lookupEnv is os.LookupEnv in production; hostname is os.Hostname (the
// default node id).
func buildServerConfig(f *serverFlags, lookupEnv func(string) (string, bool), hostname func() (string, error)) (*serverConfig, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// 1. The environment fills in flags not given on the command line;
	// from here on, Changed means "set by flag or env".
	for _, err := range applyEnv(f.fs, lookupEnv) {
		add("%v", err)
	}
	changed := f.fs.Changed

	// 2. Defaults.
	sc := &serverConfig{Node: node.DefaultConfig(), LogLevel: slog.LevelInfo, LogFormat: "text", MaxConnections: DefaultMaxConnections}
	if h, err := hostname(); err == nil {
		sc.Node.NodeID = sanitizeNodeID(h)
	}
	logLevel, logFormat := "info", "text"

	// 3. The config file.
	fileKeys := map[string]bool{}
	fileOK := true
	if f.config != "" {
		fc, keys, err := loadConfigFile(f.config, sc.Node)
		if err != nil {
			add("%v", err)
			fileOK = false
		} else {
			sc.Node, fileKeys = fc.Config, keys
			if keys["log_level"] {
				logLevel = fc.LogLevel
			}
			if keys["log_format"] {
				logFormat = fc.LogFormat
			}
			sc.TLSClients = fc.TLSClients
			sc.AuthTokens = fc.AuthTokens
			if keys["max_connections"] {
				sc.MaxConnections = fc.MaxConnections
			}
		}
	}

	// 4. Flags (and env).
	if changed("node-id") {
		sc.Node.NodeID = metadata.NodeID(f.nodeID)
	}
	if changed("data-dir") {
		sc.Node.DataDir = f.dataDir
	}
	if changed("http-addr") {
		sc.Node.HTTPAddr = f.httpAddr
	}
	if changed("resp-addr") {
		sc.Node.RESPAddr = f.respAddr
	}
	if changed("cluster-addr") {
		sc.Node.ClusterAddr = f.clusterAddr
	}
	if changed("gossip-addr") {
		sc.Node.GossipAddr = f.gossipAddr
	}
	if changed("join") {
		sc.Node.Join = nil
		for _, j := range f.join {
			if j = strings.TrimSpace(j); j != "" {
				sc.Node.Join = append(sc.Node.Join, j)
			}
		}
	}
	if changed("bootstrap") {
		sc.Node.Bootstrap = f.bootstrap
	}
	if changed("bootstrap-expect") {
		sc.Node.BootstrapExpect = f.bootstrapExpect
	}
	if changed("raft-voters") {
		sc.Node.RaftVoters = f.raftVoters
	}
	if changed("partition-count") {
		sc.Node.PartitionCount = f.partitionCount
	}
	if changed("replicas") {
		sc.Node.Replicas = f.replicas
	}
	if changed("timing") {
		switch f.timing {
		case "lan":
			sc.Node.Timing = node.LANTiming()
		case "dev":
			sc.Node.Timing = node.DevTiming()
		default:
			add("--timing: %q must be lan or dev", f.timing)
		}
	}
	if changed("tls-cert") {
		sc.Node.TLS.CertFile = f.tlsCert
	}
	if changed("tls-key") {
		sc.Node.TLS.KeyFile = f.tlsKey
	}
	if changed("tls-ca") {
		sc.Node.TLS.CAFile = f.tlsCA
	}
	if changed("tls-clients") {
		sc.TLSClients = f.tlsClients
	}
	if changed("max-connections") {
		sc.MaxConnections = f.maxConnections
	}
	if sc.MaxConnections < 0 {
		add("max_connections: %d is negative (0: no limit)", sc.MaxConnections)
	}
	if changed("gossip-key") {
		sc.Node.GossipKeyFile = f.gossipKey
	}
	if changed("auth-tokens") {
		sc.AuthTokens = f.authTokens
	}
	if sc.AuthTokens != "" {
		var bad []string
		sc.Auth, bad = loadAuthTokens(sc.AuthTokens)
		problems = append(problems, bad...)
	}
	if sc.TLSClients && !sc.Node.TLS.Enabled() {
		add("tls_clients: needs tls_cert, tls_key and tls_ca (the HTTP and RESP listeners use the member's certificate)")
	}
	for _, u := range f.unsafeFaults {
		switch strings.TrimSpace(u) {
		case "ack-before-replication":
			sc.Node.Unsafe.AckBeforeReplication = true
		case "ignore-lease":
			sc.Node.Unsafe.IgnoreLease = true
		default:
			add("--unsafe-test-fault: %q must be ack-before-replication or ignore-lease", u)
		}
	}
	if changed("log-level") {
		logLevel = f.logLevel
	}
	if changed("log-format") {
		logFormat = f.logFormat
	}
	if err := sc.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		add("log level %q must be debug, info, warn or error", logLevel)
	}
	switch logFormat {
	case "text", "json":
		sc.LogFormat = logFormat
	default:
		add("log format %q must be text or json", logFormat)
	}

	// 5. --dev: a single-member cluster. It supplies the data dir and the
	// timing unless they are set anywhere, and refuses settings that would
	// make it join or wait for others.
	if f.dev {
		sc.Dev = true
		if changed("join") || fileKeys["join"] {
			add("--dev starts a single-member cluster: it cannot be combined with --join")
		}
		if changed("bootstrap-expect") || fileKeys["bootstrap_expect"] {
			add("--dev starts a single-member cluster: it cannot be combined with --bootstrap-expect")
		}
		sc.Node.Bootstrap, sc.Node.BootstrapExpect, sc.Node.Join = true, 0, nil
		if !changed("timing") && !fileKeys["timing"] {
			sc.Node.Timing = node.DevTiming()
		}
		if !changed("data-dir") && !fileKeys["data_dir"] {
			sc.TempDataDir, sc.Node.DataDir = true, ""
		}
	}

	// 6. The node's own validation, every problem at once; skipped when
	// the file could not be read, since its settings are then unknown.
	check := sc.Node
	if sc.TempDataDir {
		check.DataDir = "(temporary)"
	}
	if err := check.Validate(); err != nil && fileOK {
		add("%v", err)
	}

	if len(problems) > 0 {
		return nil, &usageError{err: fmt.Errorf("invalid server configuration:\n  - %s\n"+
			"(settings are named as config keys; each has a flag and an env variable, e.g. data_dir is --data-dir and %s)",
			strings.Join(problems, "\n  - "), envName("data-dir"))}
	}
	return sc, nil
}

// applyEnv sets every flag of fs that was not given on the command line
// from its environment variable, if set and not empty, parsing it as the
// flag would be parsed.
func applyEnv(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), only ...string) []error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "help" || (len(only) > 0 && !contains(only, fl.Name)) {
			return
		}
		v, ok := lookupEnv(envName(fl.Name))
		if !ok || v == "" {
			return
		}
		if err := fs.Set(fl.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", envName(fl.Name), v, err))
		}
	})
	return errs
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// loadConfigFile decodes the YAML file at path over base. Unknown keys,
// wrong types and more than one document are errors. It returns the
// top-level keys the file sets.
func loadConfigFile(path string, base node.Config) (fileConfig, map[string]bool, error) {
	fc := fileConfig{Config: base}
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, nil, fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) { // empty file
			return fileConfig{Config: base}, map[string]bool{}, nil
		}
		return fc, nil, fmt.Errorf("--config %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fc, nil, fmt.Errorf("--config %s: want exactly one YAML document", path)
	}
	var doc yaml.Node
	keys := map[string]bool{}
	if err := yaml.Unmarshal(data, &doc); err == nil && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			keys[m.Content[i].Value] = true
		}
	}
	return fc, keys, nil
}

// sanitizeNodeID turns a host name into a valid node id: characters other
// than letters, digits, '-', '_' and '.' become '-', and it is cut to
// metadata.MaxNodeIDLen.
func sanitizeNodeID(host string) metadata.NodeID {
	var b strings.Builder
	for _, r := range strings.TrimSpace(host) {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= metadata.MaxNodeIDLen {
			break
		}
	}
	id := strings.Trim(b.String(), "-.")
	if len(id) > metadata.MaxNodeIDLen {
		id = id[:metadata.MaxNodeIDLen]
	}
	if id == "" {
		return "olric-raft"
	}
	return metadata.NodeID(id)
}
