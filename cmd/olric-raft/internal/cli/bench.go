package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/client"
)

// Bounds of the bench flags.
const (
	maxBenchConcurrency = 10000
	maxBenchValueSize   = 16 << 20
	// benchTimeout is the default bound on one request of the bench.
	benchTimeout = 10 * time.Second
)

// benchConfig is what one bench run does.
type benchConfig struct {
	addrs       []string
	dmap        string
	concurrency int
	keys        int
	valueSize   int
	readRatio   float64
	duration    time.Duration // 0: no time bound (requests > 0)
	requests    int64         // 0: no count bound (duration > 0)
	timeout     time.Duration // per request
	tls         *tls.Config   // https members; nil: defaults
	token       string        // --token ("": none)
}

func newBenchCmd(d *Deps) *cobra.Command {
	var addresses, output, dmap string
	var cfg benchConfig
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a cluster with gets and puts over HTTP and report throughput and latencies",
		Long: `bench runs --concurrency workers that send gets and puts of random keys
(k0 to k<keys-1> in --dmap) to --address, for --duration or until --requests
requests were sent (both: whichever comes first). Several addresses
(--address a,b,c) are used round-robin, request by request.

Every second it prints the progress to stderr; at the end, a summary: the
operations that succeeded and their rate, the errors by code, and the
latency percentiles (p50, p99, p999, max; within about 2%) of reads and
writes. A read of a key not written yet (not_found) counts as a success.
Puts store --value-size bytes (a JSON string). Ctrl-C ends the run early
and still prints the summary.`,
		Args: args(cobra.NoArgs),
	}
	fs := cmd.Flags()
	fs.StringVar(&addresses, "address", defaultAddress, "HTTP API address(es) of members, comma-separated (env "+envName("address")+")")
	fs.StringVarP(&output, "output", "o", "table", "output format of the summary: table or json (env "+envName("output")+")")
	fs.DurationVar(&cfg.timeout, "timeout", benchTimeout, "bound on each request (env "+envName("timeout")+")")
	fs.StringVar(&dmap, "dmap", "bench", "the DMap to load")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "concurrent workers, each with one request in flight")
	fs.IntVar(&cfg.keys, "keys", 10000, "size of the key space")
	fs.IntVar(&cfg.valueSize, "value-size", 100, "bytes per value")
	fs.Float64Var(&cfg.readRatio, "read-ratio", 0.8, "share of gets among the requests, 0 to 1")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run (unless --requests is given alone)")
	fs.Int64Var(&cfg.requests, "requests", 0, "how many requests to send (0: run for --duration)")
	tlsFlags := addClientTLSFlags(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var problems []string
		for _, err := range applyEnv(cmd.Flags(), d.LookupEnv, "address", "output", "timeout") {
			problems = append(problems, err.Error())
		}
		cfg.dmap = dmap
		cfg.token = clientToken(cmd, d.LookupEnv)
		if cmd.Flags().Changed("requests") && !cmd.Flags().Changed("duration") {
			cfg.duration = 0
		}
		problems = append(problems, cfg.validate(addresses, output)...)
		var tlsProblems []string
		cfg.tls, tlsProblems = tlsFlags.config(d.LookupEnv)
		problems = append(problems, tlsProblems...)
		if len(problems) > 0 {
			return &usageError{err: errors.New(strings.Join(problems, "; "))}
		}
		clients, closeIdle := benchClients(cfg)
		defer closeIdle()

		// Ctrl-C ends the run, not the process: the summary still prints.
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
		defer stop()
		sum := runBench(ctx, cfg, clients, d.Stderr)

		o := &operator{opFlags: opFlags{output: output}, d: d, cmd: cmd}
		if err := o.print(sum, func(w *tabw) { printBench(w, sum) }); err != nil {
			return err
		}
		if sum.Ops == 0 {
			top, n := "", uint64(0)
			for code, c := range sum.ErrorsByCode {
				if c > n || (c == n && code < top) {
					top, n = code, c
				}
			}
			msg := "no operation succeeded"
			if top != "" {
				msg += fmt.Sprintf(" (%d errors, most of them %s)", sum.Errors, top)
			}
			h := authHint(top) // most of them unauthorized or forbidden
			if h == "" {
				h = "check --address and that the cluster is ready ('olric-raft status')"
			}
			return &cliError{Code: "bench_failed", Message: msg, Hint: h}
		}
		return nil
	}
	return cmd
}

// validate checks the flags, splitting addresses into c.addrs; it returns
// every problem.
func (c *benchConfig) validate(addresses, output string) []string {
	var problems []string
	for _, a := range strings.Split(addresses, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		cl, err := client.New(a)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--address: %v", err))
			continue
		}
		c.addrs = append(c.addrs, cl.Address())
	}
	if len(c.addrs) == 0 && len(problems) == 0 {
		problems = append(problems, "--address: no address given")
	}
	if output != "table" && output != "json" {
		problems = append(problems, fmt.Sprintf("--output %q must be table or json", output))
	}
	if c.dmap == "" {
		problems = append(problems, "--dmap must not be empty")
	}
	if c.concurrency < 1 || c.concurrency > maxBenchConcurrency {
		problems = append(problems, fmt.Sprintf("--concurrency %d must be from 1 to %d", c.concurrency, maxBenchConcurrency))
	}
	if c.keys < 1 {
		problems = append(problems, fmt.Sprintf("--keys %d must be at least 1", c.keys))
	}
	if c.valueSize < 0 || c.valueSize > maxBenchValueSize {
		problems = append(problems, fmt.Sprintf("--value-size %d must be from 0 to %d", c.valueSize, maxBenchValueSize))
	}
	if !(c.readRatio >= 0 && c.readRatio <= 1) { // also refuses NaN
		problems = append(problems, fmt.Sprintf("--read-ratio %v must be from 0 to 1", c.readRatio))
	}
	if c.requests < 0 {
		problems = append(problems, fmt.Sprintf("--requests %d must not be negative", c.requests))
	}
	if c.duration < 0 || (c.duration == 0 && c.requests == 0) {
		problems = append(problems, fmt.Sprintf("--duration %s must be positive (or give --requests)", c.duration))
	}
	if c.timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout %s must be positive", c.timeout))
	}
	return problems
}

// benchClients returns one client per address, sharing a transport that
// keeps a connection per worker and host alive, and the function that
// closes its idle connections.
func benchClients(cfg benchConfig) ([]*client.Client, func()) {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.concurrency * len(cfg.addrs),
		MaxIdleConnsPerHost: cfg.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     cfg.tls,
	}
	hc := &http.Client{Transport: tr}
	clients := make([]*client.Client, len(cfg.addrs))
	for i, a := range cfg.addrs {
		clients[i], _ = client.New(a, client.WithHTTPClient(hc), client.WithTimeout(cfg.timeout), client.WithToken(cfg.token)) // checked by validate
	}
	return clients, tr.CloseIdleConnections
}

// benchValue is the value puts store: a JSON string of n bytes (so that
// it travels as JSON, not base64), "0" for n = 1, nothing for n = 0.
func benchValue(n int) []byte {
	switch n {
	case 0:
		return []byte{}
	case 1:
		return []byte("0")
	}
	v := make([]byte, n)
	v[0], v[n-1] = '"', '"'
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := 1; i < n-1; i++ {
		v[i] = letters[r.IntN(len(letters))]
	}
	return v
}

// benchStats are the counters of one kind of operation; safe for
// concurrent use.
type benchStats struct {
	ops, notFound, errors atomic.Uint64
	lat                   histogram
}

// benchRun is the shared state of a run's workers.
type benchRun struct {
	cfg     benchConfig
	clients []*client.Client
	value   []byte
	start   time.Time
	sent    atomic.Int64  // requests claimed (the --requests bound)
	next    atomic.Uint64 // round-robin over clients
	reads   benchStats
	writes  benchStats
	mu      sync.Mutex
	codes   map[string]uint64 // errors by code; guarded by mu
}

// runBench runs the load until the duration, the request count or ctx
// ends it, printing progress to progress once a second, and returns the
// summary. Its goroutines (the workers and the progress printer) have
// ended when it returns.
func runBench(ctx context.Context, cfg benchConfig, clients []*client.Client, progress io.Writer) benchSummary {
	r := &benchRun{cfg: cfg, clients: clients, value: benchValue(cfg.valueSize), codes: map[string]uint64{}}
	fmt.Fprintf(progress, "bench: %d workers against %s, DMap %q, %d keys, %d-byte values, %.0f%% reads, %s\n",
		cfg.concurrency, strings.Join(cfg.addrs, ","), cfg.dmap, cfg.keys, cfg.valueSize, cfg.readRatio*100, r.bound())
	r.start = time.Now()
	var deadline time.Time
	if cfg.duration > 0 {
		deadline = r.start.Add(cfg.duration)
	}

	stopProgress := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.printProgress(progress, stopProgress) })
	var workers sync.WaitGroup
	for i := range cfg.concurrency {
		workers.Go(func() { r.work(ctx, uint64(i), deadline) })
	}
	workers.Wait()
	elapsed := time.Since(r.start)
	close(stopProgress)
	wg.Wait()
	return r.summary(elapsed)
}

func (r *benchRun) bound() string {
	switch {
	case r.cfg.requests > 0 && r.cfg.duration > 0:
		return fmt.Sprintf("%d requests or %s", r.cfg.requests, r.cfg.duration)
	case r.cfg.requests > 0:
		return fmt.Sprintf("%d requests", r.cfg.requests)
	}
	return r.cfg.duration.String()
}

// work is one worker: one request at a time until a bound is reached.
func (r *benchRun) work(ctx context.Context, seed uint64, deadline time.Time) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	key := make([]byte, 0, 24)
	for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		if r.cfg.requests > 0 && r.sent.Add(1) > r.cfg.requests {
			return
		}
		c := r.clients[int(r.next.Add(1)%uint64(len(r.clients)))]
		key = strconv.AppendInt(append(key[:0], 'k'), int64(rng.IntN(r.cfg.keys)), 10)
		read := rng.Float64() < r.cfg.readRatio
		st := &r.writes
		start := time.Now()
		var err error
		if read {
			st = &r.reads
			_, err = c.Get(ctx, r.cfg.dmap, string(key))
		} else {
			_, err = c.Put(ctx, r.cfg.dmap, string(key), r.value)
		}
		lat := time.Since(start)
		switch {
		case err == nil:
		case read && client.IsCode(err, client.CodeNotFound):
			st.notFound.Add(1)
		case ctx.Err() != nil:
			return // interrupted: not the cluster's failure
		default:
			st.errors.Add(1)
			code := benchErrorCode(err)
			r.mu.Lock()
			r.codes[code]++
			r.mu.Unlock()
			continue
		}
		st.ops.Add(1)
		st.lat.record(lat)
	}
}

// benchErrorCode names an error for the summary: the API's code, or what
// went wrong on the way.
func benchErrorCode(err error) string {
	var ae *client.APIError
	var ue *url.Error
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "client_timeout"
	case errors.As(err, &ue):
		return "transport"
	}
	return "other"
}

func (r *benchRun) printProgress(w io.Writer, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	bar := newProgressLine(w)
	defer bar.Done()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			elapsed := time.Since(r.start)
			ops := r.reads.ops.Load() + r.writes.ops.Load()
			errs := r.reads.errors.Load() + r.writes.errors.Load()
			// The bar follows whichever bound ends the run first.
			done, total := int(elapsed/time.Millisecond), int(r.cfg.duration/time.Millisecond)
			if r.cfg.requests > 0 && (r.cfg.duration == 0 || float64(r.sent.Load())/float64(r.cfg.requests) > float64(done)/float64(total)) {
				done, total = int(r.sent.Load()), int(r.cfg.requests)
			}
			bar.Show("bench: %s %s: %d ops, %.0f ops/s, %d errors",
				progressBar(done, total), elapsed.Round(time.Second), ops, float64(ops)/elapsed.Seconds(), errs)
		}
	}
}

// benchSummary is the result of a run (-o json prints it as is).
type benchSummary struct {
	Addresses       []string          `json:"addresses"`
	DMap            string            `json:"dmap"`
	Concurrency     int               `json:"concurrency"`
	Keys            int               `json:"keys"`
	ValueSize       int               `json:"value_size"`
	ReadRatio       float64           `json:"read_ratio"`
	DurationSeconds float64           `json:"duration_seconds"`
	Ops             uint64            `json:"ops"`
	OpsPerSecond    float64           `json:"ops_per_second"`
	Errors          uint64            `json:"errors"`
	ErrorsByCode    map[string]uint64 `json:"errors_by_code"`
	Reads           benchOpSummary    `json:"reads"`
	Writes          benchOpSummary    `json:"writes"`
}

// benchOpSummary is the summary of reads or writes. Latencies are of the
// operations that succeeded, in milliseconds.
type benchOpSummary struct {
	Ops       uint64       `json:"ops"`
	NotFound  uint64       `json:"not_found"`
	Errors    uint64       `json:"errors"`
	LatencyMs benchLatency `json:"latency_ms"`
}

type benchLatency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func (r *benchRun) summary(elapsed time.Duration) benchSummary {
	op := func(s *benchStats) benchOpSummary {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		return benchOpSummary{
			Ops: s.ops.Load(), NotFound: s.notFound.Load(), Errors: s.errors.Load(),
			LatencyMs: benchLatency{
				P50: ms(s.lat.quantile(0.5)), P99: ms(s.lat.quantile(0.99)),
				P999: ms(s.lat.quantile(0.999)), Max: ms(s.lat.maximum()),
			},
		}
	}
	s := benchSummary{
		Addresses: r.cfg.addrs, DMap: r.cfg.dmap, Concurrency: r.cfg.concurrency, Keys: r.cfg.keys,
		ValueSize: r.cfg.valueSize, ReadRatio: r.cfg.readRatio, DurationSeconds: elapsed.Seconds(),
		Reads: op(&r.reads), Writes: op(&r.writes), ErrorsByCode: map[string]uint64{},
	}
	s.Ops = s.Reads.Ops + s.Writes.Ops
	s.Errors = s.Reads.Errors + s.Writes.Errors
	if elapsed > 0 {
		s.OpsPerSecond = float64(s.Ops) / elapsed.Seconds()
	}
	r.mu.Lock()
	for code, n := range r.codes {
		s.ErrorsByCode[code] = n
	}
	r.mu.Unlock()
	return s
}

func printBench(w *tabw, s benchSummary) {
	w.line("ops:\t%d in %.2fs (%.0f ops/s)", s.Ops, s.DurationSeconds, s.OpsPerSecond)
	w.line("errors:\t%d", s.Errors)
	w.line("")
	w.row("OP", "OPS", "NOT_FOUND", "ERRORS", "P50", "P99", "P999", "MAX")
	for _, o := range []struct {
		name string
		s    benchOpSummary
	}{{"read", s.Reads}, {"write", s.Writes}} {
		l := o.s.LatencyMs
		w.row(o.name, o.s.Ops, o.s.NotFound, o.s.Errors, fmtMs(l.P50), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
	}
	if len(s.ErrorsByCode) > 0 {
		w.line("")
		w.row("ERROR", "COUNT")
		codes := make([]string, 0, len(s.ErrorsByCode))
		for c := range s.ErrorsByCode {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			w.row(c, s.ErrorsByCode[c])
		}
	}
}

func fmtMs(ms float64) string {
	return (time.Duration(ms * float64(time.Millisecond))).Round(time.Microsecond).String()
}

// histogram counts durations in log-linear buckets: exact below 64ns, then
// 64 buckets per power of two, so a quantile is within 1/64 (about 1.6%)
// of the truth. Safe for concurrent use; fixed size (about 30 KiB).
type histogram struct {
	counts [(64 - histSubBits + 1) << histSubBits]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const histSubBits = 6

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	n := bits.Len64(v) // > histSubBits
	shift := n - histSubBits - 1
	return (n-histSubBits)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	mant := uint64(i&(1<<histSubBits-1) + 1<<histSubBits)
	lo := mant << shift
	return lo + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) maximum() time.Duration { return time.Duration(h.max.Load()) }

// quantile returns the duration below which a share q of the recorded
// ones fall (0 when none was recorded), never above the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.999999)
	rank = max(1, min(rank, total))
	var seen uint64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen >= rank {
			return min(time.Duration(histValue(i)), h.maximum())
		}
	}
	return h.maximum()
}
