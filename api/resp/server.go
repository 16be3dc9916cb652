package resp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olric-raft/olric-raft/internal/workpool"

	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Cluster is what the RESP server needs of a node (*node.Node has it).
// When the Cluster also has DeleteMany(ctx, dmap, keys) (int, error), DEL
// and DM.DEL use it; otherwise they delete key by key.
type Cluster interface {
	// Do runs one key operation, routed to the partition's primary.
	Do(ctx context.Context, req *dataplane.Request) (*dataplane.Response, error)
	// Scan returns a page of keys of dmap and the next cursor ("" at the end).
	Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error)
	// Destroy removes every key of dmap.
	Destroy(ctx context.Context, dmap string) error
	// Routing returns the committed routing table.
	Routing() *metadata.RoutingTable
	// Members returns the members and the routing version they come from.
	Members() ([]node.MemberInfo, uint64)
	// Status returns the node's view of itself and of the cluster.
	Status() node.Status
}

// deleteManyer is the optional DeleteMany of a Cluster.
type deleteManyer interface {
	DeleteMany(ctx context.Context, dmap string, keys []string) (int, error)
}

// Defaults of Options.
const (
	DefaultMaxArgs        = 1024
	DefaultMaxBulk        = dataplane.DefaultMaxValueLen + 64<<10
	DefaultRequestTimeout = 15 * time.Second
)

// Options tunes a Server. The zero value is usable.
type Options struct {
	// Logger receives panics and unmapped errors; nil: slog.Default().
	Logger *slog.Logger
	// MaxArgs bounds the arguments of one command (with its name);
	// 0: DefaultMaxArgs.
	MaxArgs int
	// MaxBulk bounds one bulk string; 0: DefaultMaxBulk.
	MaxBulk int
	// RequestTimeout is the deadline of each command; 0:
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Metrics, if set, receives every command: its lower-case name (one of
	// CommandNames, or another for an unknown command), whether the reply
	// was an error, and its latency (metrics.Registry.RESP implements it).
	Metrics Observer
	// Auth, if set, turns authentication on: a connection must AUTH with
	// a token before anything but AUTH, HELLO and QUIT, and may then run
	// the commands its token's role allows (auth.go, commandRoles). Nil:
	// no authentication (AUTH answers like redis-server without a
	// password).
	Auth *auth.Store
}

// Server is a RESP front end of a Cluster.
type Server struct {
	c    Cluster
	opts Options
	log  *slog.Logger
	// yieldBeforeWrite: the process runs Go code on one thread at a time
	// (GOMAXPROCS 1), so a connection lets the others whose input is
	// ready run before it writes its replies (clientconn.go).
	yieldBeforeWrite bool
	// ready, if not nil, wakes the connections in the order their input
	// arrived (readyqueue_linux.go); Serve starts it when
	// yieldBeforeWrite (one thread: the order matters) or useReadyQueue.
	ready         *readyQueue
	useReadyQueue bool

	base   context.Context // cancelled by Close: aborts running commands
	cancel context.CancelFunc
	// clock is the time in unix nanoseconds, kept by runClock while Serve
	// runs (0 before): commands read it instead of the system clock.
	clock atomic.Int64
	// workers run the commands of pipelines run concurrently (pipeline.go).
	workers *workpool.Pool

	mu      sync.Mutex
	ln      net.Listener
	closed  bool
	clients map[*clientConn]struct{}
	conns   sync.WaitGroup // connection handlers
	serving sync.WaitGroup // Serve calls
	cursors cursorTable
}

// New returns a Server for c; start it with Serve or ListenAndServe.
func New(c Cluster, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxArgs <= 0 {
		opts.MaxArgs = DefaultMaxArgs
	}
	if opts.MaxBulk <= 0 {
		opts.MaxBulk = DefaultMaxBulk
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{c: c, opts: opts, log: opts.Logger, base: ctx, cancel: cancel,
		workers: workpool.New(maxWorkers), yieldBeforeWrite: runtime.GOMAXPROCS(0) == 1}
}

// ErrServerClosed is returned by Serve and ListenAndServe after Close.
var ErrServerClosed = errors.New("resp: server closed")

// ListenAndServe listens on addr and serves until Close.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve serves connections accepted on ln until Close (it closes ln).
// It returns ErrServerClosed after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("resp: already serving")
	}
	s.ln = ln
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	gl := &guardedListener{Listener: ln, maxArgs: s.opts.MaxArgs, maxBulk: s.opts.MaxBulk}
	if s.yieldBeforeWrite || s.useReadyQueue {
		s.mu.Lock()
		s.ready = newReadyQueue()
		s.mu.Unlock()
	}
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		s.runClock(stopClock)
	}()
	defer func() {
		close(stopClock)
		<-clockDone
	}()
	err := s.acceptLoop(gl)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	return err
}

// acceptLoop accepts connections until ln fails for good (Close closes
// it), each served on its own goroutine. A temporary failure (out of file
// descriptors) is retried after a pause that doubles up to a second.
func (s *Server) acceptLoop(ln net.Listener) error {
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				s.log.Warn("resp: accept failed; retrying", "error", err, "pause", pause)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		if gc, ok := nc.(*guardedConn); ok {
			gc.waiter = s.ready.register(gc.Conn)
		}
		c := newClientConn(nc)
		if !s.track(c) {
			_ = nc.Close()
			continue
		}
		go func() {
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

// isTemporary reports an accept error worth retrying (EMFILE and the
// like report Temporary).
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// track registers a new connection; false once the server is closed.
func (s *Server) track(c *clientConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.clients == nil {
		s.clients = make(map[*clientConn]struct{})
	}
	s.clients[c] = struct{}{}
	s.conns.Add(1)
	return true
}

// untrack closes c and releases what it holds.
func (s *Server) untrack(c *clientConn) {
	unregister(c)
	_ = c.nc.Close()
	s.release(c)
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.conns.Done()
}

// unregister takes c off the ready queue, if it is on it.
func unregister(c *clientConn) {
	if gc, ok := c.nc.(*guardedConn); ok && gc.waiter != nil {
		gc.waiter.unregister()
	}
}

// Addr returns the listener's address, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, closes every connection, aborts running commands
// and waits for the connection handlers to return. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	s.cancel()
	var err error
	if ln != nil {
		if err = ln.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	}
	s.serving.Wait()
	// Closing a connection fails its handler's read or write.
	s.mu.Lock()
	for c := range s.clients {
		_ = c.nc.Close()
		unregister(c) // ends a wait for input
	}
	ready := s.ready
	s.mu.Unlock()
	s.conns.Wait()
	if ready != nil {
		ready.close()
	}
	s.workers.Stop() // no connection is left to submit a command
	return err
}

// handle runs one command of conn (serveConn calls it in order).
func (s *Server) handle(conn *clientConn, args [][]byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("resp: panic in a command", "panic", r, "command", commandName(args))
			conn.WriteError("ERR internal error")
		}
	}()
	if batch, many := s.pipelineBatch(conn, args); many {
		s.runMany(conn, batch) // pipeline.go
		return
	} else if batch != nil {
		s.runParallel(conn, batch)
		return
	}
	st := stateOf(conn)
	var c authConn = conn
	if s.opts.Metrics != nil {
		// One clock read per command: a command starts when the one
		// before it on this connection ended (they run back to back),
		// or when its batch was read (serveConn clears lastMono).
		start := conn.lastMono
		if start == 0 {
			start = monoNanos()
		}
		st.observed.clientConn, st.observed.failed = conn, false
		c = &st.observed
		defer func() {
			name := ""
			if len(args) > 0 {
				name = commandName32(args[0])
			}
			end := monoNanos()
			conn.lastMono = end
			s.opts.Metrics.Observe(name, st.observed.failed, time.Duration(end-start))
		}()
	}
	if s.opts.Auth != nil && s.gate(c, args) {
		return // answered: AUTH, or a refusal (auth.go)
	}
	if s.exec(s.requestContext(c), c, args) {
		conn.Close()
	}
}

func commandName(args [][]byte) string {
	if len(args) == 0 {
		return ""
	}
	return fmt.Sprintf("%.64q", args[0])
}

// monoBase is the origin of monoNanos.
var monoBase = time.Now()

// monoNanos returns nanoseconds on the monotonic clock: one clock read,
// where time.Now reads two (the wall clock too). Command latencies use it.
func monoNanos() int64 { return int64(time.Since(monoBase)) }
