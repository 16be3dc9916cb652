package tlsgen

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestIssueChainsAndNames(t *testing.T) {
	ca, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(LeafOptions{Name: "m1", Hosts: []string{"10.0.0.1", "db.example", "m1", ""}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if got := len(c.Cert.DNSNames); got != 2 { // m1 once, db.example
		t.Errorf("DNS names %v", c.Cert.DNSNames)
	}
	if len(c.Cert.IPAddresses) != 1 || c.Cert.IPAddresses[0].String() != "10.0.0.1" {
		t.Errorf("IPs %v", c.Cert.IPAddresses)
	}
	again, err := ca.Issue(LeafOptions{Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Cert.SerialNumber.Cmp(c.Cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestInvalidOptions(t *testing.T) {
	if _, err := NewCA("", time.Hour); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("NewCA without a name: %v", err)
	}
	ca, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(LeafOptions{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Issue without a name: %v", err)
	}
	now := time.Now()
	if _, err := ca.Issue(LeafOptions{Name: "x", NotBefore: now, NotAfter: now.Add(-time.Second)}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Issue with NotAfter before NotBefore: %v", err)
	}
}
