package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// TLSFiles names the PEM files for talking to members over https (started
// with --tls-clients).
type TLSFiles struct {
	// CAFile holds the CA certificate(s) the member's certificate must
	// chain to (the cluster's ca.pem); empty: the system's roots.
	CAFile string
	// CertFile and KeyFile, both or neither, are a client certificate to
	// present (members do not require one).
	CertFile string
	KeyFile  string
}

// LoadTLSConfig reads f into a tls.Config for WithTLS. The member's host
// name (or IP address) in the address must be one of its certificate's
// names. It reports every problem at once, wrapping ErrInvalidTLS.
func LoadTLSConfig(f TLSFiles) (*tls.Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTLS}, args...)...))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		data, err := os.ReadFile(f.CAFile)
		if err != nil {
			bad("CA file: %v", err)
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(data) {
				bad("CA file %s holds no PEM certificate", f.CAFile)
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		kp, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			bad("client certificate %s with key %s: %v", f.CertFile, f.KeyFile, err)
		} else {
			cfg.Certificates = []tls.Certificate{kp}
		}
	case f.CertFile != "" || f.KeyFile != "":
		bad("a client certificate needs both a certificate file and a key file")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// WithTLS makes the Client (or Routed) verify https members with cfg (see
// LoadTLSConfig); nil keeps the default (the system's roots). With
// WithHTTPClient, its transport is cloned when it is an *http.Transport
// (else http.DefaultTransport's settings are used) and the HTTP client
// passed there is not modified.
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) { c.tlsConfig = cfg }
}

// applyTLS puts tlsConfig into a clone of hc's transport.
func (c *Client) applyTLS() {
	if c.tlsConfig == nil || c.hc == nil {
		return
	}
	var tr *http.Transport
	if t, ok := c.hc.Transport.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.TLSClientConfig = c.tlsConfig.Clone()
	hc := *c.hc
	hc.Transport = tr
	c.hc = &hc
}
