package resp

import (
	"context"
	"slices"
	"time"

	"github.com/olric-raft/olric-raft/auth"
)

// connState is what a connection keeps between its commands (in its
// Context slot): its authentication and its request context.
// Commands of one connection run one at a time, on its goroutine, so the
// fields need no lock.
type connState struct {
	// authed: a successful AUTH recorded cred (the token's digest; its
	// role is looked up again for every command, so that a token removed
	// by a reload stops working on open connections too).
	authed bool
	cred   auth.Credential

	// ctx bounds the connection's commands (RequestTimeout from when it
	// was made); it is replaced once refreshAt has passed, so a command
	// always has between RequestTimeout-ctxRefresh and RequestTimeout,
	// without a timer per command (a pipelined client sends hundreds of
	// thousands a second).
	ctx       context.Context
	cancel    context.CancelFunc
	refreshAt int64 // unix nanoseconds

	// observed wraps the connection while Options.Metrics is set.
	observed observedConn
}

// ctxRefresh is how long a connection's request context is reused.
const ctxRefresh = time.Second

// stateOf returns c's state, creating it on first use.
func stateOf(c authConn) *connState {
	if st, ok := c.Context().(*connState); ok {
		return st
	}
	st := &connState{}
	c.SetContext(st)
	return st
}

// requestContext returns the context of c's next command.
func (s *Server) requestContext(c authConn) context.Context {
	st := stateOf(c)
	now := s.clock.Load()
	if now == 0 { // no clock (handle called outside Serve)
		now = time.Now().UnixNano()
	}
	if st.ctx == nil || now >= st.refreshAt {
		if st.cancel != nil {
			st.cancel()
		}
		st.ctx, st.cancel = context.WithTimeout(s.base, s.opts.RequestTimeout)
		st.refreshAt = now + int64(ctxRefresh)
	}
	return st.ctx
}

// release frees c's request context (its timer) when c closes.
func (s *Server) release(c authConn) {
	if st, ok := c.Context().(*connState); ok && st.cancel != nil {
		st.cancel()
	}
}

// clockInterval is the resolution of Server.clock.
const clockInterval = 50 * time.Millisecond

// runClock keeps s.clock (unix nanoseconds) current until stop closes.
func (s *Server) runClock(stop <-chan struct{}) {
	t := time.NewTicker(clockInterval)
	defer t.Stop()
	s.clock.Store(time.Now().UnixNano())
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.clock.Store(now.UnixNano())
		}
	}
}

// knownNames interns the lower-case names of the commands the server knows
// (commandRoles lists every one), so that commandName32 allocates nothing
// for them.
var knownNames = func() map[string]string {
	m := make(map[string]string, len(commandRoles))
	for name := range commandRoles {
		m[name] = name
	}
	return m
}()

// commandName32 returns the command name b in lower case, cut to 32 bytes
// (longer is no known command), without allocating for a known command
// (every pipelined command passes here).
func commandName32(b []byte) string {
	if len(b) == 3 { // the commands of redis-benchmark, without a lookup
		switch {
		case b[0]|0x20 == 'g' && b[1]|0x20 == 'e' && b[2]|0x20 == 't':
			return "get"
		case b[0]|0x20 == 's' && b[1]|0x20 == 'e' && b[2]|0x20 == 't':
			return "set"
		}
	}
	var buf [32]byte
	n := copy(buf[:], b)
	for i := range n {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + ('a' - 'A')
		}
	}
	if name, ok := knownNames[string(buf[:n])]; ok {
		return name
	}
	return string(buf[:n])
}

// Observer receives every command the server runs (Options.Metrics).
type Observer interface {
	Observe(command string, failed bool, d time.Duration)
}

// observedConn is a connection whose error replies are noted, for
// Options.Metrics (one per connection, in its connState).
type observedConn struct {
	*clientConn
	failed bool
}

// WriteError notes the error and writes it.
func (c *observedConn) WriteError(msg string) {
	c.failed = true
	c.clientConn.WriteError(msg)
}

// CommandNames returns the lower-case names of every command the server
// knows (the label values of its command metrics).
func CommandNames() []string {
	out := make([]string, 0, len(commandRoles))
	for name := range commandRoles {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
