package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// binary is the olric-raft binary built once for the process tests.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func olricRaftBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "olric-raft-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "olric-raft")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/olric-raft")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// proc is one olric-raft server process.
type proc struct {
	name string
	http string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
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

// ReadFrom takes the lock too: os/exec copies a child's output with
// io.Copy, which would use the embedded Buffer's ReadFrom and bypass Write.
func (b *syncBuffer) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			_, _ = b.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// getJSON fetches url into v; it returns the HTTP status.
func getJSON(ctx context.Context, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

type routingView struct {
	Version    uint64 `json:"routing_version"`
	Partitions []struct {
		ID      uint32   `json:"id"`
		Primary string   `json:"primary"`
		Backups []string `json:"backups"`
		State   string   `json:"state"`
	} `json:"partitions"`
	Members []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"members"`
}

// TestFiveProcessesStartedAtOnceConverge starts five real olric-raft
// processes at the same moment with --bootstrap-expect 5 and checks that
// they converge on one routing version with identical, balanced tables,
// then stops them with SIGTERM (graceful leave) and expects exit code 0.
func TestFiveProcessesStartedAtOnceConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := olricRaftBinary(t)
	const n = 5
	type addrs struct{ http, resp, cluster, gossip string }
	var as []addrs
	for range n {
		as = append(as, addrs{testcluster.FreeAddr(t), testcluster.FreeAddr(t), testcluster.FreeAddr(t), testcluster.FreeAddr(t)})
	}
	var procs []*proc
	for i := range n {
		var join []string
		for j := range n {
			if j != i {
				join = append(join, as[j].gossip)
			}
		}
		name := fmt.Sprintf("p%d", i+1)
		cmd := exec.Command(bin, "server",
			"--node-id", name,
			"--data-dir", t.TempDir(),
			"--http-addr", as[i].http,
			"--resp-addr", as[i].resp,
			"--cluster-addr", as[i].cluster,
			"--gossip-addr", as[i].gossip,
			"--join", strings.Join(join, ","),
			"--bootstrap-expect", fmt.Sprint(n),
			"--timing", "dev",
			"--log-level", "warn",
		)
		buf := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = buf, buf
		procs = append(procs, &proc{name: name, http: as[i].http, cmd: cmd, log: buf, done: make(chan struct{})})
	}
	t.Cleanup(func() {
		for _, p := range procs {
			if p.cmd.Process != nil && p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
			}
		}
	})
	// Start all five at once.
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.cmd.Start(); err != nil {
				t.Errorf("start %s: %v", p.name, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waits := make([]error, n)
	for i, p := range procs {
		go func() {
			waits[i] = p.cmd.Wait()
			close(p.done)
		}()
	}

	var tables []routingView
	err := testcluster.Poll(60*time.Second, func() error {
		tables = tables[:0]
		for _, p := range procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited early:\n%s", p.name, p.log.String())
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var ready map[string]any
			code, err := getJSON(ctx, "http://"+p.http+"/readyz", &ready)
			if err != nil || code != http.StatusOK {
				cancel()
				return fmt.Errorf("%s not ready: %d %v %v", p.name, code, ready, err)
			}
			var rv routingView
			code, err = getJSON(ctx, "http://"+p.http+"/v1/cluster/routing", &rv)
			cancel()
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("%s routing: %d %v", p.name, code, err)
			}
			tables = append(tables, rv)
		}
		first, _ := json.Marshal(tables[0])
		for i, tv := range tables[1:] {
			other, _ := json.Marshal(tv)
			if !bytes.Equal(first, other) {
				return fmt.Errorf("%s and %s differ: v%d vs v%d", procs[0].name, procs[i+1].name, tables[0].Version, tv.Version)
			}
		}
		alive := 0
		for _, m := range tables[0].Members {
			if m.State == "alive" {
				alive++
			}
		}
		if alive != n {
			return fmt.Errorf("v%d has %d alive members", tables[0].Version, alive)
		}
		counts := map[string][2]int{}
		for _, p := range tables[0].Partitions {
			c := counts[p.Primary]
			c[0]++
			counts[p.Primary] = c
			for _, b := range p.Backups {
				c := counts[b]
				c[1]++
				counts[b] = c
			}
		}
		if len(counts) != n {
			return fmt.Errorf("v%d: %d members hold partitions", tables[0].Version, len(counts))
		}
		for id, c := range counts {
			if c[0] < 271/n || c[0] > 271/n+1 || c[1] < 271/n || c[1] > 271/n+1 {
				return fmt.Errorf("v%d: %s holds %d primaries, %d backups: not balanced yet", tables[0].Version, id, c[0], c[1])
			}
		}
		return nil
	})
	if err != nil {
		for _, p := range procs {
			t.Logf("--- %s log:\n%s", p.name, p.log.String())
		}
		t.Fatal(err)
	}

	// SIGTERM every process: each leaves gracefully and exits 0.
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not exit after SIGTERM:\n%s", p.name, p.log.String())
		}
	}
	for i, err := range waits {
		if err != nil {
			t.Errorf("%s exit: %v\n%s", procs[i].name, err, procs[i].log.String())
		}
	}
}
