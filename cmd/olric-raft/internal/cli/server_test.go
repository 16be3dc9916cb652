package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/node"
)

// fakeNode is a Node over the fake cluster of httpapitest.
type fakeNode struct {
	*httpapitest.Cluster
	closes atomic.Int32
}

func (n *fakeNode) Close() error {
	n.closes.Add(1)
	return nil
}

// server is a server command running in the background.
type server struct {
	t       *testing.T
	node    *fakeNode
	signals chan os.Signal
	stderr  *syncBuffer
	done    chan int // the exit code
	mu      sync.Mutex
	cfg     *node.Config // as given to NewNode
}

// startServer runs "olric-raft server args..." with a fake node.
func startServer(t *testing.T, fake *httpapitest.Cluster, env map[string]string, args ...string) *server {
	t.Helper()
	s := &server{
		t:       t,
		node:    &fakeNode{Cluster: fake},
		signals: make(chan os.Signal, 2),
		stderr:  &syncBuffer{},
		done:    make(chan int, 1),
	}
	d := Deps{
		NewNode: func(cfg node.Config) (Node, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.cfg = &cfg
			return s.node, nil
		},
		Version:   "test-version",
		Stdout:    &syncBuffer{},
		Stderr:    s.stderr,
		LookupEnv: envOf(env),
		Signals:   s.signals,
	}
	if !slices.Contains(args, "--resp-addr") {
		args = append(args, "--resp-addr", "127.0.0.1:0") // never the fixed default port
	}
	go func() { s.done <- Main(context.Background(), append([]string{"server"}, args...), d) }()
	return s
}

// waitLog waits for a JSON log line with msg and returns it.
func (s *server) waitLog(msg string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(s.stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
				return m
			}
		}
		select {
		case code := <-s.done:
			s.t.Fatalf("server exited with %d before logging %q:\n%s", code, msg, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.t.Fatalf("no log %q within 10s:\n%s", msg, s.stderr.String())
	return nil
}

// wait waits for the exit code.
func (s *server) wait() int {
	s.t.Helper()
	select {
	case code := <-s.done:
		return code
	case <-time.After(20 * time.Second):
		s.t.Fatalf("server did not exit:\n%s", s.stderr.String())
		return -1
	}
}

func (s *server) config() *node.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func noLeaks(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, opts)
	})
}

// TestServerSignal: --dev on a free port, ready, then SIGTERM: graceful
// leave, HTTP shut down, node closed, temp data dir removed, exit 0.
func TestServerSignal(t *testing.T) {
	noLeaks(t)
	s := startServer(t, httpapitest.NewCluster(1, 3, 1),
		map[string]string{"OLRIC_RAFT_NODE_ID": "from-env"},
		"--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	ready := s.waitLog("olric-raft ready")
	httpAddr, _ := ready["http_addr"].(string)
	dataDir, _ := ready["data_dir"].(string)
	for _, k := range []string{"node_id", "http_addr", "resp_addr", "cluster_addr", "gossip_addr"} {
		if v, _ := ready[k].(string); v == "" {
			t.Errorf("ready log without %s: %v", k, ready)
		}
	}
	cfg := s.config()
	if cfg.NodeID != "from-env" || !cfg.Bootstrap || cfg.Timing != node.DevTiming() || cfg.DataDir != dataDir || cfg.HTTPAddr != httpAddr || cfg.Logger == nil {
		t.Errorf("node config: %+v (ready log %v)", cfg, ready)
	}
	if st, err := os.Stat(dataDir); err != nil || !st.IsDir() {
		t.Errorf("temp data dir %q: %v", dataDir, err)
	}

	c, err := client.New(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Ready(context.Background()); !ok || err != nil {
		t.Errorf("ready over HTTP: %v %v", ok, err)
	}

	s.signals <- syscall.SIGTERM
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d:\n%s", code, s.stderr.String())
	}
	if got := s.node.Calls().Leaves; got != 1 {
		t.Errorf("leaves: %d", got)
	}
	if s.node.closes.Load() < 1 {
		t.Errorf("node not closed")
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp data dir not removed: %v", err)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Errorf("HTTP still serves after exit")
	}
}

// TestServerHTTPLeave: a leave over the API makes the server exit 0.
func TestServerHTTPLeave(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	s := startServer(t, httpapitest.NewCluster(1, 3, 1), nil,
		"--bootstrap", "--node-id", "n1", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--log-format", "json")
	ready := s.waitLog("olric-raft ready")
	c, err := client.New(ready["http_addr"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leave(context.Background()); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d:\n%s", code, s.stderr.String())
	}
	if got := s.node.Calls().Leaves; got != 1 {
		t.Errorf("leaves: %d", got)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("--data-dir removed: %v", err)
	}
}

// TestServerSecondSignal: a second signal during the leave exits at once
// with code 1.
func TestServerSecondSignal(t *testing.T) {
	noLeaks(t)
	leaving := make(chan struct{})
	fake := httpapitest.NewCluster(1, 3, 1)
	fake.Set(func(st *httpapitest.State) {
		st.Hook = func(ctx context.Context, method string) error {
			if method != "Leave" {
				return nil
			}
			close(leaving)
			<-ctx.Done() // a leave that hangs until cancelled
			return ctx.Err()
		}
	})
	s := startServer(t, fake, nil, "--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	s.waitLog("olric-raft ready")
	s.signals <- syscall.SIGTERM
	<-leaving
	s.signals <- os.Interrupt
	if code := s.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(s.stderr.String(), "error: forced shutdown") || s.node.closes.Load() < 1 {
		t.Errorf("forced exit:\n%s", s.stderr.String())
	}
}

// TestServerWaitsUntilReady: "olric-raft ready" is logged only once the
// node is ready.
func TestServerWaitsUntilReady(t *testing.T) {
	noLeaks(t)
	fake := httpapitest.NewCluster(1, 3, 1)
	fake.Set(func(st *httpapitest.State) { st.ReadyErr = node.ErrNoLeader })
	s := startServer(t, fake, nil, "--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	waiting := s.waitLog("waiting until ready")
	if !strings.Contains(waiting["reason"].(string), "no leader") {
		t.Errorf("waiting log: %v", waiting)
	}
	if strings.Contains(s.stderr.String(), "olric-raft ready") {
		t.Fatalf("ready logged before the node is ready")
	}
	fake.Set(func(st *httpapitest.State) { st.ReadyErr = nil })
	s.waitLog("olric-raft ready")
	s.signals <- syscall.SIGINT
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestServerPortInUse: a taken --http-addr fails fast, before the node
// starts, with exit code 1 and a clear message.
func TestServerPortInUse(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := run(t, Deps{NewNode: func(node.Config) (Node, error) {
		t.Error("node started although the HTTP port is taken")
		return nil, errors.New("no")
	}}, nil, "server", "--dev", "--http-addr", ln.Addr().String())
	r.want(t, 1, nil, []string{"error: listen: --http-addr " + ln.Addr().String(), "address already in use", "hint: another process may use that port"})
}

func TestServerNodeFails(t *testing.T) {
	noLeaks(t)
	r := run(t, Deps{NewNode: func(node.Config) (Node, error) {
		return nil, errors.New("node: opening raft store: disk on fire")
	}}, nil, "server", "--dev", "--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0")
	r.want(t, 1, nil, []string{"error: starting the node: node: opening raft store: disk on fire"})
}
