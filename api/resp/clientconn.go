package resp

import (
	"io"
	"net"
	"runtime"

	"github.com/tidwall/redcon"
)

// A client connection is served by one goroutine (serveConn): it reads
// what the client sent into a buffer kept for the connection, splits it
// into every complete command with redcon.ReadNextCommand (the arguments
// view the buffer, their slices come from a kept slab), runs them in
// order (or a batch concurrently, pipeline.go), appends their replies to a
// kept output buffer with redcon's Append functions, and writes that
// buffer once the commands read so far are answered. A busy connection
// thus allocates nothing for framing; redcon's own server loop copied
// every command and allocated its argument slices (two to three
// allocations per command, a third of a member's allocations under
// redis-benchmark -P 16).
//
// The arguments are valid only while their command runs: nothing a
// command hands to the data plane keeps them (it copies keys into
// strings, and a stored value is copied into its entry before
// replication sees it).

// Buffer sizes of a connection.
const (
	// connReadBuffer is the initial read buffer; it doubles while one
	// command does not fit, and returns to this size once empty.
	connReadBuffer = 16 << 10
	// connKeepReadBuffer: a larger read buffer is dropped once empty.
	connKeepReadBuffer = 256 << 10
	// connFlushAt: replies are written early once this much is pending.
	connFlushAt = 256 << 10
	// connKeepWriteBuffer: a larger output buffer is dropped once written.
	connKeepWriteBuffer = 256 << 10
)

// clientConn is one client connection. Commands run on its goroutine (or,
// in a concurrent batch, on workers while it waits), so its fields need no
// lock; only Server.Close touches nc from elsewhere (closing it).
type clientConn struct {
	nc net.Conn

	rbuf       []byte
	start, end int        // unparsed input: rbuf[start:end]
	slab       [][]byte   // backing array of the parsed commands' arguments
	cmds       [][][]byte // commands parsed and not yet run
	out        []byte     // replies not yet written
	werr       error      // the first write error; later writes are dropped
	closing    bool       // Close was called: stop after the current command
	protoErr   string     // a protocol error after c.cmds: answered, then the end
	lastMono   int64      // monoNanos when the last command ended; 0: read the clock
	state      any        // Context / SetContext
	cmdBuf     [][][]byte // backing array of cmds (which is consumed from the front)
	batch      [][][]byte // kept for pipelineBatch
	many       manyState  // kept for runMany
}

func newClientConn(nc net.Conn) *clientConn {
	return &clientConn{nc: nc, rbuf: make([]byte, connReadBuffer), slab: make([][]byte, 0, 64)}
}

// The replier and authConn methods.

func (c *clientConn) WriteString(s string)     { c.out = redcon.AppendString(c.out, s) }
func (c *clientConn) WriteBulk(b []byte)       { c.out = redcon.AppendBulk(c.out, b) }
func (c *clientConn) WriteBulkString(s string) { c.out = redcon.AppendBulkString(c.out, s) }
func (c *clientConn) WriteInt(n int)           { c.out = redcon.AppendInt(c.out, int64(n)) }
func (c *clientConn) WriteInt64(n int64)       { c.out = redcon.AppendInt(c.out, n) }
func (c *clientConn) WriteError(msg string)    { c.out = redcon.AppendError(c.out, msg) }
func (c *clientConn) WriteArray(n int)         { c.out = redcon.AppendArray(c.out, n) }
func (c *clientConn) WriteNull()               { c.out = redcon.AppendNull(c.out) }
func (c *clientConn) Context() any             { return c.state }
func (c *clientConn) SetContext(v any)         { c.state = v }

// Close makes the connection end once the current command's reply is
// written (QUIT).
func (c *clientConn) Close() { c.closing = true }

// peekPipeline returns the commands read after the current one.
func (c *clientConn) peekPipeline() [][][]byte { return c.cmds }

// takePipeline returns the commands read after the current one and takes
// them off the connection.
func (c *clientConn) takePipeline() [][][]byte {
	cmds := c.cmds
	c.cmds = c.cmds[len(c.cmds):]
	return cmds
}

// flush writes the pending replies.
func (c *clientConn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.out) > 0 {
		_, c.werr = c.nc.Write(c.out)
	}
	if cap(c.out) > connKeepWriteBuffer {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return c.werr
}

// parse splits the buffered input into complete commands (c.cmds), up to
// a protocol error (c.protoErr), which ends the connection once the
// commands before it are answered.
func (c *clientConn) parse() {
	c.slab = c.slab[:0]
	c.cmds = c.cmdBuf[:0]
	defer func() { c.cmdBuf = c.cmds[:0] }()
	for c.start < c.end {
		in := c.rbuf[c.start:c.end]
		if in[0] == '$' {
			// redcon reads a '$' line as Tile38's protocol; RESP2 has
			// no such request.
			c.protoErr = "ERR Protocol error: expected '*', got '$'"
			return
		}
		free := c.slab[len(c.slab):cap(c.slab)]
		complete, args, _, rest, err := redcon.ReadNextCommand(in, free)
		if err != nil {
			c.protoErr = "ERR " + err.Error()
			return
		}
		if !complete {
			break
		}
		c.start += len(in) - len(rest)
		if len(args) == 0 {
			continue // an empty inline line
		}
		switch {
		case len(free) > 0 && &free[0] == &args[0]:
			// The arguments were appended into the slab.
			n := len(c.slab)
			c.slab = c.slab[:n+len(args)]
			args = c.slab[n : n+len(args) : n+len(args)]
		case len(args) > len(free):
			// They did not fit and got their own array: a larger slab
			// for the next time (the commands parsed so far keep the
			// old one).
			c.slab = make([][]byte, 0, 2*cap(c.slab)+len(args))
		}
		// Otherwise (an inline command) redcon made them an array.
		c.cmds = append(c.cmds, args)
	}
}

// fill reads more input, after making room for it.
func (c *clientConn) fill() error {
	switch {
	case c.start == c.end:
		c.start, c.end = 0, 0
		if len(c.rbuf) > connKeepReadBuffer {
			c.rbuf = make([]byte, connReadBuffer)
			clear(c.slab[:cap(c.slab)]) // they may view the old buffer
		}
	case c.end == len(c.rbuf) && c.start > 0:
		c.end = copy(c.rbuf, c.rbuf[c.start:c.end])
		c.start = 0
	case c.end == len(c.rbuf):
		// One command does not fit: grow (the guard bounds its size).
		bigger := make([]byte, 2*len(c.rbuf))
		c.end = copy(bigger, c.rbuf[c.start:c.end])
		c.start = 0
		c.rbuf = bigger
	}
	n, err := c.nc.Read(c.rbuf[c.end:])
	c.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// serveConn serves c until the client leaves, a read or write fails, a
// protocol error, QUIT or Server.Close.
func (s *Server) serveConn(c *clientConn) {
	for !c.closing {
		c.parse()
		if len(c.cmds) == 0 && c.protoErr == "" {
			if err := c.fill(); err != nil {
				return
			}
			continue
		}
		c.lastMono = 0 // the first command's latency starts now
		pipelined := len(c.cmds) > 1
		for len(c.cmds) > 0 && !c.closing {
			args := c.cmds[0]
			c.cmds = c.cmds[1:]
			s.handle(c, args)
			if len(c.out) >= connFlushAt {
				if c.flush() != nil {
					return
				}
				c.lastMono = 0
			}
		}
		if c.protoErr != "" && !c.closing {
			c.WriteError(c.protoErr)
			_ = c.flush()
			return
		}
		if s.yieldBeforeWrite && pipelined {
			// With one thread running Go code, the connections are
			// served one after the other. A pipelining client whose
			// replies are written at once has mostly gone idle since it
			// sent its commands, and each write wakes it (an
			// inter-processor interrupt, dear in a virtual machine: an
			// eighth of the server's CPU under redis-benchmark -P 16).
			// Yielding first lets the other connections whose input is
			// ready run, so the replies leave together, as
			// redis-server's event loop writes them: measured 10-15 %
			// more SET and GET at -P 16. A lone command is answered at
			// once (the yield cost more than it saved at -P 1), and with
			// several threads the yield hands the goroutine to another
			// thread, which costs more than it saves.
			runtime.Gosched()
		}
		if c.flush() != nil {
			return
		}
	}
	_ = c.flush() // QUIT's reply
}
