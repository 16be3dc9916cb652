// Package soak is a bounded load test of a 3-member cluster at and beyond
// saturation, over real HTTP on loopback: more clients than the members'
// connection limits let in, for a set time (OLRIC_RAFT_SOAK_DURATION,
// default 10s; `make soak` runs minutes). It checks what overload must not
// break: every request is answered (served, or refused with 503), no
// acknowledged write is lost, no read is older than the last acknowledged
// write, memory stays bounded, and no goroutine outlives the cluster
// (goleak, in TestMain).
package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/internal/connlimit"
	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// libraryGoroutines are background goroutines of libraries that never
// end (raft-boltdb's metrics emitter, go-metrics' sinks): not ours.
var libraryGoroutines = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/hashicorp/raft-boltdb/v2.(*BoltStore).runMetrics"),
	goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
	goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, libraryGoroutines...) }

const (
	members         = 3
	clientsDefault  = 192 // more than members × maxConnsPerMember
	maxConnsPerNode = 48
	keysPerClient   = 16
)

// soakDuration is OLRIC_RAFT_SOAK_DURATION, default 10s.
func soakDuration(t *testing.T) time.Duration {
	d := 10 * time.Second
	if v := os.Getenv("OLRIC_RAFT_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("OLRIC_RAFT_SOAK_DURATION=%q: %v", v, err)
		}
	}
	return d
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// clientState is one client's keys: the last acknowledged value of each,
// and the values written since that were not acknowledged (they may or
// may not have happened).
type clientState struct {
	acked   map[string]int
	pending map[string][]int
}

func TestSoakBeyondSaturation(t *testing.T) {
	dur := soakDuration(t)
	goroutinesBefore := runtime.NumGoroutine()
	clients := clientsDefault
	if v, err := strconv.Atoi(os.Getenv("OLRIC_RAFT_SOAK_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	c := testcluster.New(t, members, testcluster.Options{Replicas: 2})
	var addrs []string
	var limits []*connlimit.Listener
	var servers []*http.Server
	for _, m := range c.Members {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := connlimit.New(raw, maxConnsPerNode, httpapi.RejectConnection)
		limits = append(limits, ln)
		m.Cfg.HTTPAddr = raw.Addr().String()
		addrs = append(addrs, m.Cfg.HTTPAddr)
		var api atomic.Pointer[http.Handler]
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := api.Load()
				if h == nil {
					if n := m.Node(); n != nil {
						nh := http.Handler(httpapi.New(n, httpapi.Options{}))
						api.CompareAndSwap(nil, &nh)
						h = api.Load()
					}
				}
				if h == nil {
					http.Error(w, "starting", http.StatusServiceUnavailable)
					return
				}
				(*h).ServeHTTP(w, r)
			}),
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		}
		go func() { _ = srv.Serve(ln) }()
		servers = append(servers, srv)
		t.Cleanup(func() { _ = srv.Close() })
	}
	c.StartAll()
	c.WaitConverged(60 * time.Second)
	c.WaitFor(60*time.Second, "backups in sync", func() error {
		for _, p := range c.Members[0].Node().Routing().Partitions {
			if len(p.Syncing) > 0 {
				return fmt.Errorf("partition %d syncing", p.ID)
			}
		}
		return nil
	})

	var (
		ok, refused, notFound, other atomic.Int64
		stale                        atomic.Int64
		firstProblem                 atomic.Pointer[string]
	)
	problem := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		firstProblem.CompareAndSwap(nil, &s)
	}
	states := make([]*clientState, clients)
	var codesMu sync.Mutex
	codes := map[string]int{} // 503s by error code
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		st := &clientState{acked: map[string]int{}, pending: map[string][]int{}}
		states[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			base := "http://" + addrs[i%members]
			for n := 0; ctx.Err() == nil; n++ {
				// Write a key, then read it back: n and n+1 share a key.
				key := fmt.Sprintf("c%d-k%d", i, (n/2)%keysPerClient)
				url := base + "/v1/dmaps/soak/keys/" + key
				var req *http.Request
				write := n%2 == 0
				if write {
					st.pending[key] = append(st.pending[key], n)
					req, _ = http.NewRequest(http.MethodPut, url, strings.NewReader(fmt.Sprintf(`{"value":%d}`, n)))
				} else {
					req, _ = http.NewRequest(http.MethodGet, url, nil)
				}
				res, err := hc.Do(req)
				if err != nil {
					// The server closed the connection (a reject, a
					// shutdown): answered, not served. Anything else is a
					// request left without an answer.
					if ctx.Err() == nil && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "connection reset") {
						problem("client %d: %v", i, err)
						other.Add(1)
					}
					continue
				}
				body, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				switch {
				case res.StatusCode == http.StatusOK && write:
					ok.Add(1)
					st.acked[key] = n
					st.pending[key] = nil
				case res.StatusCode == http.StatusOK:
					ok.Add(1)
					var got struct{ Value int }
					if err := json.Unmarshal(body, &got); err != nil {
						problem("client %d: GET %s: %v: %s", i, key, err, body)
						continue
					}
					if got.Value < st.acked[key] {
						stale.Add(1)
						problem("client %d: GET %s = %d, older than the acknowledged %d", i, key, got.Value, st.acked[key])
					}
				case res.StatusCode == http.StatusNotFound && !write:
					notFound.Add(1)
					if _, written := st.acked[key]; written {
						problem("client %d: GET %s: not found after an acknowledged write", i, key)
					}
				case res.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
					if res.Header.Get("Retry-After") == "" {
						problem("503 without Retry-After: %s", body)
					}
					var e struct {
						Error struct{ Code string } `json:"error"`
					}
					_ = json.Unmarshal(body, &e)
					codesMu.Lock()
					codes[e.Error.Code]++
					codesMu.Unlock()
					time.Sleep(10 * time.Millisecond) // a client backs off
				default:
					other.Add(1)
					problem("client %d: %s %s: %d %s", i, req.Method, key, res.StatusCode, body)
				}
			}
		}()
	}
	// Sample the heap while the load runs.
	var peakHeap uint64
	sampler := time.NewTicker(500 * time.Millisecond)
	goroutinesDuring := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-sampler.C:
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			goroutinesDuring = max(goroutinesDuring, runtime.NumGoroutine())
		}
	}
	sampler.Stop()
	wg.Wait()
	elapsed := time.Since(start)

	// Every acknowledged write is there (or a later attempted one).
	hc := &http.Client{Timeout: 10 * time.Second}
	lost := 0
	for i, st := range states {
		for key, want := range st.acked {
			var got struct{ Value int }
			deadline := time.Now().Add(30 * time.Second)
			for {
				res, err := hc.Get("http://" + addrs[(i+1)%members] + "/v1/dmaps/soak/keys/" + key)
				if err == nil {
					body, _ := io.ReadAll(res.Body)
					_ = res.Body.Close()
					if res.StatusCode == http.StatusOK && json.Unmarshal(body, &got) == nil {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("final read of %s: %v", key, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got.Value < want {
				lost++
				problem("lost: %s = %d, acknowledged %d", key, got.Value, want)
			}
		}
	}
	hc.CloseIdleConnections()

	var rejected uint64
	for _, l := range limits {
		rejected += l.Rejected()
	}
	total := ok.Load() + refused.Load() + notFound.Load()
	t.Logf("soak %s: %d clients on %d members (max %d connections each): %d requests, %.0f ops/s served; 200 %d, 404 %d, 503 %d (connections rejected over the limit %d); 503 codes %v; peak heap in use %d MiB, peak RSS %d MiB, goroutines during %d",
		elapsed.Round(time.Second), clients, members, maxConnsPerNode, total, float64(ok.Load())/elapsed.Seconds(),
		ok.Load(), notFound.Load(), refused.Load(), rejected, codes, peakHeap>>20, peakRSS()>>20, goroutinesDuring)
	if p := firstProblem.Load(); p != nil {
		t.Errorf("first problem: %s", *p)
	}
	if other.Load() != 0 || stale.Load() != 0 || lost != 0 {
		t.Fatalf("%d unanswered or unexpected answers, %d stale reads, %d lost writes", other.Load(), stale.Load(), lost)
	}
	if ok.Load() == 0 {
		t.Fatal("nothing was served")
	}
	if rejected == 0 {
		t.Errorf("no connection was over the limit: the test did not reach beyond saturation")
	}
	// The data is bounded (clients × keysPerClient small values): the heap
	// must be too, whatever the load.
	if peakHeap > 1<<30 {
		t.Errorf("peak heap in use %d MiB: memory grows with the load", peakHeap>>20)
	}
	for _, srv := range servers {
		_ = srv.Close()
	}
	c.CloseAll()
	// Every goroutine of the cluster, the servers and the clients ends.
	if err := goleak.Find(libraryGoroutines...); err != nil {
		t.Errorf("goroutines left after the cluster closed: %v", err)
	}
	t.Logf("goroutines: %d before the cluster started, %d at the peak, %d after it closed (none of ours: goleak; the rest are libraries' background emitters)",
		goroutinesBefore, goroutinesDuring, runtime.NumGoroutine())
}
