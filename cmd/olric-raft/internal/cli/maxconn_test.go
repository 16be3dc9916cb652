package cli

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
)

// TestServerMaxConnections: with --max-connections 1, a second HTTP client
// gets 503 overloaded and a second RESP client redis-server's maxclients
// error, while the first keeps being served; once it leaves, the next one
// is served.
func TestServerMaxConnections(t *testing.T) {
	noLeaks(t)
	s := startServer(t, httpapitest.NewCluster(1, 3, 1), map[string]string{"OLRIC_RAFT_MAX_CONNECTIONS": "1"},
		"--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	ready := s.waitLog("olric-raft ready")
	httpAddr, respAddr := ready["http_addr"].(string), ready["resp_addr"].(string)
	ctx := context.Background()

	// HTTP: one kept-alive client holds the only slot.
	newClient := func() (*client.Client, *http.Transport) {
		tr := &http.Transport{MaxConnsPerHost: 1}
		c, err := client.New(httpAddr, client.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		return c, tr
	}
	first, firstTr := newClient()
	if _, err := first.Status(ctx); err != nil {
		t.Fatalf("first client: %v", err)
	}
	second, secondTr := newClient()
	if _, err := second.Status(ctx); !client.IsCode(err, client.CodeOverloaded) {
		t.Errorf("second client: %v, want 503 overloaded", err)
	}
	if _, err := first.Status(ctx); err != nil {
		t.Errorf("first client after the refusal: %v", err)
	}
	firstTr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := second.Status(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second client still refused after the first left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	secondTr.CloseIdleConnections()

	// RESP.
	a, err := net.Dial("tcp", respAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ra := bufio.NewReader(a)
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := ra.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("first RESP client: %q %v", line, err)
	}
	b, err := net.Dial("tcp", respAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(b).ReadString('\n'); err != nil || !strings.HasPrefix(line, "-ERR max number of clients reached") {
		t.Errorf("second RESP client: %q %v", line, err)
	}

	s.signals <- syscall.SIGTERM
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestMaxConnectionsConfig(t *testing.T) {
	sc, err := build(t, nil, "--node-id", "a", "--data-dir", t.TempDir())
	if err != nil || sc.MaxConnections != DefaultMaxConnections {
		t.Fatalf("default: %v %d", err, sc.MaxConnections)
	}
	sc, err = build(t, nil, "--node-id", "a", "--data-dir", t.TempDir(), "--max-connections", "0")
	if err != nil || sc.MaxConnections != 0 {
		t.Fatalf("0 (no limit): %v %d", err, sc.MaxConnections)
	}
	if _, err := build(t, nil, "--node-id", "a", "--data-dir", t.TempDir(), "--max-connections", "-1"); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("negative: %v", err)
	}
}
