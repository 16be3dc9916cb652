package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLSFiles names the PEM files of a member's TLS material: its certificate
// (with any intermediates after it), its private key, and the CA
// certificate(s) that every member's certificate must chain to.
type TLSFiles struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// tlsMaterial is one loaded, checked generation of the files. Immutable.
type tlsMaterial struct {
	cert *tls.Certificate // Leaf is set
	pool *x509.CertPool
}

// TLSProvider holds a member's TLS material behind an atomic pointer and
// hands out tls.Configs whose callbacks read the current material, so that
// Reload changes what new connections present and accept without
// restarting listeners. Connections already established keep the
// material they were made with. It is safe for concurrent use.
//
// On the cluster port (Config.TLS) both sides present their certificate
// and verify the peer's chain against the CA pool; host names are not
// checked, since members dial the addresses gossip tells them: holding a
// certificate of the cluster's CA is what makes a member. Server
// certificates need the serverAuth extended key usage, client certificates
// clientAuth ('olric-raft tls gen' makes certificates with both).
type TLSProvider struct {
	files TLSFiles
	cur   atomic.Pointer[tlsMaterial]

	reloadMu sync.Mutex // serialises Reload

	clusterServer *tls.Config
	clusterClient *tls.Config
	clients       *tls.Config
}

// NewTLSProvider loads and checks files: the key pair must match, the CA
// file must hold at least one certificate, and the certificate must chain
// to it and be valid now for server and client authentication. It reports
// every problem at once, wrapping ErrTLSConfig.
func NewTLSProvider(files TLSFiles) (*TLSProvider, error) {
	m, err := loadTLSMaterial(files)
	if err != nil {
		return nil, err
	}
	return newTLSProvider(files, m), nil
}

func newTLSProvider(files TLSFiles, m *tlsMaterial) *TLSProvider {
	p := &TLSProvider{files: files}
	p.cur.Store(m)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.cur.Load().cert, nil }
	p.clusterServer = &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: getCert,
		// The chain is verified in VerifyConnection against the current
		// pool (a static ClientCAs would not follow Reload).
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return p.verifyPeer(cs, x509.ExtKeyUsageClientAuth)
		},
	}
	p.clusterClient = &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.cur.Load().cert, nil
		},
		// Not insecure: VerifyConnection verifies the server's chain
		// against the current CA pool. Only the host name check is
		// skipped (see the type's comment).
		InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return p.verifyPeer(cs, x509.ExtKeyUsageServerAuth)
		},
	}
	p.clients = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		// Clients need no certificate; one they present must chain to the
		// current CA.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*p.cur.Load().cert},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    p.cur.Load().pool,
			}, nil
		},
	}
	return p
}

// Reload reads the files again. On success new connections use the new
// material; on failure (the error wraps ErrTLSConfig) the old material
// stays in use.
func (p *TLSProvider) Reload() error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	m, err := loadTLSMaterial(p.files)
	if err != nil {
		return err
	}
	p.cur.Store(m)
	return nil
}

// Files returns the files the provider loads.
func (p *TLSProvider) Files() TLSFiles { return p.files }

// Certificate returns the leaf certificate currently presented.
func (p *TLSProvider) Certificate() *x509.Certificate { return p.cur.Load().cert.Leaf }

// ClientsConfig returns the tls.Config for the HTTP and RESP listeners
// (--tls-clients): the member's current certificate; clients need none,
// and one they present must chain to the CA.
func (p *TLSProvider) ClientsConfig() *tls.Config { return p.clients }

// ClientsListener wraps ln so that every accepted connection is a TLS
// server connection with ClientsConfig whose handshake runs on first use
// and must finish within timeout (default DefaultHandshakeTimeout), so a
// client that never completes it cannot hold a connection forever. A failed
// handshake is logged at debug level and fails the first read or write.
func (p *TLSProvider) ClientsListener(ln net.Listener, timeout time.Duration, logger *slog.Logger) net.Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &clientsListener{Listener: ln, cfg: p.clients, timeout: timeout, logger: logger}
}

type clientsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	logger  *slog.Logger
}

func (l *clientsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &clientsConn{Conn: tls.Server(c, l.cfg), raw: c, l: l}, nil
}

// clientsConn runs the TLS handshake, bounded by its listener's timeout,
// before the first read or write.
type clientsConn struct {
	*tls.Conn
	raw  net.Conn
	l    *clientsListener
	once sync.Once
	err  error
}

func (c *clientsConn) handshake() error {
	c.once.Do(func() {
		_ = c.raw.SetDeadline(time.Now().Add(c.l.timeout))
		if c.err = c.Conn.Handshake(); c.err != nil {
			c.l.logger.Debug("client TLS handshake failed", "remote", c.raw.RemoteAddr().String(), "error", c.err)
			_ = c.raw.Close()
			return
		}
		// The handshake's deadline must not bound the connection's use;
		// the server sets its own deadlines after this point.
		_ = c.raw.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *clientsConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *clientsConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// verifyPeer checks the peer's chain against the current CA pool for usage.
func (p *TLSProvider) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("transport: the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         p.cur.Load().pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("transport: peer certificate %q (serial %s): %w", leaf.Subject.CommonName, leaf.SerialNumber, err)
	}
	return nil
}

// loadTLSMaterial reads and checks files, reporting every problem.
func loadTLSMaterial(files TLSFiles) (*tlsMaterial, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrTLSConfig}, args...)...))
	}
	var cert *tls.Certificate
	switch {
	case files.CertFile == "" || files.KeyFile == "":
		bad("a certificate file and a key file are both required")
	default:
		c, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			bad("certificate %s with key %s: %s", files.CertFile, files.KeyFile, describeKeyPairErr(err))
			break
		}
		if c.Leaf == nil {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				bad("certificate %s: %v", files.CertFile, err)
				break
			}
		}
		cert = &c
	}
	var pool *x509.CertPool
	if files.CAFile == "" {
		bad("a CA file is required")
	} else if data, err := os.ReadFile(files.CAFile); err != nil {
		bad("CA file: %v", err)
	} else {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			bad("CA file %s holds no PEM certificate", files.CAFile)
			pool = nil
		}
	}
	if cert != nil && pool != nil {
		inter := x509.NewCertPool()
		for _, der := range cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				inter.AddCert(c)
			}
		}
		for _, u := range []struct {
			usage x509.ExtKeyUsage
			name  string
		}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}})
			if err != nil {
				bad("certificate %s is not valid for TLS %s authentication with CA %s: %v", files.CertFile, u.name, files.CAFile, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &tlsMaterial{cert: cert, pool: pool}, nil
}

// describeKeyPairErr keeps crypto/tls's error but never echoes key bytes
// (it does not today; this guards the log line against a future change).
func describeKeyPairErr(err error) string {
	s := err.Error()
	if strings.Contains(s, "PRIVATE KEY-----") {
		return "the key pair cannot be loaded"
	}
	return s
}

// LoadGossipKey reads a memberlist encryption key: a file holding the
// base64 encoding (standard, padded or not) of 16, 24 or 32 bytes, like
// Consul's encrypt setting; surrounding white space is ignored. Errors
// wrap ErrGossipKey and never contain the key.
func LoadGossipKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGossipKey, err)
	}
	text := strings.TrimSpace(string(data))
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		if key, err = base64.RawStdEncoding.DecodeString(text); err != nil {
			return nil, fmt.Errorf("%w: %s does not hold valid base64", ErrGossipKey, path)
		}
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%w: %s holds %d bytes; want 16, 24 or 32 (AES-128, -192 or -256)", ErrGossipKey, path, len(key))
}

// clientHandshake runs the TLS client side of a cluster-port connection
// and the kind exchange: the kind byte, then the server's acknowledgment
// (the same byte), which tells the dialer that the server accepted its
// certificate. ctx and HandshakeTimeout bound it.
func (m *Mux) clientHandshake(ctx context.Context, c net.Conn, addr string, kind byte) (net.Conn, error) {
	dl := time.Now().Add(m.cfg.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.SetDeadline(dl)
	tc := tls.Client(c, m.cfg.TLS.clusterClient)
	fail := func(what string, err error) (net.Conn, error) {
		_ = c.Close()
		m.logger.Warn("TLS handshake with peer failed; connection refused", "remote", addr, "step", what, "error", err)
		return nil, fmt.Errorf("%w: %w: %s with %s: %w", ErrUnreachable, ErrHandshake, what, addr, err)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail("handshake", err)
	}
	if _, err := tc.Write([]byte{kind}); err != nil {
		return fail("send kind", err)
	}
	// In TLS 1.3 the server checks our certificate after our side of the
	// handshake finished: its refusal arrives here, as an alert.
	var ack [1]byte
	if _, err := tc.Read(ack[:]); err != nil {
		return fail("peer acknowledgment", err)
	}
	if ack[0] != kind {
		return fail("peer acknowledgment", fmt.Errorf("%w: got %q, want %q", ErrMalformed, ack[0], kind))
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// serverHandshake runs the TLS server side of an accepted cluster-port
// connection; the deadline the caller (Mux.handshake) set bounds it. The
// caller then reads the kind byte and acknowledges it.
func (m *Mux) serverHandshake(c net.Conn) (*tls.Conn, error) {
	tc := tls.Server(c, m.cfg.TLS.clusterServer)
	if err := tc.HandshakeContext(m.baseCtx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return tc, nil
}
