package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/olric-raft/olric-raft/internal/tlsgen"
)

// logBuffer collects log lines (and forwards them to t.Log) so tests can
// check what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tw  *testWriter
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	return b.tw.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogBuffer(t *testing.T) (*logBuffer, *slog.Logger) {
	b := &logBuffer{tw: newTestWriter(t)}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newTestCA(t testing.TB, name string) *tlsgen.CA {
	t.Helper()
	ca, err := tlsgen.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *tlsgen.CA, o tlsgen.LeafOptions) *tlsgen.Cert {
	t.Helper()
	if o.Name == "" {
		o.Name = "member"
	}
	o.Hosts = append(o.Hosts, tlsgen.DefaultHosts...)
	c, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// memProvider is a provider of cert trusting trust, without the load-time
// checks (so a test peer may hold an expired or foreign certificate).
func memProvider(t testing.TB, cert *tlsgen.Cert, trust *tlsgen.CA) *TLSProvider {
	t.Helper()
	kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	kp.Leaf = cert.Cert
	pool := x509.NewCertPool()
	pool.AddCert(trust.Cert)
	return newTLSProvider(TLSFiles{}, &tlsMaterial{cert: &kp, pool: pool})
}

// writeFiles writes cert, its key and ca to dir as PEM files.
func writeFiles(t testing.TB, dir string, cert *tlsgen.Cert, ca *tlsgen.CA) TLSFiles {
	t.Helper()
	f := TLSFiles{
		CertFile: filepath.Join(dir, "member.pem"),
		KeyFile:  filepath.Join(dir, "member-key.pem"),
		CAFile:   filepath.Join(dir, "ca.pem"),
	}
	for path, data := range map[string][]byte{f.CertFile: cert.CertPEM, f.KeyFile: cert.KeyPEM, f.CAFile: ca.CertPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestTLSMutualRaftAndRPC(t *testing.T) {
	ca := newTestCA(t, "ca")
	pa := memProvider(t, issue(t, ca, tlsgen.LeafOptions{Name: "a"}), ca)
	pb := memProvider(t, issue(t, ca, tlsgen.LeafOptions{Name: "b"}), ca)
	a := newMux(t, Config{TLS: pa})
	b := newMux(t, Config{TLS: pb})
	a.ServeRPC(echoHandler())
	b.ServeRPC(echoHandler())
	ctx := ctxTimeout(t, 10*time.Second)

	// RPC, both directions.
	for _, tc := range []struct {
		name     string
		from, to *Mux
	}{{"a->b", a, b}, {"b->a", b, a}} {
		cl := newClient(t, tc.from, ClientOptions{})
		var got string
		if err := cl.Call(ctx, tc.to.Addr().String(), "echo", "hi "+tc.name, &got); err != nil {
			t.Fatalf("%s: Call: %v", tc.name, err)
		}
		if got != "hi "+tc.name {
			t.Fatalf("%s: got %q", tc.name, got)
		}
	}

	// Raft: a dials b's stream layer, bytes flow both ways in TLS.
	accepted := acceptOne(b.RaftLayer())
	c, err := a.RaftLayer().Dial(raftAddr(b), 5*time.Second)
	if err != nil {
		t.Fatalf("raft Dial: %v", err)
	}
	defer c.Close()
	s, ok := <-accepted
	if !ok {
		t.Fatal("raft Accept failed")
	}
	defer s.Close()
	under := s
	if rc, ok := s.(*raftConn); ok {
		under = rc.NetConn()
	}
	if _, ok := under.(*tls.Conn); !ok {
		t.Fatalf("accepted raft conn is %T over %T, want a *tls.Conn", s, under)
	}
	exchange(t, c, s, "append entries")
	exchange(t, s, c, "response")
	if st := b.Stats(); st.Rejected != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func raftAddr(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.Addr().String()) }

// TestTLSRefusesBadPeers: a peer whose certificate comes from another CA,
// is expired, or is missing cannot talk to the cluster port, in either
// role; the refusing side logs the remote address and the reason.
func TestTLSRefusesBadPeers(t *testing.T) {
	ca := newTestCA(t, "ca")
	other := newTestCA(t, "other-ca")
	good := memProvider(t, issue(t, ca, tlsgen.LeafOptions{Name: "good"}), ca)
	expiredCert := issue(t, ca, tlsgen.LeafOptions{Name: "expired",
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	for _, tc := range []struct {
		name string
		bad  *TLSProvider
	}{
		{"other CA", memProvider(t, issue(t, other, tlsgen.LeafOptions{Name: "intruder"}), ca)},
		{"expired", memProvider(t, expiredCert, ca)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goodLog, goodLogger := newLogBuffer(t)
			badLog, badLogger := newLogBuffer(t)
			g := newMux(t, Config{TLS: good, Logger: goodLogger})
			b := newMux(t, Config{TLS: tc.bad, Logger: badLogger})
			g.ServeRPC(echoHandler())
			b.ServeRPC(echoHandler())
			ctx := ctxTimeout(t, 10*time.Second)

			// The bad peer calls the good one: the good one refuses.
			err := newClient(t, b, ClientOptions{}).Call(ctx, g.Addr().String(), "echo", "x", nil)
			if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrHandshake) {
				t.Fatalf("bad -> good: Call = %v, want ErrUnreachable and ErrHandshake", err)
			}
			waitFor(t, 5*time.Second, "the good member's log of the refusal", func() bool {
				s := goodLog.String()
				return strings.Contains(s, "TLS handshake with peer failed") && strings.Contains(s, "remote=127.0.0.1:")
			})
			// The good peer calls the bad one: it refuses the bad
			// certificate itself.
			err = newClient(t, g, ClientOptions{}).Call(ctx, b.Addr().String(), "echo", "x", nil)
			if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrHandshake) {
				t.Fatalf("good -> bad: Call = %v, want ErrUnreachable and ErrHandshake", err)
			}
			if s := goodLog.String(); !strings.Contains(s, "remote="+b.Addr().String()) {
				t.Fatalf("the good member did not log the refused server %s:\n%s", b.Addr(), s)
			}
			// The Raft kind is refused the same way.
			if _, err := b.RaftLayer().Dial(raftAddr(g), 5*time.Second); !errors.Is(err, ErrHandshake) {
				t.Fatalf("raft dial bad -> good = %v, want ErrHandshake", err)
			}
			// The refusing side counts after the dialer saw its alert.
			waitFor(t, 5*time.Second, "two rejections counted", func() bool { return g.Stats().Rejected >= 2 })
			if st := g.Stats(); st.Routed != 0 {
				t.Fatalf("good member's stats: %+v", st)
			}
			for _, l := range []string{goodLog.String(), badLog.String()} {
				if strings.Contains(l, "PRIVATE KEY") {
					t.Fatalf("key material logged:\n%s", l)
				}
			}
		})
	}

	t.Run("no certificate", func(t *testing.T) {
		goodLog, goodLogger := newLogBuffer(t)
		g := newMux(t, Config{TLS: good, Logger: goodLogger})
		g.ServeRPC(echoHandler())
		raw, err := net.Dial("tcp", g.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // test peer
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		err = c.Handshake()
		if err == nil {
			_, _ = c.Write([]byte{KindRPC})
			var b [1]byte
			_, err = c.Read(b[:])
		}
		if err == nil {
			t.Fatal("a peer without a certificate got through")
		}
		waitFor(t, 5*time.Second, "the log of the refusal", func() bool {
			return strings.Contains(goodLog.String(), "TLS handshake with peer failed")
		})
	})

	t.Run("plain TCP", func(t *testing.T) {
		g := newMux(t, Config{TLS: good})
		g.ServeRPC(echoHandler())
		plain := newMux(t, Config{})
		ctx := ctxTimeout(t, 10*time.Second)
		if err := newClient(t, plain, ClientOptions{}).Call(ctx, g.Addr().String(), "echo", "x", nil); err == nil {
			t.Fatal("a plain TCP peer got an answer from a TLS member")
		}
		// And a TLS member calling a plain one fails its handshake.
		plain.ServeRPC(echoHandler())
		err := newClient(t, g, ClientOptions{}).Call(ctx, plain.Addr().String(), "echo", "x", nil)
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("TLS -> plain = %v, want ErrHandshake", err)
		}
	})
}

// TestTLSHandshakeTimeout: a connection that never starts its handshake is
// closed after HandshakeTimeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	ca := newTestCA(t, "ca")
	m := newMux(t, Config{TLS: memProvider(t, issue(t, ca, tlsgen.LeafOptions{}), ca), HandshakeTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosedByPeer(t, c)
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool { return m.Stats().Rejected == 1 })
}

// TestTLSReload: after the files are replaced by a new pair of the same CA
// and Reload, new connections present the new certificate, old ones stay;
// a failed reload keeps the material in use.
func TestTLSReload(t *testing.T) {
	ca := newTestCA(t, "ca")
	dir := t.TempDir()
	first := issue(t, ca, tlsgen.LeafOptions{Name: "srv"})
	files := writeFiles(t, dir, first, ca)
	p, err := NewTLSProvider(files)
	if err != nil {
		t.Fatalf("NewTLSProvider: %v", err)
	}
	srv := newMux(t, Config{TLS: p})
	srv.ServeRPC(echoHandler())
	clientCert := issue(t, ca, tlsgen.LeafOptions{Name: "client"})

	// serialSeen dials srv as a cluster member and returns the serial of
	// the certificate it presented; the conn stays open until cleanup.
	serialSeen := func() *big.Int {
		t.Helper()
		var serial *big.Int
		kp, err := tls.X509KeyPair(clientCert.CertPEM, clientCert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		c, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{kp},
			RootCAs:      pool,
			VerifyConnection: func(cs tls.ConnectionState) error {
				serial = cs.PeerCertificates[0].SerialNumber
				return nil
			},
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{KindRPC}); err != nil {
			t.Fatal(err)
		}
		var ack [1]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != KindRPC {
			t.Fatalf("ack %q, %v", ack[0], err)
		}
		return serial
	}

	if got := serialSeen(); got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("serial %s, want the first certificate's %s", got, first.Cert.SerialNumber)
	}
	second := issue(t, ca, tlsgen.LeafOptions{Name: "srv"})
	writeFiles(t, dir, second, ca)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := serialSeen(); got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after reload: serial %s, want the second certificate's %s", got, second.Cert.SerialNumber)
	}
	if p.Certificate().SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatal("Certificate() does not report the new certificate")
	}

	// A broken key file: Reload fails, the second pair stays in use.
	if err := os.WriteFile(files.KeyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); !errors.Is(err, ErrTLSConfig) {
		t.Fatalf("Reload of a broken key = %v, want ErrTLSConfig", err)
	}
	if got := serialSeen(); got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: serial %s, want the second certificate's %s", got, second.Cert.SerialNumber)
	}
}

func TestNewTLSProviderReportsEveryProblem(t *testing.T) {
	ca := newTestCA(t, "ca")
	other := newTestCA(t, "other")
	dir := t.TempDir()
	foreign := writeFiles(t, dir, issue(t, other, tlsgen.LeafOptions{}), ca)

	for _, tc := range []struct {
		name  string
		files TLSFiles
		want  []string
	}{
		{"nothing", TLSFiles{}, []string{"key file are both required", "CA file is required"}},
		{"missing files", TLSFiles{CertFile: filepath.Join(dir, "no.pem"), KeyFile: filepath.Join(dir, "no-key.pem"), CAFile: filepath.Join(dir, "no-ca.pem")},
			[]string{"no.pem", "no-ca.pem"}},
		{"foreign CA", foreign, []string{"not valid for TLS server authentication", "not valid for TLS client authentication"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLSProvider(tc.files)
			if !errors.Is(err, ErrTLSConfig) {
				t.Fatalf("err = %v, want ErrTLSConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func TestLoadGossipKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content string
		wantLen       int // 0: an error
	}{
		{"k16", "AAECAwQFBgcICQoLDA0ODw==\n", 16},
		{"k24", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", 24},
		{"k32", "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=  ", 32},
		{"k32raw", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 32},
		{"short", "AAECAwQFBgc=", 0},
		{"notbase64", "this is not base64!", 0},
		{"empty", "", 0},
	} {
		key, err := LoadGossipKey(write(tc.name, tc.content))
		switch {
		case tc.wantLen == 0 && !errors.Is(err, ErrGossipKey):
			t.Errorf("%s: err = %v, want ErrGossipKey", tc.name, err)
		case tc.wantLen == 0 && err != nil && strings.Contains(err.Error(), strings.TrimSpace(tc.content)) && tc.content != "":
			t.Errorf("%s: the error shows the key: %v", tc.name, err)
		case tc.wantLen > 0 && (err != nil || len(key) != tc.wantLen):
			t.Errorf("%s: %d bytes, %v; want %d bytes", tc.name, len(key), err, tc.wantLen)
		}
	}
	if _, err := LoadGossipKey(filepath.Join(dir, "missing")); !errors.Is(err, ErrGossipKey) {
		t.Errorf("missing file: %v", err)
	}
}

// TestTLSOverFaultNetwork: TLS runs on top of the fault-injected conn, so
// a cut breaks an established TLS stream and refuses new dials, and Heal
// restores both.
func TestTLSOverFaultNetwork(t *testing.T) {
	ca := newTestCA(t, "ca")
	fn := NewFaultNetwork()
	a := newMux(t, Config{TLS: memProvider(t, issue(t, ca, tlsgen.LeafOptions{Name: "a"}), ca), Faults: fn})
	b := newMux(t, Config{TLS: memProvider(t, issue(t, ca, tlsgen.LeafOptions{Name: "b"}), ca), Faults: fn})
	fn.Register("a", a.Addr().String())
	fn.Register("b", b.Addr().String())
	b.ServeRPC(echoHandler())
	cl := newClient(t, a, ClientOptions{MaxConnsPerAddr: 1})
	ctx := ctxTimeout(t, 10*time.Second)
	if err := cl.Call(ctx, b.Addr().String(), "echo", "x", nil); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	fn.Cut("a", "b")
	if err := cl.Call(ctx, b.Addr().String(), "echo", "x", nil); err == nil {
		t.Fatal("a call crossed a cut link")
	}
	fn.Heal()
	waitFor(t, 5*time.Second, "a call after Heal", func() bool {
		return cl.Call(ctx, b.Addr().String(), "echo", "x", nil) == nil
	})
}
