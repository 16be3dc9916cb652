package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a dialer writes on a cluster-port
// connection.
const (
	KindRaft byte = 'R' // hashicorp/raft's NetworkTransport
	KindRPC  byte = 'C' // cluster RPC (Client / ServeRPC)
)

// Defaults applied by Listen to zero Config fields.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultAcceptQueue      = 64
	DefaultMaxInflight      = 256
)

// maxPendingHandshakes bounds the connections waiting for their kind byte;
// beyond it new connections are closed at once.
const maxPendingHandshakes = 1024

// writeTimeout bounds one flush of RPC frames, so a peer that stops reading
// cannot wedge a writer forever.
const writeTimeout = 10 * time.Second

// Config configures a Mux.
type Config struct {
	// BindAddr is the host:port to listen on (port 0 picks a free port).
	BindAddr string
	// AdvertiseAddr is the host:port peers dial; it defaults to the
	// listener's address and is required when BindAddr's host is
	// unspecified (0.0.0.0, ::). It is also the local address the Faults
	// are asked about.
	AdvertiseAddr string
	// Faults injects network faults in tests; nil in production.
	Faults Faults
	// TLS, when set, turns on mutual TLS for every connection of the
	// cluster port, accepted and dialed (Raft and RPC alike): both sides
	// present the provider's current certificate and verify the peer's
	// against its CA pool. Nil: plain TCP. All members must agree.
	TLS *TLSProvider
	// Logger receives the Mux's and its RPC server's logs; nil discards.
	Logger *slog.Logger
	// HandshakeTimeout is how long an accepted connection may take to send
	// its kind byte (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// AcceptQueue is the length of each per-kind accept queue (default
	// DefaultAcceptQueue). When a queue is full the connection is closed
	// and counted in Stats.Dropped.
	AcceptQueue int
	// MaxFrameSize bounds an RPC frame the server reads or writes (default
	// DefaultMaxFrameSize).
	MaxFrameSize int
	// MaxInflight bounds the requests one RPC connection runs at once
	// (default DefaultMaxInflight); beyond it the server stops reading
	// that connection until one finishes.
	MaxInflight int
}

// DefaultConfig returns a Config with every default filled in, listening on
// the DESIGN's default cluster address.
func DefaultConfig() Config {
	return Config{
		BindAddr:         "127.0.0.1:3321",
		HandshakeTimeout: DefaultHandshakeTimeout,
		AcceptQueue:      DefaultAcceptQueue,
		MaxFrameSize:     DefaultMaxFrameSize,
		MaxInflight:      DefaultMaxInflight,
	}
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.AcceptQueue == 0 {
		c.AcceptQueue = DefaultAcceptQueue
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero values that Listen defaults are accepted.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	bindUnspecified := false
	if host, port, err := net.SplitHostPort(c.BindAddr); err != nil {
		bad("BindAddr %q: %v", c.BindAddr, err)
	} else {
		if _, err := parsePort(port); err != nil {
			bad("BindAddr %q: %v", c.BindAddr, err)
		}
		ip, err := netip.ParseAddr(host)
		bindUnspecified = host == "" || (err == nil && ip.IsUnspecified())
	}
	if c.AdvertiseAddr != "" {
		if host, port, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		} else {
			if p, err := parsePort(port); err != nil || p == 0 {
				bad("AdvertiseAddr %q: needs a non-zero port", c.AdvertiseAddr)
			}
			if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
				bad("AdvertiseAddr %q: host must be a dialable address", c.AdvertiseAddr)
			}
		}
	} else if bindUnspecified {
		bad("AdvertiseAddr is required when BindAddr %q has no specific host", c.BindAddr)
	}
	if c.HandshakeTimeout < 0 {
		bad("HandshakeTimeout %v is negative", c.HandshakeTimeout)
	}
	if c.AcceptQueue < 0 {
		bad("AcceptQueue %d is negative", c.AcceptQueue)
	}
	if c.MaxFrameSize < 0 || uint64(c.MaxFrameSize) > 1<<32-1 {
		bad("MaxFrameSize %d is outside [0, 2^32-1]", c.MaxFrameSize)
	}
	if c.MaxInflight < 0 {
		bad("MaxInflight %d is negative", c.MaxInflight)
	}
	return errors.Join(errs...)
}

func parsePort(s string) (int, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return int(p), nil
}

// Stats are the Mux's counters since Listen.
type Stats struct {
	Accepted uint64 // TCP connections accepted
	Routed   uint64 // connections handed to a per-kind listener
	Rejected uint64 // closed for a bad kind byte or a handshake timeout/error
	Dropped  uint64 // closed because their per-kind queue was full or closed, or too many handshakes were pending
}

// Mux owns one TCP listener and routes each accepted connection, by its
// first byte, to the Raft stream layer or the RPC server.
type Mux struct {
	cfg    Config
	ln     net.Listener
	addr   net.Addr
	logger *slog.Logger

	raft      *kindListener
	rpc       *kindListener
	raftLayer *raftLayer

	handshakes chan struct{} // semaphore of pending handshakes

	// baseCtx is the parent of every RPC handler context; Close cancels it.
	baseCtx context.Context
	cancel  context.CancelFunc

	closeOnce sync.Once
	// wg counts the accept loop, handshake goroutines and the RPC server's
	// goroutines. Add only while holding mu with mu.closed false, or from a
	// goroutine that wg already counts.
	wg sync.WaitGroup

	accepted, routed, rejected, dropped atomic.Uint64

	mu struct {
		sync.Mutex
		closed  bool                      // guarded by mu
		serving bool                      // ServeRPC was called; guarded by mu
		conns   map[*trackedConn]struct{} // open conns accepted or dialed; guarded by mu
		// raftOpen counts the connections handed to the Raft layer and
		// not yet closed by their user (raftConn); raftIdle is closed
		// while it is 0 (WaitRaftConns).
		raftOpen int
		raftIdle chan struct{}
	}
}

// Listen validates cfg, binds the listener and starts the accept loop.
func Listen(cfg Config) (*Mux, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", cfg.BindAddr, err)
	}
	m := &Mux{
		cfg:        cfg,
		ln:         ln,
		addr:       ln.Addr(),
		handshakes: make(chan struct{}, maxPendingHandshakes),
	}
	if cfg.AdvertiseAddr != "" {
		m.addr = advertiseAddr(cfg.AdvertiseAddr)
	}
	m.logger = cfg.Logger.With("component", "transport", "addr", m.addr.String())
	m.baseCtx, m.cancel = context.WithCancel(context.Background())
	m.mu.conns = make(map[*trackedConn]struct{})
	m.raft = newKindListener(m, KindRaft, cfg.AcceptQueue)
	m.rpc = newKindListener(m, KindRPC, cfg.AcceptQueue)
	m.raftLayer = &raftLayer{kindListener: m.raft}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// advertiseAddr is a configured advertise address, kept as written (it may
// be a host name).
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// Addr returns the advertised address: Config.AdvertiseAddr, or the
// listener's address (with the port chosen when BindAddr's port was 0).
func (m *Mux) Addr() net.Addr { return m.addr }

// Stats returns the Mux's counters.
func (m *Mux) Stats() Stats {
	return Stats{
		Accepted: m.accepted.Load(),
		Routed:   m.routed.Load(),
		Rejected: m.rejected.Load(),
		Dropped:  m.dropped.Load(),
	}
}

// RaftLayer returns the raft.StreamLayer of this Mux (always the same one):
// Accept returns only KindRaft connections, Dial writes KindRaft. Pass it to
// raft.NewNetworkTransport; closing it (raft does on transport Close) stops
// routing KindRaft connections but leaves the Mux running.
func (m *Mux) RaftLayer() raft.StreamLayer { return m.raftLayer }

// Dial connects to the Mux at addr and writes the kind byte. ctx bounds the
// dial and the kind byte's write. With Faults set, a cut link fails at once
// with ErrUnreachable and the conn is wrapped so a later cut breaks it. With
// Config.TLS it also runs the TLS handshake (on top of the fault-injected
// conn) and waits for the peer's acknowledgment of the kind byte, within
// the earlier of ctx's deadline and HandshakeTimeout; a refusal (either
// side's) returns an error wrapping ErrUnreachable and ErrHandshake and is
// logged. The conn is closed by Mux.Close if still open.
func (m *Mux) Dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	if kind != KindRaft && kind != KindRPC {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	if m.isClosed() {
		return nil, ErrClosed
	}
	local := m.addr.String()
	f := m.cfg.Faults
	if f != nil && !linkUp(f, local, addr) {
		return nil, fmt.Errorf("%w: %s -> %s cut by fault injection", ErrUnreachable, local, addr)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, addr, err)
	}
	c := raw
	if f != nil {
		if c, err = wrapFaultConn(f, local, addr, raw); err != nil {
			return nil, err
		}
	}
	tc, err := m.track(c)
	if err != nil {
		return nil, err
	}
	if m.cfg.TLS != nil {
		return m.clientHandshake(ctx, tc, addr, kind)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetWriteDeadline(dl)
	}
	if _, err := tc.Write([]byte{kind}); err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("%w: write kind byte to %s: %w", ErrUnreachable, addr, err)
	}
	_ = tc.SetWriteDeadline(time.Time{})
	return tc, nil
}

// Close stops the accept loop, closes the per-kind listeners and every
// connection the Mux accepted or dialed, cancels RPC handler contexts and
// waits for all the Mux's goroutines. It is idempotent; concurrent callers
// all return after the first finished.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.mu.closed = true
		conns := make([]*trackedConn, 0, len(m.mu.conns))
		for c := range m.mu.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()

		// Order: stop accepting new conns, then refuse queued ones, then
		// break the established ones (which unblocks handshakes, RPC
		// readers and Raft's connection handlers), cancel handlers last
		// so their responses, if any, are simply dropped.
		err = m.ln.Close()
		m.raft.Close()
		m.rpc.Close()
		for _, c := range conns {
			_ = c.Close()
		}
		m.cancel()
		m.wg.Wait()
	})
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.closed
}

// track registers c so Close closes it. On a closed Mux it closes c and
// returns ErrClosed.
func (m *Mux) track(c net.Conn) (*trackedConn, error) {
	tc := &trackedConn{Conn: c, m: m}
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		_ = c.Close()
		return nil, ErrClosed
	}
	m.mu.conns[tc] = struct{}{}
	m.mu.Unlock()
	return tc, nil
}

func (m *Mux) untrack(c *trackedConn) {
	m.mu.Lock()
	delete(m.mu.conns, c)
	m.mu.Unlock()
}

// goIfOpen starts fn as a goroutine counted by wg unless the Mux is closed.
func (m *Mux) goIfOpen(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

// acceptLoop accepts TCP connections and starts a handshake goroutine for
// each. It runs until Close closes the listener.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	const baseDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, baseDelay), maxDelay)
			m.logger.Warn("accept failed; retrying", "error", err, "backoff", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.baseCtx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		m.accepted.Add(1)
		tc, err := m.track(c)
		if err != nil {
			return
		}
		select {
		case m.handshakes <- struct{}{}:
		default:
			m.dropped.Add(1)
			m.logger.Warn("too many pending handshakes; closing connection", "remote", c.RemoteAddr())
			_ = tc.Close()
			continue
		}
		m.wg.Add(1) // counted: acceptLoop holds wg
		go m.handshake(tc)
	}
}

// handshake reads the kind byte of an accepted conn within
// HandshakeTimeout (with TLS: the TLS handshake, the kind byte and its
// acknowledgment, all within HandshakeTimeout) and routes the conn to its
// per-kind listener.
func (m *Mux) handshake(tc *trackedConn) {
	defer m.wg.Done()
	defer func() { <-m.handshakes }()
	_ = tc.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	var c net.Conn = tc
	if m.cfg.TLS != nil {
		sc, err := m.serverHandshake(tc)
		if err != nil {
			m.rejected.Add(1)
			if !m.isClosed() {
				m.logger.Warn("TLS handshake with peer failed; connection refused", "remote", tc.RemoteAddr().String(), "error", err)
			}
			_ = tc.Close()
			return
		}
		c = sc
	}
	var kind [1]byte
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		m.rejected.Add(1)
		if !m.isClosed() {
			m.logger.Warn("handshake failed; closing connection", "remote", c.RemoteAddr(), "error", err)
		}
		_ = c.Close()
		return
	}
	if m.cfg.TLS != nil && (kind[0] == KindRaft || kind[0] == KindRPC) {
		if _, err := c.Write(kind[:]); err != nil {
			m.rejected.Add(1)
			if !m.isClosed() {
				m.logger.Warn("handshake failed; closing connection", "remote", c.RemoteAddr(), "error", err)
			}
			_ = c.Close()
			return
		}
	}
	_ = tc.SetDeadline(time.Time{})
	var kl *kindListener
	switch kind[0] {
	case KindRaft:
		kl = m.raft
	case KindRPC:
		kl = m.rpc
	default:
		m.rejected.Add(1)
		m.logger.Warn("unknown connection kind; closing connection", "remote", c.RemoteAddr(), "kind", kind[0])
		_ = c.Close()
		return
	}
	if kl == m.raft {
		c = m.newRaftConn(c)
	}
	if err := kl.push(c); err != nil {
		m.dropped.Add(1)
		if errors.Is(err, ErrClosed) {
			m.logger.Debug("kind no longer routed; closing connection", "remote", c.RemoteAddr(), "kind", string(kind[:]))
			_ = c.Close()
			return
		}
		m.logger.Warn("cannot queue connection; closing it", "remote", c.RemoteAddr(), "kind", string(kind[:]), "error", err)
		_ = c.Close()
		return
	}
	m.routed.Add(1)
}

// raftConn is a connection handed to the Raft layer. Raft's transport
// closes it when the connection's handler returns (the Mux when it cannot
// hand it over); the first Close counts it out (WaitRaftConns). The Mux
// closing the underlying connection does not: its handler may still be
// running.
type raftConn struct {
	net.Conn
	m    *Mux
	once sync.Once
}

func (m *Mux) newRaftConn(c net.Conn) *raftConn {
	m.mu.Lock()
	if m.mu.raftOpen == 0 {
		m.mu.raftIdle = make(chan struct{})
	}
	m.mu.raftOpen++
	m.mu.Unlock()
	return &raftConn{Conn: c, m: m}
}

// NetConn returns the connection underneath (a *tls.Conn with TLS).
func (c *raftConn) NetConn() net.Conn { return c.Conn }

func (c *raftConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		m := c.m
		m.mu.Lock()
		if m.mu.raftOpen--; m.mu.raftOpen == 0 {
			close(m.mu.raftIdle)
		}
		m.mu.Unlock()
	})
	return err
}

// WaitRaftConns waits until every connection the Raft layer accepted has
// been closed by its user, or ctx ends. Raft's transport closes one when
// its handler returns, which may be after Raft shut down and after Close:
// a handler can still be writing to Raft's stores (a heartbeat carrying a
// new term makes Raft save it, and Raft panics if it cannot), so whoever
// closes those stores waits for this first (after closing Raft's transport
// and the Mux, which end the handlers).
func (m *Mux) WaitRaftConns(ctx context.Context) error {
	for {
		m.mu.Lock()
		open, idle := m.mu.raftOpen, m.mu.raftIdle
		m.mu.Unlock()
		if open == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("transport: %d Raft connections still open: %w", open, ctx.Err())
		}
	}
}

// errQueueFull is reported (and logged) when a per-kind queue is full.
var errQueueFull = errors.New("accept queue full")

// kindListener is the net.Listener of one connection kind: the Mux pushes
// routed conns into a bounded queue and Accept pops them.
type kindListener struct {
	m     *Mux
	kind  byte
	queue chan net.Conn
	done  chan struct{} // closed by Close

	mu struct {
		sync.Mutex
		closed bool // guarded by mu; push and Close serialise on it
	}
}

func newKindListener(m *Mux, kind byte, n int) *kindListener {
	return &kindListener{m: m, kind: kind, queue: make(chan net.Conn, n), done: make(chan struct{})}
}

// push queues c without blocking.
func (l *kindListener) push(c net.Conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	select {
	case l.queue <- c:
		return nil
	default:
		return errQueueFull
	}
}

// Accept returns the next routed conn; after Close it returns an error
// wrapping ErrClosed and net.ErrClosed.
func (l *kindListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("%w: %w", ErrClosed, net.ErrClosed)
	default:
	}
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("%w: %w", ErrClosed, net.ErrClosed)
	}
}

// Close stops routing this kind and closes the conns still queued. It is
// idempotent and leaves the Mux running.
func (l *kindListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil
	}
	l.mu.closed = true
	close(l.done)
	for {
		select {
		case c := <-l.queue:
			_ = c.Close()
		default:
			return nil
		}
	}
}

// Addr returns the Mux's advertised address.
func (l *kindListener) Addr() net.Addr { return l.m.addr }

// raftLayer adapts the KindRaft listener to raft.StreamLayer.
type raftLayer struct {
	*kindListener
}

var _ raft.StreamLayer = (*raftLayer)(nil)

// Dial implements raft.StreamLayer.
func (r *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.m.Dial(ctx, string(address), KindRaft)
}
