package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"
)

// Handler serves cluster RPC requests.
//
// ServeRPC is called in its own goroutine for each request, concurrently with
// other requests of the same and other connections. ctx carries the caller's
// deadline and is canceled when the connection breaks or the Mux closes;
// ServeRPC must return promptly after that (Mux.Close waits for it). body is
// the msgpack-encoded request and the returned bytes are sent back as the
// msgpack-encoded response. To send a stable error code, return a
// RemoteError; any other error arrives as code CodeInternal. Handlers must
// not panic.
type Handler interface {
	ServeRPC(ctx context.Context, method string, body []byte) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, method string, body []byte) ([]byte, error)

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, method string, body []byte) ([]byte, error) {
	return f(ctx, method, body)
}

// ServeRPC starts serving KindRPC connections with h. Only the first call
// has an effect (later ones are logged and ignored), as has a call after
// Close. Until ServeRPC is called, KindRPC connections wait in their accept
// queue. Every goroutine it starts is stopped by Mux.Close.
func (m *Mux) ServeRPC(h Handler) {
	m.mu.Lock()
	if m.mu.serving {
		m.mu.Unlock()
		m.logger.Error("ServeRPC called twice; ignoring the second handler")
		return
	}
	m.mu.serving = true
	m.mu.Unlock()
	m.goIfOpen(func() { m.serveRPC(h) })
}

// serveRPC accepts KindRPC connections until the listener closes.
func (m *Mux) serveRPC(h Handler) {
	for {
		c, err := m.rpc.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1) // counted: serveRPC holds wg
		go func() {
			defer m.wg.Done()
			m.serveConn(h, c)
		}()
	}
}

// serverConn is the server side of one RPC connection.
type serverConn struct {
	m      *Mux
	conn   net.Conn
	h      Handler
	logger *slog.Logger
	ctx    context.Context // canceled when the conn breaks or the Mux closes
	cancel context.CancelFunc
	out    chan []byte // response frames for the writer
}

// serveConn is the reader of one RPC connection: it reads request frames
// and runs them on the conn's workers, at most MaxInflight at once. It
// returns after the conn broke and every goroutine of the conn finished.
func (m *Mux) serveConn(h Handler, c net.Conn) {
	sc := &serverConn{
		m:      m,
		conn:   c,
		h:      h,
		logger: m.logger.With("remote", c.RemoteAddr().String()),
		out:    make(chan []byte, m.cfg.MaxInflight),
	}
	sc.ctx, sc.cancel = context.WithCancel(m.baseCtx)
	defer sc.cancel()

	var wg sync.WaitGroup // the writer and the handlers of this conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc.writeLoop()
	}()

	// Requests run on workers that live as long as the conn (at most
	// MaxInflight, started as needed): a goroutine per request would grow
	// a fresh stack through decoding and the handler every time (about a
	// tenth of a busy member's CPU).
	work := make(chan request)
	workers := 0
	worker := func(first request) {
		defer wg.Done()
		sc.handle(first)
		for req := range work {
			sc.handle(req)
		}
	}
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		frame, err := readFrame(br, m.cfg.MaxFrameSize)
		if err != nil {
			sc.logReadError(err)
			break
		}
		req, err := decodeRequest(frame)
		if err != nil {
			sc.logger.Warn("malformed RPC frame; closing connection", "error", err)
			break
		}
		if sc.ctx.Err() != nil {
			break
		}
		select {
		case work <- req: // an idle worker took it
			continue
		default:
		}
		if workers < m.cfg.MaxInflight {
			workers++
			wg.Add(1)
			go worker(req)
			continue
		}
		select {
		case work <- req: // backpressure: at MaxInflight busy, stop reading
		case <-sc.ctx.Done():
		}
		if sc.ctx.Err() != nil {
			break
		}
	}
	close(work)
	sc.cancel()
	_ = c.Close()
	wg.Wait()
}

func (sc *serverConn) logReadError(err error) {
	switch {
	case sc.ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		sc.logger.Debug("RPC connection closed", "error", err)
	default:
		sc.logger.Warn("reading RPC frame failed; closing connection", "error", err)
	}
}

// handle runs one request and queues its response.
func (sc *serverConn) handle(req request) {
	ctx := sc.ctx
	if req.Deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, req.Deadline))
		defer cancel()
	}
	resp := response{ID: req.ID}
	if err := ctx.Err(); err != nil {
		// Expired before it started (or the conn is going away): do not
		// run the handler at all.
		resp.Code, resp.Message = errorCode(err)
	} else if body, err := sc.h.ServeRPC(ctx, req.Method, req.Body); err != nil {
		resp.Code, resp.Message = errorCode(err)
	} else {
		resp.Body = body
	}
	frame, err := appendResponseFrame(nil, &resp, sc.m.cfg.MaxFrameSize)
	if err != nil {
		sc.logger.Warn("RPC response too large", "method", req.Method, "error", err)
		resp = response{ID: req.ID, Code: CodeFrameTooLarge, Message: err.Error()}
		if frame, err = appendResponseFrame(frame[:0], &resp, sc.m.cfg.MaxFrameSize); err != nil {
			return // MaxFrameSize is too small for any response; the caller times out
		}
	}
	select {
	case sc.out <- frame:
	case <-sc.ctx.Done():
	}
}

// writeLoop is the only writer of the conn: it writes queued response
// frames, batching those already queued into one flush.
func (sc *serverConn) writeLoop() {
	if err := writeFrames(sc.ctx.Done(), sc.conn, sc.out); err != nil && sc.ctx.Err() == nil {
		sc.logger.Warn("writing RPC response failed; closing connection", "error", err)
	}
	sc.cancel()
	_ = sc.conn.Close()
}

// writeFrames writes frames from out to c until done is closed or a write
// fails. Frames already queued are coalesced into one flush, each flush
// bounded by writeTimeout.
func writeFrames(done <-chan struct{}, c net.Conn, out <-chan []byte) error {
	bw := bufio.NewWriterSize(c, 64<<10)
	for {
		var f []byte
		select {
		case f = <-out:
		case <-done:
			return nil
		}
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := bw.Write(f); err != nil {
			return err
		}
		yielded := false
	batch:
		for {
			select {
			case f = <-out:
				if _, err := bw.Write(f); err != nil {
					return err
				}
			default:
				if !yielded {
					// Let the goroutines about to queue a frame do so:
					// one write system call then carries them all (under
					// load, most frames would otherwise leave one by one).
					yielded = true
					runtime.Gosched()
					continue
				}
				break batch
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}
