package integration

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/internal/tlsgen"
)

// tlsCLI runs the CLI against https://addr, trusting the CA in dir.
func tlsCLI(t *testing.T, dir, addr string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(olricRaftBinary(t), append(args, "--address", "https://"+addr, "--tls-ca", filepath.Join(dir, "ca.pem"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// peerSerial dials addr with TLS, verifying the chain with the CA in dir,
// and returns the serial of the server's certificate.
func peerSerial(t *testing.T, dir, addr string) (*big.Int, error) {
	t.Helper()
	pemCA, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func certSerial(t *testing.T, path string) *big.Int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// TestTLSProcesses: 'tls gen' for three members; three processes with
// mutual TLS on the cluster port, an encrypted gossip and TLS for clients
// form a cluster; the CLI over https puts and gets a key; plain HTTP to the
// HTTP port fails; SIGHUP makes a member present a renewed certificate.
func TestTLSProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := olricRaftBinary(t)
	dir := filepath.Join(t.TempDir(), "tls")
	if out, err := exec.Command(bin, "tls", "gen", "--dir", dir, "--members", "t1,t2,t3", "-o", "json").CombinedOutput(); err != nil {
		t.Fatalf("tls gen: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	names := []string{"t1", "t2", "t3"}
	var gossip []string
	for range names {
		gossip = append(gossip, testcluster.FreeAddr(t))
	}
	var servers []*server
	for i, name := range names {
		var join []string
		for j, g := range gossip {
			if j != i {
				join = append(join, g)
			}
		}
		servers = append(servers, startServerWithGossip(t, name, gossip[i],
			"--join", strings.Join(join, ","), "--bootstrap-expect", "3",
			"--tls-cert", filepath.Join(dir, name+".pem"), "--tls-key", filepath.Join(dir, name+"-key.pem"),
			"--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-clients", "--gossip-key", keyFile,
			"--log-level", "info"))
	}

	// The cluster forms, seen through the CLI over https.
	err := testcluster.Poll(60*time.Second, func() error {
		for _, s := range servers {
			select {
			case <-s.done:
				return fmt.Errorf("%s exited: %v", s.name, s.err)
			default:
			}
		}
		out, err := tlsCLI(t, dir, servers[0].http, "members", "-o", "json")
		if err != nil {
			return fmt.Errorf("members: %v: %s", err, out)
		}
		var mv membersView
		if err := json.Unmarshal([]byte(out), &mv); err != nil {
			return err
		}
		alive := 0
		for _, m := range mv.Members {
			if m.State == "alive" && m.Primaries > 0 && m.RaftSuffrage == "voter" {
				alive++
			}
		}
		if alive != 3 {
			return fmt.Errorf("%d of 3 members alive voters with partitions: %s", alive, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Put on one member, get on another, over https.
	err = testcluster.Poll(20*time.Second, func() error {
		out, err := tlsCLI(t, dir, servers[1].http, "kv", "put", "secure", "k1", `"v1"`)
		if err != nil {
			return fmt.Errorf("kv put: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tlsCLI(t, dir, servers[2].http, "kv", "get", "secure", "k1", "-o", "json")
	if err != nil || !strings.Contains(out, `"v1"`) {
		t.Fatalf("kv get: %v: %s", err, out)
	}

	// Plain HTTP to the HTTP port does not get through.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + servers[0].http + "/v1/status"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got 200 from a --tls-clients member")
		}
	}
	// Nor does the CLI without the CA.
	cmd := exec.Command(bin, "status", "--address", "https://"+servers[0].http)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("status without --tls-ca succeeded: %s", out)
	}

	// SIGHUP: t1 presents a renewed certificate, signed by the same CA.
	renewT1(t, dir)
	want := certSerial(t, filepath.Join(dir, "t1.pem"))
	if err := servers[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = testcluster.Poll(10*time.Second, func() error {
		got, err := peerSerial(t, dir, servers[0].http)
		if err != nil {
			return err
		}
		if got.Cmp(want) != 0 {
			return fmt.Errorf("serial %s, want %s", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	// The cluster still works after the reload (new cluster connections
	// use the new certificate too).
	if out, err := tlsCLI(t, dir, servers[0].http, "kv", "get", "secure", "k1", "-o", "json"); err != nil || !strings.Contains(out, `"v1"`) {
		t.Fatalf("kv get after reload: %v: %s", err, out)
	}
}

// renewT1 replaces t1's certificate and key in dir with a new pair signed
// by the CA that 'tls gen' wrote there.
func renewT1(t *testing.T, dir string) {
	t.Helper()
	caCert := readPEMCert(t, filepath.Join(dir, "ca.pem"))
	data, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	caKey, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca := &tlsgen.CA{Cert: caCert, Key: caKey}
	c, err := ca.Issue(tlsgen.LeafOptions{Name: "t1", Hosts: tlsgen.DefaultHosts})
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then the certificate, each renamed into place: a reload
	// in between would fail (mismatch) and keep the old pair.
	for _, f := range []struct {
		name string
		data []byte
	}{{"t1-key.pem", c.KeyPEM}, {"t1.pem", c.CertPEM}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
