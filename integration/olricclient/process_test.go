package olricclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/olric-data/olric"
	"github.com/olric-data/olric/config"
)

// The olric-raft binary, built once per test run from the main module.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// olricRaftBinary builds cmd/olric-raft with the main module (the
// repository root, two levels up) into a temporary directory.
func olricRaftBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "olric-raft-olricclient-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "olric-raft")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/olric-raft")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/olric-raft in %s: %v\n%s", cmd.Dir, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback host:port free for TCP and UDP (memberlist
// uses both) and not handed out before in this run.
var (
	addrMu    sync.Mutex
	addrsUsed = map[string]bool{}
)

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		addrMu.Lock()
		dup := addrsUsed[addr]
		addrsUsed[addr] = true
		addrMu.Unlock()
		if !dup {
			return addr
		}
	}
	t.Fatal("no free address")
	return ""
}

// server is one olric-raft process.
type server struct {
	name               string
	http, resp, gossip string
	cluster            string
	cmd                *exec.Cmd
	log                *syncBuffer
	done               chan struct{}
	waitErr            error
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// newServer prepares (does not start) a process with fresh addresses.
func newServer(t *testing.T, name string) *server {
	return &server{name: name, http: freeAddr(t), resp: freeAddr(t), cluster: freeAddr(t), gossip: freeAddr(t),
		log: &syncBuffer{}, done: make(chan struct{})}
}

// start runs the binary with the server's addresses and extra flags; the
// process is killed at the end of the test.
func (s *server) start(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"server",
		"--node-id", s.name,
		"--data-dir", t.TempDir(),
		"--http-addr", s.http,
		"--resp-addr", s.resp,
		"--cluster-addr", s.cluster,
		"--gossip-addr", s.gossip,
		"--log-level", "warn",
	}, extra...)
	s.cmd = exec.Command(olricRaftBinary(t), args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", s.name, s.log.String())
		}
	})
}

// kill sends SIGKILL and waits for the process to exit.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// poll calls cond until it returns nil or timeout passes; it returns the
// last error.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getJSON GETs http://addr+path into v and returns the status code.
func getJSON(addr, path string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %w (%.200s)", path, err, body)
		}
	}
	return resp.StatusCode, nil
}

// ready reports nil once GET /readyz answers 200.
func (s *server) ready() error {
	if s.exited() {
		return fmt.Errorf("%s exited: %v\n%s", s.name, s.waitErr, s.log.String())
	}
	code, err := getJSON(s.http, "/readyz", nil)
	if err != nil {
		return fmt.Errorf("%s /readyz: %w", s.name, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s /readyz: %d", s.name, code)
	}
	return nil
}

// The parts of the HTTP API the tests read.
type (
	routingView struct {
		Version    uint64 `json:"routing_version"`
		Partitions []struct {
			ID      uint32   `json:"id"`
			Primary string   `json:"primary"`
			Backups []string `json:"backups"`
			State   string   `json:"state"`
		} `json:"partitions"`
	}
	membersView struct {
		Members []struct {
			ID       string `json:"id"`
			RESPAddr string `json:"resp_addr"`
			State    string `json:"state"`
			Leader   bool   `json:"leader"`
		} `json:"members"`
	}
	locateView struct {
		Partition uint32 `json:"partition"`
		Primary   string `json:"primary"`
	}
	valueView struct {
		Value       json.RawMessage `json:"value"`
		ValueBase64 []byte          `json:"value_base64"`
	}
)

// httpValue reads a key over the HTTP API; it returns the stored bytes.
func httpValue(addr, dmap, key string) ([]byte, int, error) {
	var v valueView
	code, err := getJSON(addr, "/v1/dmaps/"+dmap+"/keys/"+key, &v)
	if err != nil || code != http.StatusOK {
		return nil, code, err
	}
	if v.ValueBase64 != nil {
		return v.ValueBase64, code, nil
	}
	return v.Value, code, nil
}

// forwarded sums olric_raft_dataplane_forwarded_total of a member's
// /metrics: the requests it forwarded to a partition's primary.
func forwarded(addr string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "olric_raft_dataplane_forwarded_total") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no olric_raft_dataplane_forwarded_total on %s", addr)
	}
	return sum, sc.Err()
}

// testLogger routes the Olric client's log to t.Log.
func testLogger(t *testing.T) *log.Logger {
	return log.New(tWriter{t}, "olric-client: ", 0)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Olric 0.6.1's client maps error prefixes (KEYNOTFOUND, ...) to its
// sentinel errors (olric.ErrKeyNotFound, ...) through a table that only
// its server-side services fill, when an embedded Olric is created: a
// program that only uses ClusterClient gets errors that carry the
// sentinel's text but do not match errors.Is. olric.New fills the table
// (it creates the services without listening or joining anything), so
// the tests call it once to check the mapping a fixed client gets.
var (
	registerOnce sync.Once
	registered   bool
)

func registerOlricErrors(t *testing.T) {
	t.Helper()
	registerOnce.Do(func() {
		c := config.New("local")
		c.Logger = log.New(io.Discard, "", 0)
		if _, err := olric.New(c); err != nil {
			t.Fatalf("olric.New (to register the client's error prefixes): %v", err)
		}
		registered = true
	})
}
