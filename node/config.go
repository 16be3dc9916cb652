package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/transport"
)

// Timing is a set of timeouts for Raft, memberlist and the reconcile loop.
// Use one of the profiles (LANTiming, DevTiming) and adjust.
type Timing struct {
	// RaftHeartbeatTimeout is how long a follower waits without contact
	// before starting an election.
	RaftHeartbeatTimeout time.Duration `yaml:"raft_heartbeat_timeout"`
	// RaftElectionTimeout is how long a candidate waits for votes.
	RaftElectionTimeout time.Duration `yaml:"raft_election_timeout"`
	// RaftLeaderLeaseTimeout is how long a leader stays leader without
	// contact with a quorum. Must not exceed RaftHeartbeatTimeout.
	RaftLeaderLeaseTimeout time.Duration `yaml:"raft_leader_lease_timeout"`
	// RaftCommitTimeout bounds how long an idle leader waits before sending
	// an empty append (heartbeat of commit index).
	RaftCommitTimeout time.Duration `yaml:"raft_commit_timeout"`
	// GossipProbeInterval is memberlist's failure-probe interval.
	GossipProbeInterval time.Duration `yaml:"gossip_probe_interval"`
	// GossipProbeTimeout is memberlist's probe round-trip timeout.
	GossipProbeTimeout time.Duration `yaml:"gossip_probe_timeout"`
	// GossipInterval is memberlist's gossip interval.
	GossipInterval time.Duration `yaml:"gossip_interval"`
	// GossipSuspicionMult scales how long a suspect member has to refute
	// before it is declared dead.
	GossipSuspicionMult int `yaml:"gossip_suspicion_mult"`
	// GossipReconnectInterval is how often a member tries to reach members
	// of the routing table that memberlist does not list as alive, so that
	// both sides of a healed partition find each other again.
	GossipReconnectInterval time.Duration `yaml:"gossip_reconnect_interval"`
	// ReconcileInterval is how often the leader reconciles memberlist and
	// the Raft configuration into the routing table, besides on events.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// LeaseDuration is how long a partition-primary lease lasts, counted on
	// the member from the moment it sent the renewal the leader granted.
	// The leader fails a member over only once LeaseDuration plus
	// LeaseDriftMargin passed since it last granted that member a lease (see
	// lease.go).
	LeaseDuration time.Duration `yaml:"lease_duration"`
	// LeaseRenewInterval is how often every member asks the Raft leader to
	// renew its lease; less than half of LeaseDuration, so one lost renewal
	// does not cost the lease.
	LeaseRenewInterval time.Duration `yaml:"lease_renew_interval"`
}

// LeaseDriftMargin is the extra time the leader waits, beyond
// LeaseDuration, before it treats a member's lease as expired:
// LeaseDuration/10 + 50ms. It covers clock *rate* drift between the
// member's and the leader's monotonic clocks over one lease period (and
// timer slack), not wall-clock offsets: wall clocks are never compared,
// each side only measures elapsed time on its own monotonic clock.
func (t Timing) LeaseDriftMargin() time.Duration {
	return t.LeaseDuration/10 + 50*time.Millisecond
}

// LANTiming is the profile for members on one local network.
func LANTiming() Timing {
	return Timing{
		RaftHeartbeatTimeout:    500 * time.Millisecond,
		RaftElectionTimeout:     500 * time.Millisecond,
		RaftLeaderLeaseTimeout:  250 * time.Millisecond,
		RaftCommitTimeout:       20 * time.Millisecond,
		GossipProbeInterval:     1 * time.Second,
		GossipProbeTimeout:      500 * time.Millisecond,
		GossipInterval:          200 * time.Millisecond,
		GossipSuspicionMult:     4,
		GossipReconnectInterval: 5 * time.Second,
		ReconcileInterval:       1 * time.Second,
		LeaseDuration:           1000 * time.Millisecond,
		LeaseRenewInterval:      200 * time.Millisecond,
	}
}

// DevTiming is the profile for --dev and tests on one machine: failures are
// detected and routed around in well under a second.
func DevTiming() Timing {
	return Timing{
		RaftHeartbeatTimeout:    200 * time.Millisecond,
		RaftElectionTimeout:     200 * time.Millisecond,
		RaftLeaderLeaseTimeout:  100 * time.Millisecond,
		RaftCommitTimeout:       5 * time.Millisecond,
		GossipProbeInterval:     200 * time.Millisecond,
		GossipProbeTimeout:      100 * time.Millisecond,
		GossipInterval:          50 * time.Millisecond,
		GossipSuspicionMult:     2,
		GossipReconnectInterval: 500 * time.Millisecond,
		ReconcileInterval:       200 * time.Millisecond,
		LeaseDuration:           1500 * time.Millisecond,
		LeaseRenewInterval:      200 * time.Millisecond,
	}
}

// Config configures a Node. Start from DefaultConfig; New calls Validate.
type Config struct {
	// NodeID names this member; stable across restarts. Required.
	NodeID metadata.NodeID `yaml:"node_id"`
	// DataDir holds the Raft log, stable store and FSM snapshots. Required.
	DataDir string `yaml:"data_dir"`
	// ClusterAddr is the bind address of the cluster port (Raft + RPC).
	ClusterAddr string `yaml:"cluster_addr"`
	// GossipAddr is the bind address of memberlist (TCP and UDP).
	GossipAddr string `yaml:"gossip_addr"`
	// HTTPAddr and RESPAddr are advertised to other members so that they can
	// forward clients; the node itself does not listen on them.
	HTTPAddr string `yaml:"http_addr"`
	RESPAddr string `yaml:"resp_addr"`
	// Join lists gossip addresses of existing members to join at start.
	Join []string `yaml:"join"`
	// Bootstrap makes this node a new single-node cluster if it has no Raft
	// state yet.
	Bootstrap bool `yaml:"bootstrap"`
	// BootstrapExpect, when > 0, makes this node wait until it sees that
	// many members (all started with the same value) and then bootstrap the
	// cluster with them. Start exactly that many members with it.
	BootstrapExpect int `yaml:"bootstrap_expect"`
	// RaftVoters is how many members are Raft voters (odd, 1 to 7); the
	// others are non-voters that hold the FSM too.
	RaftVoters int `yaml:"raft_voters"`
	// PartitionCount and Replicas apply when this node creates the cluster.
	PartitionCount uint32 `yaml:"partition_count"`
	Replicas       int    `yaml:"replicas"`
	// Timing holds Raft, memberlist and reconcile timeouts.
	Timing Timing `yaml:"timing"`
	// DataPlane configures the storage engine (per-DMap limits, TTL,
	// eviction, value size limit).
	DataPlane dataplane.Config `yaml:"dataplane"`

	// TLS turns on mutual TLS on the cluster port (Raft and cluster RPC,
	// accepted and dialed connections): every member presents its
	// certificate and refuses a peer whose certificate does not chain to
	// the CA. Off when every field is empty. All members must agree.
	TLS TLSConfig `yaml:",inline"`
	// GossipKeyFile, when set, names a file holding the base64 encoding of
	// a 16, 24 or 32-byte key (like Consul's encrypt): memberlist encrypts
	// and authenticates every gossip packet and stream with it (AES-GCM)
	// and drops anything not sealed with it. All members must agree.
	GossipKeyFile string `yaml:"gossip_key"`

	// Faults, when set, injects network faults (tests only).
	Faults transport.Faults `yaml:"-"`
	// Unsafe breaks safety mechanisms on purpose, so that tests can show
	// their checkers catch the anomalies that follow (tests only; the
	// server's hidden --unsafe-test-fault flag).
	Unsafe UnsafeFaults `yaml:"-"`
	// Logger receives the node's logs (and Raft's and memberlist's). Nil
	// means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// TLSConfig names the PEM files of a member's TLS material for the cluster
// port. CertFile, KeyFile and CAFile go together.
type TLSConfig struct {
	// CertFile is the member's certificate (intermediates may follow it),
	// good for TLS server and client authentication.
	CertFile string `yaml:"tls_cert"`
	// KeyFile is the certificate's private key.
	KeyFile string `yaml:"tls_key"`
	// CAFile holds the CA certificate(s) every member's certificate must
	// chain to.
	CAFile string `yaml:"tls_ca"`
	// Provider, when set, is used instead of loading the files (which are
	// then only informative): the server command shares one provider
	// between the cluster port and its HTTP and RESP listeners, so that
	// one reload (SIGHUP) renews all of them.
	Provider *transport.TLSProvider `yaml:"-"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool {
	return t.Provider != nil || t.CertFile != "" || t.KeyFile != "" || t.CAFile != ""
}

// Files returns the file names as the transport package takes them.
func (t TLSConfig) Files() transport.TLSFiles {
	return transport.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile}
}

// DefaultConfig returns a configuration with every default filled in; the
// caller must set NodeID and DataDir.
func DefaultConfig() Config {
	return Config{
		ClusterAddr:    "127.0.0.1:3321",
		GossipAddr:     "127.0.0.1:3322",
		HTTPAddr:       "127.0.0.1:3380",
		RESPAddr:       "127.0.0.1:3320",
		RaftVoters:     3,
		PartitionCount: metadata.DefaultPartitionCount,
		Replicas:       metadata.DefaultReplicas,
		Timing:         LANTiming(),
		DataPlane:      dataplane.DefaultConfig(),
	}
}

// ErrInvalidConfig wraps every configuration problem found by Validate.
var ErrInvalidConfig = errors.New("node: invalid configuration")

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if err := metadata.ValidateNodeID(c.NodeID); err != nil {
		add("node_id: %v", err)
	}
	if c.DataDir == "" {
		add("data_dir: required")
	}
	for name, addr := range map[string]string{
		"cluster_addr": c.ClusterAddr, "gossip_addr": c.GossipAddr,
		"http_addr": c.HTTPAddr, "resp_addr": c.RESPAddr,
	} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s: %q is not host:port", name, addr)
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			add("join: %q is not host:port", j)
		}
	}
	if c.Bootstrap && c.BootstrapExpect > 0 {
		add("bootstrap and bootstrap_expect are exclusive")
	}
	if c.BootstrapExpect < 0 {
		add("bootstrap_expect: %d must not be negative", c.BootstrapExpect)
	}
	if c.RaftVoters < 1 || c.RaftVoters > 7 || c.RaftVoters%2 == 0 {
		add("raft_voters: %d must be odd, 1 to 7", c.RaftVoters)
	}
	if err := metadata.ValidateSettings(c.PartitionCount, c.Replicas); err != nil {
		add("%v", err)
	}
	t := c.Timing
	if t.RaftHeartbeatTimeout < 5*time.Millisecond || t.RaftElectionTimeout < 5*time.Millisecond {
		add("timing: raft heartbeat and election timeouts must be at least 5ms")
	}
	if t.RaftLeaderLeaseTimeout <= 0 || t.RaftLeaderLeaseTimeout > t.RaftHeartbeatTimeout {
		add("timing: raft_leader_lease_timeout must be positive and at most raft_heartbeat_timeout")
	}
	if t.RaftCommitTimeout <= 0 {
		add("timing: raft_commit_timeout must be positive")
	}
	if t.GossipProbeInterval <= 0 || t.GossipProbeTimeout <= 0 || t.GossipInterval <= 0 || t.GossipSuspicionMult < 1 {
		add("timing: gossip intervals must be positive")
	}
	if t.GossipReconnectInterval <= 0 {
		add("timing: gossip_reconnect_interval must be positive")
	}
	if err := c.DataPlane.Validate(); err != nil {
		add("dataplane: %v", err)
	}
	if t.ReconcileInterval <= 0 {
		add("timing: reconcile_interval must be positive")
	}
	if t.LeaseRenewInterval <= 0 || t.LeaseRenewInterval >= t.LeaseDuration/2 {
		add("timing: lease_renew_interval (%v) must be positive and less than half of lease_duration (%v)",
			t.LeaseRenewInterval, t.LeaseDuration)
	}
	if c.TLS.Enabled() && c.TLS.Provider == nil {
		// Loading the files checks them (readable, matching key, chain to
		// the CA, valid now); a missing one is reported by name.
		for _, f := range []struct{ key, file string }{
			{"tls_cert", c.TLS.CertFile}, {"tls_key", c.TLS.KeyFile}, {"tls_ca", c.TLS.CAFile},
		} {
			if f.file == "" {
				add("%s: required when any of tls_cert, tls_key and tls_ca is set", f.key)
			}
		}
		if c.TLS.CertFile != "" && c.TLS.KeyFile != "" && c.TLS.CAFile != "" {
			if _, err := transport.NewTLSProvider(c.TLS.Files()); err != nil {
				add("tls: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
		}
	}
	if c.GossipKeyFile != "" {
		if _, err := transport.LoadGossipKey(c.GossipKeyFile); err != nil {
			add("gossip_key: %v", err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(errs, "; "))
	}
	return nil
}

// UnsafeFaults are deliberate safety bugs for checker tests. Never set them
// in production: they lose acknowledged writes and serve stale reads.
type UnsafeFaults struct {
	// AckBeforeReplication: a primary answers without waiting for its
	// in-sync backups (asynchronous replication).
	AckBeforeReplication bool
	// IgnoreLease: a primary serves without a current lease.
	IgnoreLease bool
}
