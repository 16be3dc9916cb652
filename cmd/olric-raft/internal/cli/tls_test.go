package cli

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/internal/tlsgen"
	"github.com/olric-raft/olric-raft/node"
)

// genTLS runs 'tls gen' for members into a new directory and returns it.
func genTLS(t *testing.T, members ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	r := run(t, Deps{}, nil, "tls", "gen", "--dir", dir, "--members", strings.Join(members, ","))
	r.want(t, 0, []string{"wrote " + filepath.Join(dir, "ca.pem")}, nil)
	return dir
}

// reissue writes a new certificate and key for name into dir, signed by
// the CA that 'tls gen' wrote there, and returns the certificate.
func reissue(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	ca := &tlsgen.CA{Cert: readCert(t, filepath.Join(dir, "ca.pem"))}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		t.Fatal("ca-key.pem holds no PEM block")
	}
	if ca.Key, err = x509.ParseECPrivateKey(b.Bytes); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(tlsgen.LeafOptions{Name: name, Hosts: tlsgen.DefaultHosts})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".pem"), c.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name+"-key.pem"), c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c.Cert
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no certificate", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSGen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := run(t, Deps{}, nil, "tls", "gen", "--dir", dir, "--members", "n1,n2,n3",
		"--hosts", "10.1.2.3,db.example,127.0.0.1", "--days", "30", "-o", "json")
	r.want(t, 0, nil, nil)
	var res tlsGenResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("json output: %v\n%s", err, r.stdout)
	}
	var want []string
	for _, f := range []string{"ca.pem", "ca-key.pem", "n1.pem", "n1-key.pem", "n2.pem", "n2-key.pem", "n3.pem", "n3-key.pem"} {
		want = append(want, filepath.Join(dir, f))
	}
	if !slices.Equal(res.Files, want) {
		t.Fatalf("files %v, want %v", res.Files, want)
	}
	for _, f := range res.Files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-key.pem") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	if !ca.IsCA {
		t.Fatal("ca.pem is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, n := range []string{"n1", "n2", "n3"} {
		kp, err := tls.LoadX509KeyPair(filepath.Join(dir, n+".pem"), filepath.Join(dir, n+"-key.pem"))
		if err != nil {
			t.Fatalf("%s: key pair: %v", n, err)
		}
		leaf := kp.Leaf
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: server chain: %v", n, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: client chain: %v", n, err)
		}
		for _, host := range []string{n, "db.example", "10.1.2.3", "127.0.0.1"} {
			if err := leaf.VerifyHostname(host); err != nil {
				t.Errorf("%s: SAN %s: %v", n, host, err)
			}
		}
		if err := leaf.VerifyHostname("localhost"); err == nil {
			t.Errorf("%s: --hosts should replace the default SANs", n)
		}
		if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 30*24*time.Hour || d > 31*24*time.Hour {
			t.Errorf("%s: validity %v, want 30 days", n, d)
		}
	}

	// Existing files are not overwritten without --force.
	before, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	r = run(t, Deps{}, nil, "tls", "gen", "--dir", dir, "--members", "n1")
	r.want(t, ExitError, nil, []string{"exists", "ca.pem", "n1-key.pem", "--force"})
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(after) != string(before) {
		t.Fatal("ca.pem was overwritten without --force")
	}
	r = run(t, Deps{}, nil, "tls", "gen", "--dir", dir, "--members", "n1", "--force")
	r.want(t, 0, []string{"wrote"}, nil)
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(after) == string(before) {
		t.Fatal("ca.pem was not replaced with --force")
	}
	// The defaults: loopback and localhost.
	leaf := readCert(t, filepath.Join(dir, "n1.pem"))
	for _, host := range []string{"n1", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("default SAN %s: %v", host, err)
		}
	}

	// Usage errors, all at once.
	r = run(t, Deps{}, nil, "tls", "gen", "--members", "a,a,bad/name,ca", "--days", "0")
	r.want(t, ExitUsage, nil, []string{"--dir is required", `"a" is given twice`, "bad/name", `"ca" cannot be`, "--days 0"})
}

func TestServerConfigTLS(t *testing.T) {
	dir := genTLS(t, "a")
	cert, key, ca := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem"), filepath.Join(dir, "ca.pem")
	gossipKey := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(gossipKey, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// From flags.
	sc := mustBuild(t, nil, "--data-dir", "/d", "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--tls-clients", "--gossip-key", gossipKey)
	if sc.Node.TLS.CertFile != cert || sc.Node.TLS.KeyFile != key || sc.Node.TLS.CAFile != ca || !sc.TLSClients || sc.Node.GossipKeyFile != gossipKey {
		t.Fatalf("from flags: %+v, clients %v, gossip %q", sc.Node.TLS, sc.TLSClients, sc.Node.GossipKeyFile)
	}
	// From the environment.
	sc = mustBuild(t, map[string]string{"OLRIC_RAFT_TLS_CERT": cert, "OLRIC_RAFT_TLS_KEY": key, "OLRIC_RAFT_TLS_CA": ca,
		"OLRIC_RAFT_TLS_CLIENTS": "true", "OLRIC_RAFT_GOSSIP_KEY": gossipKey}, "--data-dir", "/d")
	if sc.Node.TLS.CertFile != cert || !sc.TLSClients || sc.Node.GossipKeyFile != gossipKey {
		t.Fatalf("from env: %+v", sc.Node.TLS)
	}
	// From the file; a flag wins over env over the file.
	file := writeFile(t, "data_dir: /d\ntls_cert: "+cert+"\ntls_key: "+key+"\ntls_ca: /nope\ntls_clients: true\ngossip_key: "+gossipKey+"\n")
	sc = mustBuild(t, map[string]string{"OLRIC_RAFT_TLS_CA": "/from-env"}, "--config", file, "--tls-ca", ca)
	if sc.Node.TLS.CertFile != cert || sc.Node.TLS.CAFile != ca || !sc.TLSClients || sc.Node.GossipKeyFile != gossipKey {
		t.Fatalf("from file: %+v, clients %v", sc.Node.TLS, sc.TLSClients)
	}
	// Off by default.
	sc = mustBuild(t, nil, "--data-dir", "/d")
	if sc.Node.TLS.Enabled() || sc.TLSClients || sc.Node.GossipKeyFile != "" {
		t.Fatalf("defaults: %+v", sc.Node.TLS)
	}

	badKey := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(badKey, []byte("AAECAwQFBgc=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notB64 := filepath.Join(t.TempDir(), "notb64.key")
	if err := os.WriteFile(notB64, []byte("not base64 at all!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key and CA, bad gossip key", []string{"--tls-cert", cert, "--gossip-key", badKey},
			[]string{"tls_key: required", "tls_ca: required", "gossip_key", "8 bytes"}},
		{"unreadable files", []string{"--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem", "--tls-ca", "/no/ca.pem", "--gossip-key", "/no/gossip.key"},
			[]string{"/no/cert.pem", "/no/ca.pem", "/no/gossip.key"}},
		{"tls-clients without a cert, key not base64", []string{"--tls-clients", "--gossip-key", notB64},
			[]string{"tls_clients: needs tls_cert", "valid base64"}},
		{"key of another pair", []string{"--tls-cert", cert, "--tls-key", filepath.Join(dir, "ca-key.pem"), "--tls-ca", ca},
			[]string{"private key does not match public key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Deps{NewNode: func(node.Config) (Node, error) { return nil, errors.New("must not start") }}
			r := run(t, d, nil, append([]string{"server", "--data-dir", "/d"}, tc.args...)...)
			r.want(t, ExitUsage, nil, tc.want)
			if strings.Contains(r.stderr, "PRIVATE KEY") || strings.Contains(r.stderr, "AAECAwQFBgc") {
				t.Errorf("key material in the error:\n%s", r.stderr)
			}
		})
	}
}

// TestServerTLSClientsAndReload: with --tls-clients the HTTP and RESP
// listeners speak TLS with the member's certificate; the CLI reaches it
// with --address https://... --tls-ca; plain HTTP fails; SIGHUP reloads the
// certificate (new connections see the new serial), and a failed reload
// keeps the old one.
func TestServerTLSClientsAndReload(t *testing.T) {
	noLeaks(t)
	dir := genTLS(t, "a")
	s := startServer(t, httpapitest.NewCluster(1, 3, 1), nil,
		"--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json",
		"--tls-cert", filepath.Join(dir, "a.pem"), "--tls-key", filepath.Join(dir, "a-key.pem"),
		"--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-clients")
	ready := s.waitLog("olric-raft ready")
	httpAddr, _ := ready["http_addr"].(string)
	respAddr, _ := ready["resp_addr"].(string)
	if cfg := s.config(); cfg.TLS.Provider == nil {
		t.Fatal("the node got no TLS provider")
	}

	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, "ca.pem")))
	// serial dials addr with TLS, checks the chain and host name, and
	// returns the serial of the certificate the server presented.
	serial := func(addr string) *big.Int {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS dial %s: %v", addr, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := readCert(t, filepath.Join(dir, "a.pem")).SerialNumber
	if got := serial(httpAddr); got.Cmp(first) != 0 {
		t.Fatalf("HTTP serial %s, want %s", got, first)
	}

	// RESP over TLS.
	rc, err := tls.Dial("tcp", respAddr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("RESP TLS dial: %v", err)
	}
	_ = rc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(rc).ReadString('\n')
	if err != nil || line != "+PONG\r\n" {
		t.Fatalf("RESP PING over TLS: %q, %v", line, err)
	}
	_ = rc.Close()

	// The CLI over https, CA from the environment.
	r := run(t, Deps{}, map[string]string{"OLRIC_RAFT_TLS_CA": filepath.Join(dir, "ca.pem")}, "status", "--address", "https://"+httpAddr, "-o", "json")
	r.want(t, 0, []string{`"node_id"`}, nil)
	// Without the CA the server is not trusted.
	r = run(t, Deps{}, nil, "status", "--address", "https://"+httpAddr)
	r.want(t, ExitError, nil, []string{"unreachable", "certificate"})
	// Plain HTTP to the TLS port fails.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + httpAddr + "/healthz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got 200 from a --tls-clients member")
		}
	}
	// A bad --tls-ca is a usage error.
	r = run(t, Deps{}, nil, "status", "--address", "https://"+httpAddr, "--tls-ca", "/no/ca.pem")
	r.want(t, ExitUsage, nil, []string{"/no/ca.pem"})

	// Reload on SIGHUP.
	second := reissue(t, dir, "a")
	s.signals <- syscall.SIGHUP
	s.waitLog("reloaded")
	if got := serial(httpAddr); got.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP: HTTP serial %s, want %s", got, second.SerialNumber)
	}
	if got := serial(respAddr); got.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP: RESP serial %s, want %s", got, second.SerialNumber)
	}
	// A broken key: the reload fails, is logged, the second pair stays.
	if err := os.WriteFile(filepath.Join(dir, "a-key.pem"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signals <- syscall.SIGHUP
	s.waitLog("reload failed; keeping the previous version")
	if got := serial(httpAddr); got.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: serial %s, want %s", got, second.SerialNumber)
	}
	if strings.Contains(s.stderr.String(), "PRIVATE KEY") {
		t.Fatal("key material logged")
	}

	s.signals <- syscall.SIGTERM
	if code := s.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, s.stderr.String())
	}
}

func TestReloaders(t *testing.T) {
	var buf syncBuffer
	r := newReloaders(newLogger(&buf, -8, "json"))
	if n := r.run(); n != 0 {
		t.Fatalf("empty run: %d failed", n)
	}
	var calls []string
	r.add("one", func() error { calls = append(calls, "one"); return nil })
	r.add("two", func() error { calls = append(calls, "two"); return os.ErrNotExist })
	r.add("three", func() error { calls = append(calls, "three"); return nil })
	if n := r.run(); n != 1 {
		t.Fatalf("run: %d failed, want 1", n)
	}
	if !slices.Equal(calls, []string{"one", "two", "three"}) {
		t.Fatalf("calls %v", calls)
	}
	for _, want := range []string{`"msg":"reloaded","what":"one"`, `"msg":"reload failed; keeping the previous version","what":"two"`, `"what":"three"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}
