// Package connlimit bounds the connections a listener hands out. A
// connection over the limit is accepted, given to a reject function (which
// writes the protocol's "too busy" answer: an HTTP 503 with Retry-After, a
// RESP error) and closed, so that a client learns to back off instead of
// piling up in the kernel's accept queue, and the server's memory and
// goroutines stay bounded however many clients connect.
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// rejectTimeout bounds the write of a reject answer: a client that does
// not read cannot hold the accept loop.
const rejectTimeout = 2 * time.Second

// MaxRejecting bounds the reject answers in flight; connections over the
// limit beyond it are closed without an answer.
const MaxRejecting = 256

// Listener wraps a net.Listener with a connection limit.
type Listener struct {
	net.Listener
	max    int64
	reject func(net.Conn)

	open      atomic.Int64
	rejected  atomic.Uint64
	rejecting atomic.Int64   // reject answers in flight
	wg        sync.WaitGroup // reject goroutines
}

// New returns ln limited to max open connections (max ≤ 0: no limit).
// reject, if not nil, is called on a connection over the limit (on its own
// goroutine, with a write deadline set) before it is closed.
func New(ln net.Listener, max int, reject func(net.Conn)) *Listener {
	return &Listener{Listener: ln, max: int64(max), reject: reject}
}

// Accept returns the next connection within the limit; connections over
// it are rejected and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max <= 0 || l.open.Add(1) <= l.max {
			if l.max <= 0 {
				l.open.Add(1)
			}
			return &conn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.rejected.Add(1)
		if l.rejecting.Add(1) > MaxRejecting {
			// A flood: no answer, so that rejecting stays bounded too.
			l.rejecting.Add(-1)
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.rejecting.Add(-1)
			if l.reject != nil {
				_ = c.SetWriteDeadline(time.Now().Add(rejectTimeout))
				l.reject(c)
			}
			_ = c.Close()
		}()
	}
}

// Close closes the listener and waits for the reject answers in flight.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}

// Open returns the connections handed out and not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Rejected returns how many connections were refused over the limit.
func (l *Listener) Rejected() uint64 { return l.rejected.Load() }

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Unwrap returns the connection the listener accepted (the same bytes:
// this wrapper only counts).
func (c *conn) Unwrap() net.Conn { return c.Conn }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
