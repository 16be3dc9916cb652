package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/internal/tlsgen"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// memberFiles issues a certificate for name from ca and writes it, its key
// and trust (the CA the member trusts) to a new directory.
func memberFiles(t *testing.T, ca, trust *tlsgen.CA, name string) node.TLSConfig {
	t.Helper()
	c, err := ca.Issue(tlsgen.LeafOptions{Name: name, Hosts: tlsgen.DefaultHosts})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := node.TLSConfig{
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
		CAFile:   filepath.Join(dir, "ca.pem"),
	}
	for path, data := range map[string][]byte{cfg.CertFile: c.CertPEM, cfg.KeyFile: c.KeyPEM, cfg.CAFile: trust.CertPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func gossipKeyFile(t *testing.T, key []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncLog collects a member's log lines.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestTLSClusterRefusesForeignMembers is the acceptance test "a member
// without the right certificate cannot join": members with certificates of
// the cluster CA and the gossip key form a cluster and serve; a member
// whose certificate comes from another CA (gossip key right) and one with
// the wrong gossip key (certificate right) never become Raft servers nor
// routing-table members, while a good member started after them does.
func TestTLSClusterRefusesForeignMembers(t *testing.T) {
	ca, err := tlsgen.NewCA("cluster-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsgen.NewCA("other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	goodKey := gossipKeyFile(t, key)
	wrongKey := gossipKeyFile(t, bytes.Repeat([]byte{9}, 32))

	c := testcluster.New(t, 6, testcluster.Options{SeedBootstrap: true, PartitionCount: 31})
	const (
		intruder = 3 // m4: certificate of another CA
		noKey    = 4 // m5: the wrong gossip key
		late     = 5 // m6: good, started after both
	)
	intruderLog := &syncLog{}
	for i, m := range c.Members {
		m.Cfg.TLS = memberFiles(t, ca, ca, string(m.Name))
		m.Cfg.GossipKeyFile = goodKey
		switch i {
		case intruder:
			m.Cfg.TLS = memberFiles(t, other, other, string(m.Name))
			m.Cfg.Logger = slog.New(slog.NewTextHandler(intruderLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
		case noKey:
			m.Cfg.GossipKeyFile = wrongKey
		}
	}
	for i := range 3 {
		c.Start(i)
	}
	c.WaitConverged(30 * time.Second)

	// They serve: a write on one member reads back on another.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.WaitFor(10*time.Second, "a put", func() error {
		_, err := c.Members[0].Node().Do(ctx, &dataplane.Request{Op: dataplane.OpPut, DMap: "d", Key: "k", Value: []byte(`"v"`)})
		return err
	})
	resp, err := c.Members[2].Node().Do(ctx, &dataplane.Request{Op: dataplane.OpGet, DMap: "d", Key: "k"})
	if err != nil || string(resp.Value) != `"v"` {
		t.Fatalf("get: %+v, %v", resp, err)
	}

	c.Start(intruder)
	c.Start(noKey)
	// The intruder gossips with the cluster (same key), and the leader's
	// probe of its cluster port fails: the intruder refuses the leader's
	// certificate (or the leader the intruder's) and logs it.
	c.WaitFor(20*time.Second, "the intruder to refuse a TLS handshake", func() error {
		if !strings.Contains(intruderLog.String(), "TLS handshake with peer failed") {
			return errors.New("no refusal logged yet")
		}
		return nil
	})
	c.Start(late)
	c.WaitFor(30*time.Second, "the late good member to join", func() error {
		for _, m := range c.Members[:3] {
			mem, ok := m.Node().Routing().Member(c.Members[late].Name)
			if !ok || mem.State != metadata.MemberAlive {
				return fmt.Errorf("%s does not list %s as alive", m.Name, c.Members[late].Name)
			}
		}
		return nil
	})
	// (c.Leader would wait for the outsiders to agree on the leader too.)
	var leader *testcluster.Member
	c.WaitFor(10*time.Second, "the leader among the good members", func() error {
		for _, m := range c.Members[:3] {
			if m.Node().IsLeader() {
				leader = m
				return nil
			}
		}
		return errors.New("none of m1-m3 leads")
	})
	for _, bad := range []int{intruder, noKey} {
		name := c.Members[bad].Name
		for _, m := range append(c.Members[:3:3], c.Members[late]) {
			if _, ok := m.Node().Routing().Member(name); ok {
				t.Errorf("%s lists %s in its routing table", m.Name, name)
			}
		}
		if ids := node.RaftServerIDs(leader.Node()); slices.Contains(ids, string(name)) {
			t.Errorf("%s is a Raft server: %v", name, ids)
		}
	}
	// The wrong gossip key keeps m5 out of gossip altogether; the
	// intruder gossips (the key is right) but stays out of Raft.
	if ids := node.GossipMemberIDs(leader.Node()); slices.Contains(ids, string(c.Members[noKey].Name)) {
		t.Errorf("the member with the wrong gossip key is in the leader's gossip view: %v", ids)
	}
	if strings.Contains(intruderLog.String(), "PRIVATE KEY") {
		t.Fatal("key material logged")
	}
}
