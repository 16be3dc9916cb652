package transport

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PacketFaults is an optional extension of Faults for datagrams (gossip
// packets). When the Faults given to NewGossipTransport implements it,
// PacketLink is asked once per packet instead of Link, so it may also drop
// packets at random. Streams always use Link: a stream is delivered whole or
// broken, never thinned out.
type PacketFaults interface {
	Faults
	PacketLink(fromAddr, toAddr string) (deliver bool, delay time.Duration)
}

// connTracker is implemented by fault networks that break established
// streams when a link is cut (FaultNetwork). track registers c and reports
// whether its link is still up; a cut that raced with the dial is caught
// either by track or by the network's own sweep.
type connTracker interface {
	track(c *faultConn) (up bool)
	untrack(c *faultConn)
}

// linkUp reports whether both directions between the members listening on a
// and b deliver: a stream needs both.
func linkUp(f Faults, a, b string) bool {
	ab, _ := f.Link(a, b)
	if !ab {
		return false
	}
	ba, _ := f.Link(b, a)
	return ba
}

// errLinkCut is what reads and writes on a stream broken by fault injection
// return. It wraps net.ErrClosed so callers treat it like any closed conn.
func errLinkCut(local, remote string) error {
	return fmt.Errorf("transport: link %s <-> %s cut by fault injection: %w", local, remote, net.ErrClosed)
}

// faultConn is a dialed stream subject to fault injection. The dialing side
// wraps its conn and knows both members' listen addresses (local from its
// configuration, remote as dialed), so it enforces both directions:
//
//   - Write waits Link(local, remote)'s delay first; Read, after data arrived,
//     waits Link(remote, local)'s delay before returning it. A delay thus
//     stalls the stream, it does not pipeline.
//   - If either direction is cut, the next Read or Write closes the conn;
//     a FaultNetwork also closes it at once when the cut is made.
//
// Deadlines set on the conn bound the delay waits.
type faultConn struct {
	net.Conn
	faults        Faults
	tracker       connTracker // nil unless faults implements it
	local, remote string

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	readDeadline  atomic.Int64 // unix nanos; 0 = none
	writeDeadline atomic.Int64 // unix nanos; 0 = none
}

// wrapFaultConn wraps c, dialed from the member listening on local to
// remote. It returns an error (and closes c) when the link was cut while the
// dial was in progress.
func wrapFaultConn(f Faults, local, remote string, c net.Conn) (net.Conn, error) {
	fc := &faultConn{
		Conn:   c,
		faults: f,
		local:  local,
		remote: remote,
		closed: make(chan struct{}),
	}
	if t, ok := f.(connTracker); ok {
		fc.tracker = t
		if !t.track(fc) {
			_ = fc.Close()
			return nil, fmt.Errorf("%w: %s -> %s cut by fault injection", ErrUnreachable, local, remote)
		}
	}
	return fc, nil
}

func (c *faultConn) Write(b []byte) (int, error) {
	if !linkUp(c.faults, c.local, c.remote) {
		_ = c.Close()
		return 0, errLinkCut(c.local, c.remote)
	}
	if _, d := c.faults.Link(c.local, c.remote); d > 0 {
		if err := c.wait(d, &c.writeDeadline); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	if !linkUp(c.faults, c.local, c.remote) {
		_ = c.Close()
		return 0, errLinkCut(c.local, c.remote)
	}
	if _, d := c.faults.Link(c.remote, c.local); d > 0 {
		// The data is already here: after the deadline, hand it over
		// anyway rather than lose it.
		_ = c.wait(d, &c.readDeadline)
	}
	return n, err
}

// wait sleeps d, returning early when the conn is closed or the deadline in
// dl passes.
func (c *faultConn) wait(d time.Duration, dl *atomic.Int64) error {
	timeout := false
	if ns := dl.Load(); ns != 0 {
		if left := time.Until(time.Unix(0, ns)); left < d {
			d, timeout = max(left, 0), true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		if timeout {
			return fmt.Errorf("transport: delayed by fault injection: %w", os.ErrDeadlineExceeded)
		}
		return nil
	case <-c.closed:
		return errLinkCut(c.local, c.remote)
	}
}

func (c *faultConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeErr = c.Conn.Close()
		if c.tracker != nil {
			c.tracker.untrack(c)
		}
	})
	return c.closeErr
}

func (c *faultConn) SetDeadline(t time.Time) error {
	c.readDeadline.Store(unixNanos(t))
	c.writeDeadline.Store(unixNanos(t))
	return c.Conn.SetDeadline(t)
}

func (c *faultConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNanos(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *faultConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNanos(t))
	return c.Conn.SetWriteDeadline(t)
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// trackedConn is a conn the Mux accepted or dialed; Mux.Close closes every
// one still open, so nothing the Mux handed out outlives it.
type trackedConn struct {
	net.Conn
	m         *Mux
	closeOnce sync.Once
	closeErr  error
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		c.m.untrack(c)
	})
	return c.closeErr
}
