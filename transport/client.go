package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Client defaults.
const (
	DefaultMaxConnsPerAddr = 2
	DefaultDialTimeout     = 5 * time.Second
)

// maxCallAttempts bounds how often Call moves to another connection when the
// one it picked broke before the request was queued (so it was surely not
// sent).
const maxCallAttempts = 3

// ClientOptions configures a Client; zero fields take the defaults.
type ClientOptions struct {
	// MaxConnsPerAddr is how many connections the client keeps per peer
	// (default DefaultMaxConnsPerAddr). Calls are pipelined over them.
	MaxConnsPerAddr int
	// DialTimeout bounds a dial (default DefaultDialTimeout); the call's
	// context may bound it further.
	DialTimeout time.Duration
	// MaxFrameSize bounds request and response frames (default
	// DefaultMaxFrameSize).
	MaxFrameSize int
	// Logger receives the client's logs; nil uses the Mux's.
	Logger *slog.Logger
}

// Client calls Handlers of other members over KindRPC connections. It is safe
// for concurrent use; calls to one address share a few pooled connections,
// many calls in flight on each.
type Client struct {
	mux    *Mux
	opts   ClientOptions
	logger *slog.Logger

	// wg counts the reader and writer goroutines of every connection. Add
	// only while holding mu with mu.closed false.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool                 // guarded by mu
		pools  map[string]*addrPool // by address; guarded by mu
	}
}

// addrPool is the connections to one address. Guarded by Client.mu.
type addrPool struct {
	conns   []*clientConn
	dialing chan struct{} // non-nil while a dial is in progress; closed when it ends
}

// NewClient returns a client that dials through m.Dial, so m's Faults apply
// and m.Close breaks its connections.
func NewClient(m *Mux, opts ClientOptions) *Client {
	if opts.MaxConnsPerAddr <= 0 {
		opts.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.MaxFrameSize <= 0 {
		opts.MaxFrameSize = DefaultMaxFrameSize
	}
	if opts.Logger == nil {
		opts.Logger = m.logger
	}
	c := &Client{mux: m, opts: opts, logger: opts.Logger.With("component", "transport.client")}
	c.mu.pools = make(map[string]*addrPool)
	return c
}

// Call sends method with req (msgpack-encoded; a msgpack.RawMessage is sent as
// it is, already encoded; nil sends an empty body) to
// the Handler at addr and decodes the response into resp (a pointer; nil
// discards it). ctx's deadline travels with the request and bounds the
// handler; when it passes first, Call returns an error wrapping ErrTimeout
// and context.DeadlineExceeded. A handler error comes back as *RemoteError.
// Errors wrapping ErrUnreachable were surely not delivered; ErrConnLost and
// ErrTimeout are indeterminate.
func (c *Client) Call(ctx context.Context, addr, method string, req, resp any) error {
	if err := ctx.Err(); err != nil {
		return callCtxErr(method, addr, err)
	}
	var body []byte
	if raw, ok := req.(msgpack.RawMessage); ok {
		body = raw // encoded by the caller (e.g. into a buffer of the right size)
	} else if req != nil {
		var err error
		if body, err = msgpack.Marshal(req); err != nil {
			return fmt.Errorf("transport: encode request of %s: %w", method, err)
		}
	}
	r := request{Method: method, Body: body}
	if dl, ok := ctx.Deadline(); ok {
		r.Deadline = dl.UnixNano()
	}
	var (
		res callResult
		err error
	)
	for range maxCallAttempts {
		var cc *clientConn
		if cc, err = c.conn(ctx, addr); err != nil {
			return err
		}
		res, err = cc.roundTrip(ctx, &r)
		if !errors.Is(err, errNotSent) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, errNotSent) {
			// Every conn tried broke before the request was queued.
			return fmt.Errorf("%w: call %s on %s: %w", ErrUnreachable, method, addr, err)
		}
		return err
	}
	if res.resp.Code != "" {
		return &RemoteError{Code: res.resp.Code, Message: res.resp.Message}
	}
	if resp != nil {
		if err := msgpack.Unmarshal(res.resp.Body, resp); err != nil {
			return fmt.Errorf("transport: decode response of %s: %w", method, err)
		}
	}
	return nil
}

// callCtxErr wraps a context error: a deadline also wraps ErrTimeout.
func callCtxErr(method, addr string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: call %s on %s: %w", ErrTimeout, method, addr, err)
	}
	return fmt.Errorf("transport: call %s on %s: %w", method, addr, err)
}

// Close fails every call in flight with ErrClosed, closes every connection
// and waits for their goroutines. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	var conns []*clientConn
	for _, p := range c.mu.pools {
		conns = append(conns, p.conns...)
	}
	c.mu.pools = map[string]*addrPool{}
	c.mu.Unlock()
	for _, cc := range conns {
		cc.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// conn returns a live connection to addr: the least busy one, or a new one
// while the pool is not full and every pooled conn has calls in flight.
func (c *Client) conn(ctx context.Context, addr string) (*clientConn, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		p := c.mu.pools[addr]
		if p == nil {
			p = &addrPool{}
			c.mu.pools[addr] = p
		}
		var best *clientConn
		for _, cc := range p.conns {
			if best == nil || cc.inflight.Load() < best.inflight.Load() {
				best = cc
			}
		}
		full := len(p.conns) >= c.opts.MaxConnsPerAddr
		if best != nil && (full || best.inflight.Load() == 0 || p.dialing != nil) {
			c.mu.Unlock()
			return best, nil
		}
		if wait := p.dialing; wait != nil {
			// No conn yet and someone is dialing: wait for that dial.
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, callCtxErr("dial", addr, ctx.Err())
			}
		}
		done := make(chan struct{})
		p.dialing = done
		c.mu.Unlock()

		cc, err := c.dial(ctx, addr)

		c.mu.Lock()
		p.dialing = nil
		close(done)
		if err == nil {
			if c.mu.closed {
				err = ErrClosed
			} else {
				p.conns = append(p.conns, cc)
				c.wg.Add(2)
				go cc.readLoop()
				go cc.writeLoop()
			}
		}
		c.mu.Unlock()
		if err != nil {
			if cc != nil {
				_ = cc.conn.Close()
			}
			if best != nil {
				return best, nil
			}
			return nil, err
		}
		return cc, nil
	}
}

// dial opens a KindRPC connection to addr through the Mux.
func (c *Client) dial(ctx context.Context, addr string) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	conn, err := c.mux.Dial(ctx, addr, KindRPC)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{
		c:      c,
		addr:   addr,
		conn:   conn,
		out:    make(chan []byte, 64),
		broken: make(chan struct{}),
	}
	cc.mu.pending = make(map[uint64]chan callResult)
	return cc, nil
}

// remove drops cc from its pool (it broke).
func (c *Client) remove(cc *clientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.pools[cc.addr]
	if p == nil {
		return
	}
	for i, x := range p.conns {
		if x == cc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if len(p.conns) == 0 && p.dialing == nil {
		delete(c.mu.pools, cc.addr)
	}
}

// errNotSent marks a call whose conn broke before the request was queued.
var errNotSent = errors.New("connection broke before the request was sent")

type callResult struct {
	resp response
	err  error
}

// clientConn is one pooled connection: a reader goroutine matching
// responses to pending calls by ID, and a writer goroutine sending queued
// request frames.
type clientConn struct {
	c    *Client
	addr string
	conn net.Conn

	nextID   atomic.Uint64
	inflight atomic.Int64
	out      chan []byte   // request frames for the writer
	broken   chan struct{} // closed by fail

	failOnce sync.Once

	mu struct {
		sync.Mutex
		err     error                      // why the conn broke; guarded by mu
		pending map[uint64]chan callResult // calls awaiting a response; nil once broken; guarded by mu
	}
}

// roundTrip sends r (with a fresh ID) and waits for its response.
func (cc *clientConn) roundTrip(ctx context.Context, r *request) (callResult, error) {
	cc.inflight.Add(1)
	defer cc.inflight.Add(-1)
	req := *r
	req.ID = cc.nextID.Add(1)
	frame, err := appendRequestFrame(make([]byte, 0, len(req.Body)+len(req.Method)+48), &req, cc.c.opts.MaxFrameSize)
	if err != nil {
		return callResult{}, fmt.Errorf("transport: call %s on %s: %w", r.Method, cc.addr, err)
	}
	ch := make(chan callResult, 1)
	cc.mu.Lock()
	if cc.mu.pending == nil {
		err := cc.mu.err
		cc.mu.Unlock()
		return callResult{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	cc.mu.pending[req.ID] = ch
	cc.mu.Unlock()

	select {
	case cc.out <- frame:
	case <-cc.broken:
		cc.forget(req.ID)
		return callResult{}, fmt.Errorf("%w: %w", errNotSent, cc.brokenErr())
	case <-ctx.Done():
		cc.forget(req.ID)
		return callResult{}, callCtxErr(r.Method, cc.addr, ctx.Err())
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return callResult{}, fmt.Errorf("%w: call %s on %s: %w", ErrConnLost, r.Method, cc.addr, res.err)
		}
		return res, nil
	case <-ctx.Done():
		// The server may still run it; its response will be dropped.
		cc.forget(req.ID)
		return callResult{}, callCtxErr(r.Method, cc.addr, ctx.Err())
	}
}

func (cc *clientConn) forget(id uint64) {
	cc.mu.Lock()
	delete(cc.mu.pending, id)
	cc.mu.Unlock()
}

func (cc *clientConn) brokenErr() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.mu.err
}

// fail breaks the conn once: every pending call gets err, the conn is closed
// and removed from the pool, and both goroutines stop.
func (cc *clientConn) fail(err error) {
	cc.failOnce.Do(func() {
		cc.c.remove(cc) // first, so no new call picks this conn
		cc.mu.Lock()
		cc.mu.err = err
		pending := cc.mu.pending
		cc.mu.pending = nil
		cc.mu.Unlock()
		close(cc.broken)
		_ = cc.conn.Close()
		for _, ch := range pending {
			ch <- callResult{err: err} // buffered; each ch gets one result
		}
	})
}

// readLoop reads response frames and completes the matching calls.
func (cc *clientConn) readLoop() {
	defer cc.c.wg.Done()
	br := bufio.NewReaderSize(cc.conn, 64<<10)
	for {
		frame, err := readFrame(br, cc.c.opts.MaxFrameSize)
		if err != nil {
			cc.fail(err)
			return
		}
		resp, err := decodeResponse(frame)
		if err != nil {
			cc.c.logger.Warn("malformed RPC response; closing connection", "addr", cc.addr, "error", err)
			cc.fail(err)
			return
		}
		cc.mu.Lock()
		ch := cc.mu.pending[resp.ID]
		delete(cc.mu.pending, resp.ID)
		cc.mu.Unlock()
		if ch != nil {
			ch <- callResult{resp: resp}
		}
	}
}

// writeLoop is the only writer of the conn.
func (cc *clientConn) writeLoop() {
	defer cc.c.wg.Done()
	if err := writeFrames(cc.broken, cc.conn, cc.out); err != nil {
		cc.fail(err)
	}
}
