package tlsgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ErrInvalidOptions is returned for options that cannot make a certificate.
var ErrInvalidOptions = errors.New("tlsgen: invalid options")

// DefaultHosts are the SANs every member certificate gets unless told
// otherwise: the loopback addresses and localhost.
var DefaultHosts = []string{"127.0.0.1", "::1", "localhost"}

// CA is a certificate authority: its certificate and key.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Cert is an issued certificate with its key, PEM-encoded too.
type Cert struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA named name, valid from a minute ago for
// validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" || validity <= 0 {
		return nil, fmt.Errorf("%w: a CA needs a name and a positive validity", ErrInvalidOptions)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"olric-raft"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: CA certificate: %w", err)
	}
	return finish(der, key)
}

// LeafOptions describe a member certificate.
type LeafOptions struct {
	// Name is the member's name: the subject's common name and a DNS SAN.
	Name string
	// Hosts are further SANs: IP addresses or DNS names.
	Hosts []string
	// NotBefore and NotAfter bound the validity; zero NotBefore is a minute
	// ago, zero NotAfter is NotBefore plus a year.
	NotBefore, NotAfter time.Time
}

// Issue makes a certificate for a member, signed by ca, good for server and
// client authentication.
func (ca *CA) Issue(o LeafOptions) (*Cert, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("%w: a certificate needs a name", ErrInvalidOptions)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = o.NotBefore.Add(365 * 24 * time.Hour)
	}
	if !o.NotAfter.After(o.NotBefore) {
		return nil, fmt.Errorf("%w: NotAfter %v is not after NotBefore %v", ErrInvalidOptions, o.NotAfter, o.NotBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: key of %s: %w", o.Name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.Name, Organization: []string{"olric-raft"}},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	seen := map[string]bool{}
	for _, h := range append([]string{o.Name}, o.Hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: certificate of %s: %w", o.Name, err)
	}
	c, err := finish(der, key)
	if err != nil {
		return nil, err
	}
	return &Cert{Cert: c.Cert, Key: c.Key, CertPEM: c.CertPEM, KeyPEM: c.KeyPEM}, nil
}

func finish(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: parse the new certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsgen: encode key: %w", err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// newSerial returns a random 128-bit serial number.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("tlsgen: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // never 0
}
