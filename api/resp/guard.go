package resp

import (
	"errors"
	"net"
	"strconv"
	"time"
)

// maxInline bounds an inline (telnet-style) command line, as Redis does.
const maxInline = 64 << 10

// maxDigits bounds the digits of a multi-bulk count or bulk length.
const maxDigits = 19

// errFramingClosed ends a connection whose input broke the framing rules
// (the client already got an error reply).
var errFramingClosed = errors.New("resp: protocol error")

// guard checks the RESP framing of a byte stream incrementally, before
// redcon's parser sees it, so that redcon only ever parses well-formed,
// bounded commands (its parser trusts counts and lengths).
type guard struct {
	maxArgs int
	maxBulk int

	state  int
	num    int64 // the count or length being read
	digits int
	args   int   // bulk strings left in the current command
	body   int64 // body bytes left in the current bulk string
	inline int   // bytes of the current inline line
}

const (
	gStart = iota
	gCount
	gCountLF
	gDollar
	gLen
	gLenLF
	gBody
	gBodyCR
	gBodyLF
	gInline
)

// check consumes p and returns how many leading bytes are well-formed and
// the problem with the next one, if any.
func (g *guard) check(p []byte) (int, string) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch g.state {
		case gStart:
			if c == '*' {
				g.state, g.num, g.digits = gCount, 0, 0
				continue
			}
			g.state, g.inline = gInline, 0
			i-- // count this byte as part of the line
		case gInline:
			if c == '\n' {
				g.state = gStart
				continue
			}
			g.inline++
			if g.inline > maxInline {
				return i, "too big inline request"
			}
		case gCount, gLen:
			if c == '\r' {
				if g.digits == 0 {
					return i, g.what("length")
				}
				g.state++ // gCountLF or gLenLF
				continue
			}
			if c < '0' || c > '9' || g.digits >= maxDigits {
				return i, g.what("length")
			}
			g.num = g.num*10 + int64(c-'0')
			g.digits++
			if g.state == gCount && g.num > int64(g.maxArgs) {
				return i, "invalid multibulk length (more than " + strconv.Itoa(g.maxArgs) + " arguments)"
			}
			if g.state == gLen && g.num > int64(g.maxBulk) {
				return i, "invalid bulk length (more than " + strconv.Itoa(g.maxBulk) + " bytes)"
			}
		case gCountLF:
			if c != '\n' || g.num < 1 {
				return i, "invalid multibulk length"
			}
			g.args, g.state = int(g.num), gDollar
		case gDollar:
			if c != '$' {
				return i, "expected '$', got '" + printable(c) + "'"
			}
			g.state, g.num, g.digits = gLen, 0, 0
		case gLenLF:
			if c != '\n' {
				return i, "invalid bulk length"
			}
			g.body, g.state = g.num, gBody
			if g.body == 0 {
				g.state = gBodyCR
			}
		case gBody:
			n := min(int64(len(p)-i), g.body)
			g.body -= n
			i += int(n) - 1
			if g.body == 0 {
				g.state = gBodyCR
			}
		case gBodyCR:
			if c != '\r' {
				return i, "invalid bulk length"
			}
			g.state = gBodyLF
		case gBodyLF:
			if c != '\n' {
				return i, "invalid bulk length"
			}
			g.args--
			if g.args == 0 {
				g.state = gStart
			} else {
				g.state = gDollar
			}
		}
	}
	return len(p), ""
}

func (g *guard) what(s string) string {
	if g.state == gCount {
		return "invalid multibulk " + s
	}
	return "invalid bulk " + s
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(c)
	}
	return "\\x" + strconv.FormatUint(uint64(c), 16)
}

// guardedConn runs every byte read through a guard. On a framing error it
// hands redcon the well-formed bytes before it, then replies with the
// error itself and fails the next read, which makes redcon close the
// connection after answering the commands before the error.
type guardedConn struct {
	net.Conn
	g       guard
	pending string // a framing error to report on the next Read
	failed  bool
	// waiter, if not nil, reads for Conn through the server's ready
	// queue (readyqueue_linux.go) until it stops (queueStopped).
	waiter       *readWaiter
	queueStopped bool
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.failed {
		return 0, errFramingClosed
	}
	if c.pending != "" {
		return 0, c.fail()
	}
	var n int
	var err error
	if c.waiter != nil && !c.queueStopped {
		if n, err = c.waiter.read(p); errors.Is(err, errQueueStopped) {
			c.queueStopped = true
		}
	}
	if c.waiter == nil || c.queueStopped {
		n, err = c.Conn.Read(p)
	}
	if n > 0 {
		ok, problem := c.g.check(p[:n])
		if problem != "" {
			c.pending = problem
			if ok == 0 {
				return 0, c.fail()
			}
			return ok, nil
		}
	}
	return n, err
}

func (c *guardedConn) fail() error {
	c.failed = true
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write([]byte("-ERR Protocol error: " + sanitize(c.pending) + "\r\n"))
	return errFramingClosed
}

// guardedListener wraps accepted connections in guards.
type guardedListener struct {
	net.Listener
	maxArgs, maxBulk int
}

func (l *guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c, g: guard{maxArgs: l.maxArgs, maxBulk: l.maxBulk}}, nil
}
