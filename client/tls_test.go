package client_test

import (
	"context"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
)

// TestWithTLS: a client trusting the server's CA file talks https; without
// it the certificate is refused; Routed clients take the option too.
func TestWithTLS(t *testing.T) {
	fake := httpapitest.NewCluster(1, 3, 1)
	srv := httptest.NewTLSServer(httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg, err := client.LoadTLSConfig(client.TLSFiles{CAFile: caFile})
	if err != nil {
		t.Fatalf("LoadTLSConfig: %v", err)
	}
	c, err := client.New(srv.URL, client.WithTLS(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("Status over https: %v", err)
	}
	plain, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Status(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Status without the CA = %v, want a certificate error", err)
	}
	r, err := client.NewRouted([]string{srv.URL}, client.WithTLS(cfg))
	if err != nil {
		t.Fatalf("NewRouted over https: %v", err)
	}
	r.Close()

	_, err = client.LoadTLSConfig(client.TLSFiles{CAFile: filepath.Join(t.TempDir(), "none.pem"), CertFile: "x.pem"})
	if !errors.Is(err, client.ErrInvalidTLS) || !strings.Contains(err.Error(), "none.pem") || !strings.Contains(err.Error(), "both") {
		t.Fatalf("LoadTLSConfig of bad files = %v", err)
	}
}
