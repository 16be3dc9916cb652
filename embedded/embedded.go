package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Config configures a member: node.Config, with the same defaults
// (node.DefaultConfig) and checks (Validate). ClusterAddr and GossipAddr
// may use port 0 (a free port, advertised to the others; read them back
// with Member.Node().ClusterAddr() and GossipAddr()). HTTPAddr and
// RESPAddr are only advertised, unless WithHTTP makes the member serve
// the HTTP API on HTTPAddr (port 0 allowed then too).
type Config = node.Config

const (
	// DefaultReadyTimeout bounds how long Start waits for the member to be
	// ready when WithReadyTimeout is not given.
	DefaultReadyTimeout = time.Minute
	// httpShutdownTimeout bounds the wait for in-flight HTTP requests on
	// Close.
	httpShutdownTimeout = 10 * time.Second
	// readyCheckTimeout bounds one readiness check; readyPoll spaces them.
	readyCheckTimeout = 2 * time.Second
	readyPoll         = 20 * time.Millisecond
)

// Option tunes Start.
type Option func(*options)

type options struct {
	serveHTTP    bool
	http         httpapi.Options
	readyTimeout time.Duration
	noWait       bool
}

// WithHTTP makes the member serve the HTTP API (DESIGN.md §6) on
// Config.HTTPAddr, like `olric-raft server`. Port 0 picks a free port,
// which is advertised; Member.HTTPAddr returns it. A zero opts.Logger is
// Config.Logger; a zero opts.MaxValueBytes is the data plane's value
// limit.
func WithHTTP(opts httpapi.Options) Option {
	return func(o *options) { o.serveHTTP, o.http = true, opts }
}

// WithReadyTimeout bounds how long Start waits for the member to be ready
// (default DefaultReadyTimeout). The context of StartContext bounds it
// too.
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) { o.readyTimeout = d }
}

// WithoutWait makes Start return as soon as the member runs, before it is
// ready; use Member.Ready to wait. Members started with BootstrapExpect
// need each other to become ready: start them concurrently, or with
// WithoutWait and then wait on each.
func WithoutWait() Option {
	return func(o *options) { o.noWait = true }
}

// Member is a running olric-raft member inside this process. Its methods
// are safe for concurrent use.
type Member struct {
	node     *node.Node
	cfg      Config
	httpAddr string        // "" without WithHTTP
	srv      *http.Server  // nil without WithHTTP
	served   chan struct{} // closed when srv.Serve returned

	closeOnce sync.Once
	closeErr  error
}

// Start starts a member and waits until it is ready (see Member.Ready),
// at most the ready timeout. On failure everything started is stopped
// again.
func Start(cfg Config, opts ...Option) (*Member, error) {
	return StartContext(context.Background(), cfg, opts...)
}

// StartContext is Start with a context bounding the wait for readiness.
//
// Start-up order (as `olric-raft server`'s):
//  1. With WithHTTP, listen on HTTPAddr first, so that a port clash fails
//     before the node opens its stores, and the port chosen for port 0 is
//     advertised.
//  2. Start the node (Raft, gossip, cluster port).
//  3. Serve HTTP, then wait until ready.
func StartContext(ctx context.Context, cfg Config, opts ...Option) (*Member, error) {
	o := options{readyTimeout: DefaultReadyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.readyTimeout <= 0 {
		return nil, fmt.Errorf("%w: ready timeout %s must be positive", node.ErrInvalidConfig, o.readyTimeout)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Member{}
	var ln net.Listener
	if o.serveHTTP {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("embedded: http_addr %s: %w", cfg.HTTPAddr, err)
		}
		if _, port, _ := net.SplitHostPort(cfg.HTTPAddr); port == "0" {
			cfg.HTTPAddr = ln.Addr().String() // advertise the port we got
		}
		m.httpAddr = ln.Addr().String()
	}
	n, err := node.New(cfg)
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	m.node, m.cfg = n, cfg
	if o.serveHTTP {
		m.serveHTTP(ln, o.http)
	}
	if o.noWait {
		return m, nil
	}
	rctx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	defer cancel()
	if err := m.Ready(rctx); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// serveHTTP serves the HTTP API on ln until Close.
func (m *Member) serveHTTP(ln net.Listener, hopts httpapi.Options) {
	if hopts.Logger == nil {
		hopts.Logger = m.cfg.Logger
	}
	if hopts.MaxValueBytes <= 0 {
		hopts.MaxValueBytes = m.maxValueLen()
	}
	m.srv = &http.Server{
		Handler:           httpapi.New(m.node, hopts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		// The request line carries the key, percent-encoded: up to three
		// times its length.
		MaxHeaderBytes: 3*dataplane.MaxKeyLen + 64<<10,
		ErrorLog:       slog.NewLogLogger(hopts.Logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan struct{})
	go func() {
		defer close(m.served)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			hopts.Logger.Error("embedded: HTTP server failed", "addr", m.httpAddr, "err", err)
		}
	}()
}

// maxValueLen is the data plane's value limit.
func (m *Member) maxValueLen() int {
	if m.cfg.DataPlane.MaxValueLen > 0 {
		return m.cfg.DataPlane.MaxValueLen
	}
	return dataplane.DefaultMaxValueLen
}

// Ready waits until the member is ready or ctx ends. Ready means: a live
// member of an initialized routing table that has applied everything the
// leader had committed (node.Node.Ready), with its data plane open. The
// error of a member that never got ready wraps ctx's error and the last
// reason (node.ErrNotReady, node.ErrNoLeader, ...).
func (m *Member) Ready(ctx context.Context) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
		last = m.node.Ready(cctx)
		if last == nil {
			// The node opens its data plane just after the routing table
			// is initialized.
			last = m.node.DataPlaneReady()
		}
		cancel()
		if last == nil {
			return nil
		}
		if errors.Is(last, node.ErrClosed) {
			return last
		}
		t := time.NewTimer(readyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("embedded: member %s not ready: %w (last: %w)", m.cfg.NodeID, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// Node returns the underlying node: routing, members, status, operator
// actions (Join, RemoveMember, ForceAssign).
func (m *Member) Node() *node.Node { return m.node }

// ID returns the member's node id.
func (m *Member) ID() metadata.NodeID { return m.cfg.NodeID }

// HTTPAddr returns the address the HTTP API listens on, "" without
// WithHTTP.
func (m *Member) HTTPAddr() string { return m.httpAddr }

// DMap returns the DMap called name. It is a handle: nothing is created
// until a key is written.
func (m *Member) DMap(name string) *DMap { return &DMap{m: m, name: name} }

// Leave leaves the cluster gracefully — hands its partitions and Raft
// leadership over, leaves Raft and gossip — and then closes the member.
// The HTTP API keeps serving during the handover (answering 503 leaving),
// so that clients retry elsewhere. If the leave fails, the member keeps
// running: retry, or Close it.
func (m *Member) Leave(ctx context.Context) error {
	if err := m.node.Leave(ctx); err != nil {
		return err
	}
	return m.Close()
}

// Close stops the member at once, without leaving: the others see it
// fail (use Leave to hand its data over first). Shutdown order: HTTP first,
// letting in-flight requests (which call the node) finish, then the node.
// Close is idempotent; later operations fail with node.ErrClosed.
func (m *Member) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		if m.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
			if err := m.srv.Shutdown(ctx); err != nil {
				_ = m.srv.Close()
			}
			cancel()
			<-m.served
		}
		if err := m.node.Close(); err != nil {
			errs = append(errs, err)
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}
