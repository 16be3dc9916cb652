package resp

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
)

// Pipelines (a client sending many commands before reading replies) run
// their commands one after the other, like redis-server — except a batch
// of single-key commands on distinct keys in a cluster of several members,
// which runs concurrently: each of those commands may wait for a round
// trip (forwarded to its primary, replicated to its backups), and run
// concurrently their round trips overlap and their replication batches.
// A batch of plain GET/SET and DM.GET/DM.PUT goes to the node as one
// DoMany call (no goroutine per command: the node applies the local ones
// one after the other and queues the others for their primaries at once);
// any other batch runs a goroutine per command. The replies are written in
// command order. This is linearizable: the
// commands of a pipeline are all in flight together (the client has none
// of their replies), so any order among them is a valid one, and commands
// on the same key, whose order the client does see, never run
// concurrently (such a batch runs in order).

// maxParallel bounds the commands of one connection running at once.
const maxParallel = 64

// keyOf returns the (dmap, key) a command touches if it is a single-key
// command that may run concurrently with others of its pipeline; ok false for anything else (multi-key, admin,
// connection state, unknown). The slices view args.
func keyOf(name string, args [][]byte) (dmap, key []byte, ok bool) {
	switch name {
	case "get", "set", "incr", "decr", "incrby", "decrby", "expire", "pexpire", "ttl", "pttl", "exists":
		if len(args) >= 2 && (name != "exists" || len(args) == 2) {
			return defaultDMapName, args[1], true
		}
	case "del":
		if len(args) == 2 {
			return defaultDMapName, args[1], true
		}
	case "dm.get", "dm.put", "dm.incr", "dm.decr", "dm.getput", "dm.incrbyfloat", "dm.expire", "dm.pexpire":
		if len(args) >= 3 {
			return args[1], args[2], true
		}
	case "dm.del":
		if len(args) == 3 {
			return args[1], args[2], true
		}
	}
	return nil, nil, false
}

// defaultDMapName is defaultDMap, as the plain Redis commands' DMap.
var defaultDMapName = []byte(defaultDMap)

// multiMember reports whether the committed routing table has more than
// one alive member (only then can a command wait for another member).
func multiMember(t *metadata.RoutingTable) bool {
	alive := 0
	for _, m := range t.Members {
		if m.State == metadata.MemberAlive {
			if alive++; alive > 1 {
				return true
			}
		}
	}
	return false
}

// pipelineBatch returns the commands to run together starting with cmd —
// cmd and the rest of the pipeline already read, taken off the connection
// — or nil when the pipeline must run one by one. A batch is single-key
// commands on distinct keys (distinctSingleKey), run through DoMany when
// they are all plain GET/SET/DM.GET/DM.PUT (many is true; on any number
// of members: one routing, lease and clock check for the batch), or
// concurrently when the cluster has several members. A lone plain
// command is a batch of one for DoMany.
func (s *Server) pipelineBatch(conn *clientConn, cmd [][]byte) (batch [][][]byte, many bool) {
	rest := conn.peekPipeline()
	_, canMany := s.c.(doManyer)
	if len(rest) == 0 && canMany && isSimple(commandName32(cmd[0]), len(cmd)) {
		// A lone plain command takes the same lean path.
		conn.batch = append(conn.batch[:0], cmd)
		return conn.batch, true
	}
	if len(rest) == 0 || len(rest)+1 > maxParallel {
		return nil, false
	}
	if canMany {
		canMany = isSimple(commandName32(cmd[0]), len(cmd))
		for i := 0; canMany && i < len(rest); i++ {
			canMany = len(rest[i]) > 0 && isSimple(commandName32(rest[i][0]), len(rest[i]))
		}
	}
	if !canMany && !multiMember(s.c.Routing()) {
		return nil, false
	}
	if !s.distinctSingleKey(cmd, rest) {
		return nil, false
	}
	conn.batch = append(conn.batch[:0], cmd)
	conn.batch = append(conn.batch, conn.takePipeline()...)
	return conn.batch, canMany
}

// distinctSingleKey reports whether cmd and rest (at most maxParallel in
// all) are single-key commands (keyOf) on distinct keys. Keys are compared
// pairwise, without building strings; the plain commands' DMap is the one
// named "default" (GET k and DM.GET default k touch the same key).
func (s *Server) distinctSingleKey(cmd [][]byte, rest [][][]byte) bool {
	if len(rest)+1 > maxParallel {
		return false
	}
	var keys [maxParallel]struct{ dmap, key []byte }
	n := 0
	for i := -1; i < len(rest); i++ {
		c := cmd
		if i >= 0 {
			c = rest[i]
		}
		if len(c) == 0 || len(c) > s.opts.MaxArgs {
			return false
		}
		dmap, key, ok := keyOf(commandName32(c[0]), c)
		if !ok {
			return false
		}
		for j := range n {
			if bytes.Equal(keys[j].key, key) && bytes.Equal(keys[j].dmap, dmap) {
				return false
			}
		}
		keys[n].dmap, keys[n].key = dmap, key
		n++
	}
	return true
}

// doManyer is the optional DoMany of a Cluster: several key operations
// in flight together (dataplane.Service.DoMany). The requests' keys and
// values view the connection's read buffer: valid only during the call,
// so an implementation copies what it keeps (the data plane stores
// copies).
type doManyer interface {
	DoMany(ctx context.Context, reqs []*dataplane.Request, resps []*dataplane.Response, errs []error)
}

// isSimple reports whether command name with nargs arguments (its name
// included) is one simpleRequest maps.
func isSimple(name string, nargs int) bool {
	switch name {
	case "get":
		return nargs == 2
	case "set", "dm.get":
		return nargs == 3
	case "dm.put":
		return nargs == 4
	}
	return false
}

// simpleRequest sets req to the request of a plain "GET key", "SET key
// value", "DM.GET dmap key" or "DM.PUT dmap key value" (no option), the
// commands a batch runs through DoMany; false for any other. The key and
// value view args (valid while the batch runs: DoMany keeps neither, a
// stored key and value are copies); a DMap name is copied (a new DMap
// keeps its name).
func simpleRequest(name string, args [][]byte, req *dataplane.Request) bool {
	switch {
	case name == "get" && len(args) == 2:
		*req = dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: viewString(args[1])}
	case name == "set" && len(args) == 3:
		*req = dataplane.Request{Op: dataplane.OpPut, DMap: defaultDMap, Key: viewString(args[1]), Value: args[2]}
	case name == "dm.get" && len(args) == 3:
		*req = dataplane.Request{Op: dataplane.OpGet, DMap: string(args[1]), Key: viewString(args[2])}
	case name == "dm.put" && len(args) == 4:
		*req = dataplane.Request{Op: dataplane.OpPut, DMap: string(args[1]), Key: viewString(args[2]), Value: args[3]}
	default:
		return false
	}
	return true
}

// viewString returns b's bytes as a string without copying: it is valid
// only while b is not modified.
func viewString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// manyState is a connection's kept buffers for runMany.
type manyState struct {
	names  []string
	reqs   []dataplane.Request
	ptrs   []*dataplane.Request
	resps  []*dataplane.Response
	out    []dataplane.Response // storage for the responses (DoMany)
	errs   []error
	failed []bool
	recs   []recorder // the refusals of the auth gate (with Options.Auth)
	ops    []replyOp
}

// reset sizes m for n commands, clearing what the last batch left.
func (m *manyState) reset(n int) {
	clear(m.reqs)
	clear(m.ptrs)
	clear(m.resps)
	clear(m.out)
	clear(m.errs)
	m.names = m.names[:0]
	m.reqs = slices.Grow(m.reqs[:0], n)[:n]
	m.ptrs = m.ptrs[:0]
	m.failed = append(m.failed[:0], make([]bool, n)...)
}

// runMany runs a batch of simple commands (simpleRequest) through the
// Cluster's DoMany — no goroutine per command — and writes their replies
// in order, as their own handlers would.
func (s *Server) runMany(conn *clientConn, cmds [][][]byte) {
	dm := s.c.(doManyer)
	m := &conn.many
	n := len(cmds)
	m.reset(n)
	start := conn.lastMono
	if start == 0 && s.opts.Metrics != nil {
		start = monoNanos()
	}
	ctx := s.requestContext(conn)
	var refused []int // commands the auth gate answered
	if s.opts.Auth != nil {
		m.recs = append(m.recs[:0], make([]recorder, n)...)
		m.ops = append(m.ops[:0], make([]replyOp, n)...)
	}
	for i, c := range cmds {
		m.names = append(m.names, commandName32(c[0]))
		if s.opts.Auth != nil {
			r := &m.recs[i]
			r.conn, r.replies = conn, m.ops[i:i:i+1]
			if s.gate(r, c) {
				refused = append(refused, i)
				continue
			}
		}
		simpleRequest(m.names[i], c, &m.reqs[i])
		m.ptrs = append(m.ptrs, &m.reqs[i])
	}
	m.out = slices.Grow(m.out[:0], len(m.ptrs))[:len(m.ptrs)]
	m.resps = m.resps[:0]
	for k := range m.out {
		m.resps = append(m.resps, &m.out[k])
	}
	m.errs = append(m.errs[:0], make([]error, len(m.ptrs))...)
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("resp: panic in a batch of commands", "panic", p)
				for k := range m.errs {
					m.resps[k], m.errs[k] = nil, errInternal
				}
			}
		}()
		dm.DoMany(ctx, m.ptrs, m.resps, m.errs)
	}()
	k := 0
	for i := range cmds {
		if len(refused) > 0 && refused[0] == i {
			refused = refused[1:]
			m.recs[i].replay(conn)
			m.failed[i] = true
			continue
		}
		m.failed[i] = s.replyMany(conn, ctx, m.names[i], cmds[i], m.resps[k], m.errs[k])
		k++
	}
	if s.opts.Metrics != nil {
		end := monoNanos()
		conn.lastMono = end
		took := time.Duration(end - start)
		for i := range cmds {
			s.opts.Metrics.Observe(m.names[i], m.failed[i], took)
		}
	}
}

// replyMany writes the reply of simple command name (args) to w, from its
// result, as the command's own handler does; it reports whether the reply
// is an error.
func (s *Server) replyMany(w *clientConn, ctx context.Context, name string, args [][]byte, resp *dataplane.Response, err error) bool {
	if err == errInternal {
		w.WriteError("ERR internal error")
		return true
	}
	x := call{s: s, ctx: ctx, w: w, name: name, args: args[1:]}
	switch name {
	case "get":
		x.replyGet(resp, err)
		return err != nil && !isNotFound(err)
	case "dm.get":
		x.replyValue(resp, err)
	default:
		x.replyOK(err)
	}
	return err != nil
}

// errInternal marks the results of a batch whose run panicked.
var errInternal = errors.New("resp: internal error")

// runParallel runs cmds concurrently and writes their replies in order.
func (s *Server) runParallel(conn *clientConn, cmds [][][]byte) {
	ctx := s.requestContext(conn)
	recs := make([]recorder, len(cmds))
	// Most commands reply with one item: one backing array for all.
	ops := make([]replyOp, len(cmds))
	var wg sync.WaitGroup
	for i := range cmds {
		recs[i].conn = conn
		recs[i].replies = ops[i : i : i+1]
		if s.opts.Auth != nil && s.gate(&recs[i], cmds[i]) {
			continue // refused: the recorder holds NOAUTH or NOPERM
		}
		wg.Add(1)
		r, args := &recs[i], cmds[i]
		s.workers.Go(func() {
			defer wg.Done()
			s.runRecorded(ctx, r, args)
		})
	}
	wg.Wait()
	for i := range recs {
		recs[i].replay(conn)
	}
}

// runRecorded runs one command into r, with metrics and panic recovery as
// handle does.
func (s *Server) runRecorded(ctx context.Context, r *recorder, args [][]byte) {
	start := monoNanos()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("resp: panic in a command", "panic", p, "command", commandName(args))
			r.replies = r.replies[:0]
			r.WriteError("ERR internal error")
		}
		if s.opts.Metrics != nil {
			s.opts.Metrics.Observe(commandName32(args[0]), r.failed, time.Duration(monoNanos()-start))
		}
	}()
	s.exec(ctx, r, args)
}

// maxWorkers bounds the goroutines kept to run pipelined commands
// (internal/workpool). It covers 64 connections each with a full batch
// (maxParallel) in flight, so a busy server's commands keep running on
// warm stacks. An idle worker holds only its stack (a few KiB).
const maxWorkers = 64 * maxParallel

// recorder is a replier that keeps a command's reply, to be written to the
// connection later, in order (replay). A bulk is kept by reference: what a
// command replies is its own copy or the pipeline's arguments, which stay
// valid until the batch is replied. Its Context and SetContext are the
// connection's (gate reads the login).
type recorder struct {
	conn    *clientConn
	replies []replyOp
	failed  bool
}

type replyOp struct {
	kind byte // 's' string, 'b' bulk, 'B' bulk string, 'i' int, 'e' error, 'a' array, 'n' null
	str  string
	bulk []byte
	n    int64
}

func (r *recorder) WriteString(s string) { r.replies = append(r.replies, replyOp{kind: 's', str: s}) }
func (r *recorder) WriteBulk(b []byte) {
	r.replies = append(r.replies, replyOp{kind: 'b', bulk: append([]byte(nil), b...)})
}
func (r *recorder) WriteBulkString(s string) {
	r.replies = append(r.replies, replyOp{kind: 'B', str: s})
}
func (r *recorder) WriteInt(n int)     { r.replies = append(r.replies, replyOp{kind: 'i', n: int64(n)}) }
func (r *recorder) WriteInt64(n int64) { r.replies = append(r.replies, replyOp{kind: 'i', n: n}) }
func (r *recorder) WriteArray(n int)   { r.replies = append(r.replies, replyOp{kind: 'a', n: int64(n)}) }
func (r *recorder) WriteNull()         { r.replies = append(r.replies, replyOp{kind: 'n'}) }
func (r *recorder) WriteError(msg string) {
	r.failed = true
	r.replies = append(r.replies, replyOp{kind: 'e', str: msg})
}
func (r *recorder) Context() any     { return r.conn.Context() }
func (r *recorder) SetContext(v any) { r.conn.SetContext(v) }

// replay writes the recorded reply to w.
func (r *recorder) replay(w replier) {
	for _, op := range r.replies {
		switch op.kind {
		case 's':
			w.WriteString(op.str)
		case 'b':
			w.WriteBulk(op.bulk)
		case 'B':
			w.WriteBulkString(op.str)
		case 'i':
			w.WriteInt64(op.n)
		case 'a':
			w.WriteArray(int(op.n))
		case 'n':
			w.WriteNull()
		case 'e':
			w.WriteError(op.str)
		}
	}
}
