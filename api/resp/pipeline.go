package resp

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

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

// parallelBatch returns the commands to run concurrently starting with
// cmd — cmd and the rest of the pipeline already read, taken off the
// connection — or nil when the pipeline must run one by one.
func (s *Server) parallelBatch(conn *clientConn, cmd [][]byte) [][][]byte {
	rest := conn.peekPipeline()
	if len(rest) == 0 || len(rest)+1 > maxParallel || !multiMember(s.c.Routing()) {
		return nil
	}
	if !s.distinctSingleKey(cmd, rest) {
		return nil
	}
	return append([][][]byte{cmd}, conn.takePipeline()...)
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
// in flight together (dataplane.Service.DoMany).
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
// commands a batch runs through DoMany; false for any other.
func simpleRequest(name string, args [][]byte, req *dataplane.Request) bool {
	switch {
	case name == "get" && len(args) == 2:
		*req = dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: string(args[1])}
	case name == "set" && len(args) == 3:
		*req = dataplane.Request{Op: dataplane.OpPut, DMap: defaultDMap, Key: string(args[1]), Value: args[2]}
	case name == "dm.get" && len(args) == 3:
		*req = dataplane.Request{Op: dataplane.OpGet, DMap: string(args[1]), Key: string(args[2])}
	case name == "dm.put" && len(args) == 4:
		*req = dataplane.Request{Op: dataplane.OpPut, DMap: string(args[1]), Key: string(args[2]), Value: args[3]}
	default:
		return false
	}
	return true
}

// runMany runs a batch of simple commands (simpleRequest) through the
// Cluster's DoMany — no goroutine per command — and writes their replies
// in order, as their own handlers would. It reports false, having done
// nothing, when the Cluster has no DoMany or a command is not simple.
func (s *Server) runMany(conn *clientConn, cmds [][][]byte) bool {
	dm, ok := s.c.(doManyer)
	if !ok {
		return false
	}
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = commandName32(c[0])
		if !isSimple(names[i], len(c)) {
			return false
		}
	}
	start := monoNanos()
	ctx := s.requestContext(conn)
	n := len(cmds)
	recs := make([]recorder, n)
	ops := make([]replyOp, n)
	reqs := make([]dataplane.Request, n)
	ptrs := make([]*dataplane.Request, 0, n)
	at := make([]int, 0, n) // the command of each request
	for i := range cmds {
		recs[i].conn = conn
		recs[i].replies = ops[i : i : i+1]
		if s.opts.Auth != nil && s.gate(&recs[i], cmds[i]) {
			continue // refused: the recorder holds NOAUTH or NOPERM
		}
		simpleRequest(names[i], cmds[i], &reqs[i])
		ptrs = append(ptrs, &reqs[i])
		at = append(at, i)
	}
	resps := make([]*dataplane.Response, len(ptrs))
	errs := make([]error, len(ptrs))
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("resp: panic in a batch of commands", "panic", p)
				for k := range errs {
					resps[k], errs[k] = nil, errInternal
				}
			}
		}()
		dm.DoMany(ctx, ptrs, resps, errs)
	}()
	for k, i := range at {
		x := &call{s: s, ctx: ctx, w: &recs[i], name: names[i], args: cmds[i][1:]}
		if errs[k] == errInternal {
			x.w.WriteError("ERR internal error")
			continue
		}
		switch names[i] {
		case "get":
			x.replyGet(resps[k], errs[k])
		case "dm.get":
			x.replyValue(resps[k], errs[k])
		default:
			x.replyOK(errs[k])
		}
	}
	if s.opts.Metrics != nil {
		took := time.Duration(monoNanos() - start)
		for i := range recs {
			s.opts.Metrics.Observe(names[i], recs[i].failed, took)
		}
	}
	for i := range recs {
		recs[i].replay(conn)
	}
	return true
}

// errInternal marks the results of a batch whose run panicked.
var errInternal = errors.New("resp: internal error")

// runParallel runs cmds concurrently and writes their replies in order.
func (s *Server) runParallel(conn *clientConn, cmds [][][]byte) {
	if s.runMany(conn, cmds) {
		return
	}
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
