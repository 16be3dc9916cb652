package resp

import (
	"bytes"
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
)

// defaultDMap is the DMap of the plain Redis commands.
const defaultDMap = "default"

// defaultScanCount is SCAN's page size without COUNT (Redis's).
const defaultScanCount = 10

// replier is what commands write their reply to (a client connection, a
// recorder of a concurrent batch; redcon.Writer has it too).
type replier interface {
	WriteString(string)
	WriteBulk([]byte)
	WriteBulkString(string)
	WriteInt(int)
	WriteInt64(int64)
	WriteError(string)
	WriteArray(int)
	WriteNull()
}

// exec runs one command and writes exactly one reply. It reports whether
// the connection should close (QUIT).
func (s *Server) exec(ctx context.Context, w replier, args [][]byte) bool {
	if len(args) == 0 {
		w.WriteError("ERR empty command")
		return false
	}
	if len(args) > s.opts.MaxArgs {
		w.WriteError("ERR too many arguments")
		return false
	}
	name := commandName32(args[0])
	x := &call{s: s, ctx: ctx, w: w, name: name, args: args[1:]}
	switch name {
	case "quit":
		w.WriteString("OK")
		return true
	case "ping":
		x.ping()
	case "echo":
		if x.arity(1, 1) {
			w.WriteBulk(x.args[0])
		}
	case "select":
		x.selectDB()
	case "auth": // with Options.Auth, gate answers it (auth.go)
		w.WriteError(replyAuthNotConfigured)
	case "hello":
		w.WriteError("NOPROTO this server supports RESP2 only")
	case "command":
		w.WriteArray(0)
	case "config":
		x.config()
	case "info":
		x.info()
	case "client":
		x.client()
	case "get":
		x.get()
	case "set":
		x.set()
	case "del":
		if x.arity(1, -1) {
			x.del(defaultDMap, x.args)
		}
	case "exists":
		x.exists()
	case "incr", "decr":
		if x.arity(1, 1) {
			x.incr(defaultDMap, x.args[0], map[string]int64{"incr": 1, "decr": -1}[name], false)
		}
	case "incrby", "decrby":
		x.incrBy()
	case "expire", "pexpire":
		x.expire()
	case "ttl", "pttl":
		x.ttl()
	case "mget":
		x.mget()
	case "mset":
		x.mset()
	case "scan":
		if x.arity(1, -1) {
			x.scan(defaultDMap, x.args[0], x.args[1:])
		}
	case "dm.put":
		x.dmPut()
	case "dm.get":
		x.dmGet()
	case "dm.del":
		if x.arity(2, -1) {
			x.del(string(x.args[0]), x.args[1:])
		}
	case "dm.expire", "dm.pexpire":
		x.dmExpire()
	case "dm.incr", "dm.decr":
		x.dmIncr()
	case "dm.incrbyfloat":
		x.dmIncrByFloat()
	case "dm.getput":
		x.dmGetPut()
	case "dm.destroy":
		x.dmDestroy()
	case "dm.scan":
		switch {
		case !x.arity(2, -1):
		case isOlricScan(x.args):
			x.dmScanPartition()
		default:
			x.scan(string(x.args[0]), x.args[1], x.args[2:])
		}
	case "dm.lock":
		x.dmLock()
	case "dm.unlock":
		x.dmUnlock()
	case "dm.locklease", "dm.plocklease":
		x.dmLease()
	case "cluster.routingtable":
		x.routingTable()
	case "cluster.members":
		x.members()
	case "stats":
		x.stats()
	default:
		x.unknown(args)
	}
	return false
}

// call is one command being run.
type call struct {
	s    *Server
	ctx  context.Context
	w    replier
	name string
	args [][]byte // without the command name
}

// arity checks min <= len(args) <= max (max -1: no bound) and answers
// Redis's error otherwise.
func (x *call) arity(lo, hi int) bool {
	if len(x.args) < lo || (hi >= 0 && len(x.args) > hi) {
		x.w.WriteError("ERR wrong number of arguments for '" + x.name + "' command")
		return false
	}
	return true
}

func (x *call) unknown(args [][]byte) {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(sanitize(trunc(args[0])))
	b.WriteString("', with args beginning with: ")
	for i, a := range args[1:] {
		if i == 8 {
			break
		}
		b.WriteString("'" + sanitize(trunc(a)) + "' ")
	}
	x.w.WriteError(b.String())
}

func trunc(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

func (x *call) fail(err error) { x.w.WriteError(x.s.errorReply(x.name, err)) }

func (x *call) syntax() { x.w.WriteError("ERR syntax error") }

func (x *call) notInt() { x.w.WriteError("ERR value is not an integer or out of range") }

func (x *call) do(req dataplane.Request) (*dataplane.Response, error) {
	r := requestPool.Get().(*dataplane.Request)
	*r = req
	resp, err := x.s.c.Do(x.ctx, r)
	*r = dataplane.Request{} // drop the references before pooling it
	requestPool.Put(r)
	return resp, err
}

// requestPool recycles the requests commands hand to Cluster.Do (one per
// command otherwise). A Cluster keeps no reference to a request once Do
// returns: a forwarded request is encoded when it is queued.
var requestPool = sync.Pool{New: func() any { return new(dataplane.Request) }}

// scanCount parses a SCAN COUNT argument (answering the error itself),
// capped at the engine's page limit.
func (x *call) scanCount(b []byte) (int64, bool) {
	n, ok := parseInt(b)
	switch {
	case !ok:
		x.notInt()
		return 0, false
	case n < 1:
		x.syntax()
		return 0, false
	}
	return min(n, dataplane.MaxScanLimit), true
}

func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

func is(b []byte, word string) bool { return bytes.EqualFold(b, []byte(word)) }

// ---- connection and server commands ----

func (x *call) ping() {
	switch len(x.args) {
	case 0:
		x.w.WriteString("PONG")
	case 1:
		x.w.WriteBulk(x.args[0])
	default:
		x.arity(0, 1)
	}
}

func (x *call) selectDB() {
	if !x.arity(1, 1) {
		return
	}
	n, ok := parseInt(x.args[0])
	switch {
	case !ok:
		x.notInt()
	case n != 0:
		x.w.WriteError("ERR DB index is out of range")
	default:
		x.w.WriteString("OK")
	}
}

func (x *call) config() {
	if !x.arity(1, -1) {
		return
	}
	if !is(x.args[0], "get") {
		x.w.WriteError("ERR CONFIG " + sanitize(trunc(x.args[0])) + " is not supported")
		return
	}
	if len(x.args) < 2 {
		x.w.WriteError("ERR wrong number of arguments for 'config|get' command")
		return
	}
	var out []string
	for _, p := range x.args[1:] {
		for _, known := range []string{"save", "appendonly"} {
			if is(p, known) {
				out = append(out, known, "")
			}
		}
	}
	x.w.WriteArray(len(out))
	for _, s := range out {
		x.w.WriteBulkString(s)
	}
}

func (x *call) info() {
	st := x.s.c.Status()
	var b strings.Builder
	b.WriteString("# Server\r\n")
	b.WriteString("redis_version:7.0.0\r\n")
	b.WriteString("redis_mode:standalone\r\n")
	b.WriteString("olric_raft_node_id:" + sanitize(string(st.NodeID)) + "\r\n")
	b.WriteString("olric_raft_state:" + sanitize(st.State) + "\r\n")
	b.WriteString("uptime_in_seconds:" + strconv.FormatInt(int64(st.UptimeSeconds), 10) + "\r\n")
	b.WriteString("routing_version:" + strconv.FormatUint(st.RoutingVersion, 10) + "\r\n")
	x.w.WriteBulkString(b.String())
}

func (x *call) client() {
	if !x.arity(1, -1) {
		return
	}
	switch {
	case is(x.args[0], "setname"), is(x.args[0], "setinfo"):
		x.w.WriteString("OK")
	case is(x.args[0], "getname"):
		x.w.WriteNull()
	case is(x.args[0], "id"):
		x.w.WriteInt(1)
	default:
		x.w.WriteError("ERR CLIENT " + sanitize(trunc(x.args[0])) + " is not supported")
	}
}

// ---- plain Redis key commands ----

func (x *call) get() {
	if !x.arity(1, 1) {
		return
	}
	x.replyGet(x.do(dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: string(x.args[0])}))
}

// replyGet answers GET's result: the value, or nil for a missing key.
func (x *call) replyGet(resp *dataplane.Response, err error) {
	switch {
	case isNotFound(err):
		x.w.WriteNull()
	case err != nil:
		x.fail(err)
	default:
		x.w.WriteBulk(resp.Value)
	}
}

// replyValue answers DM.GET's result: the value, or the error (a missing
// key is an error in Olric's protocol).
func (x *call) replyValue(resp *dataplane.Response, err error) {
	if err != nil {
		x.fail(err)
		return
	}
	x.w.WriteBulk(resp.Value)
}

// replyOK answers a write's result: OK, or the error.
func (x *call) replyOK(err error) {
	if err != nil {
		x.fail(err)
		return
	}
	x.w.WriteString("OK")
}

func isNotFound(err error) bool { return err != nil && errorIs(err, dataplane.ErrNotFound) }

// expiry is a parsed EX/PX/EXAT/PXAT/KEEPTTL option.
type expiry struct {
	set      bool
	ttl      time.Duration
	expireAt int64 // unix ms
	keepTTL  bool
}

// parseExpiry parses the option at args[i] (EX etc.) with its argument,
// returning how many args it took (0: not an expiry option; -1: error
// answered).
func (x *call) parseExpiry(args [][]byte, i int, e *expiry, allowKeep bool) int {
	opt := args[i]
	if allowKeep && is(opt, "keepttl") {
		if e.set {
			x.syntax()
			return -1
		}
		e.set, e.keepTTL = true, true
		return 1
	}
	var unit time.Duration
	var abs bool
	switch {
	case is(opt, "ex"):
		unit = time.Second
	case is(opt, "px"):
		unit = time.Millisecond
	case is(opt, "exat"):
		unit, abs = time.Second, true
	case is(opt, "pxat"):
		unit, abs = time.Millisecond, true
	default:
		return 0
	}
	if e.set || i+1 >= len(args) {
		x.syntax()
		return -1
	}
	if unit == time.Second && strings.HasPrefix(x.name, "dm.") {
		// Olric's client sends EX and EXAT as float seconds.
		return x.parseSecondsExpiry(args[i+1], abs, e)
	}
	n, ok := parseInt(args[i+1])
	if !ok {
		x.notInt()
		return -1
	}
	limit := int64(dataplane.MaxTTL / unit)
	if abs {
		limit = math.MaxInt64 / int64(unit/time.Millisecond)
	}
	if n <= 0 || n > limit {
		x.w.WriteError("ERR invalid expire time in '" + x.name + "' command")
		return -1
	}
	e.set = true
	if abs {
		e.expireAt = n * int64(unit/time.Millisecond)
	} else {
		e.ttl = time.Duration(n) * unit
	}
	return 2
}

func (x *call) set() {
	if !x.arity(2, -1) {
		return
	}
	key, value := string(x.args[0]), x.args[1]
	var e expiry
	var nx, xx, get bool
	opts := x.args[2:]
	for i := 0; i < len(opts); {
		n := x.parseExpiry(opts, i, &e, true)
		if n < 0 {
			return
		}
		if n > 0 {
			i += n
			continue
		}
		switch {
		case is(opts[i], "nx") && !xx:
			nx = true
		case is(opts[i], "xx") && !nx:
			xx = true
		case is(opts[i], "get"):
			get = true
		default:
			x.syntax()
			return
		}
		i++
	}
	if get && !e.set && !nx && !xx {
		// Atomic: one getput.
		resp, err := x.do(dataplane.Request{Op: dataplane.OpGetPut, DMap: defaultDMap, Key: key, Value: value})
		if err != nil {
			x.fail(err)
			return
		}
		x.bulkOrNull(resp.Found, resp.Value)
		return
	}
	var prev []byte
	var found bool
	if get {
		resp, err := x.do(dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: key})
		if err != nil && !isNotFound(err) {
			x.fail(err)
			return
		}
		if err == nil {
			prev, found = resp.Value, true
		}
	}
	_, err := x.do(dataplane.Request{Op: dataplane.OpPut, DMap: defaultDMap, Key: key, Value: value,
		TTL: e.ttl, ExpireAt: e.expireAt, KeepTTL: e.keepTTL, NX: nx, XX: xx})
	switch {
	case err == nil || ((nx && errorIs(err, dataplane.ErrKeyExists)) || (xx && isNotFound(err))):
		if get {
			x.bulkOrNull(found, prev)
		} else if err != nil {
			x.w.WriteNull()
		} else {
			x.w.WriteString("OK")
		}
	default:
		x.fail(err)
	}
}

func (x *call) bulkOrNull(found bool, v []byte) {
	if !found {
		x.w.WriteNull()
		return
	}
	x.w.WriteBulk(v)
}

// del deletes keys of dmap and answers how many existed.
func (x *call) del(dmap string, keys [][]byte) {
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = string(k)
	}
	if dm, ok := x.s.c.(deleteManyer); ok {
		n, err := dm.DeleteMany(x.ctx, dmap, ks)
		if err != nil {
			x.fail(err)
			return
		}
		x.w.WriteInt(n)
		return
	}
	n := 0
	for _, k := range ks {
		resp, err := x.do(dataplane.Request{Op: dataplane.OpDelete, DMap: dmap, Key: k})
		if err != nil {
			x.fail(err)
			return
		}
		if resp.Deleted {
			n++
		}
	}
	x.w.WriteInt(n)
}

func (x *call) exists() {
	if !x.arity(1, -1) {
		return
	}
	n := 0
	for _, k := range x.args {
		resp, err := x.do(dataplane.Request{Op: dataplane.OpExists, DMap: defaultDMap, Key: string(k)})
		if err != nil {
			x.fail(err)
			return
		}
		if resp.Found {
			n++
		}
	}
	x.w.WriteInt(n)
}

func (x *call) incrBy() {
	if !x.arity(2, 2) {
		return
	}
	d, ok := parseInt(x.args[1])
	if !ok {
		x.notInt()
		return
	}
	if x.name == "decrby" {
		if d == math.MinInt64 {
			x.w.WriteError("ERR decrement would overflow")
			return
		}
		d = -d
	}
	x.incr(defaultDMap, x.args[0], d, false)
}

func (x *call) incr(dmap string, key []byte, delta int64, olric bool) {
	resp, err := x.do(dataplane.Request{Op: dataplane.OpIncr, DMap: dmap, Key: string(key), Delta: delta})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.WriteInt64(resp.Int)
}

func (x *call) expire() {
	if !x.arity(2, 2) {
		return
	}
	n, ok := parseInt(x.args[1])
	if !ok {
		x.notInt()
		return
	}
	unit := time.Second
	if x.name == "pexpire" {
		unit = time.Millisecond
	}
	key := string(x.args[0])
	if n <= 0 {
		// Redis deletes the key at once.
		resp, err := x.do(dataplane.Request{Op: dataplane.OpDelete, DMap: defaultDMap, Key: key})
		if err != nil {
			x.fail(err)
			return
		}
		x.w.WriteInt(b2i(resp.Deleted))
		return
	}
	if n > int64(dataplane.MaxTTL/unit) {
		x.w.WriteError("ERR invalid expire time in '" + x.name + "' command")
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpExpire, DMap: defaultDMap, Key: key, TTL: time.Duration(n) * unit})
	switch {
	case isNotFound(err):
		x.w.WriteInt(0)
	case err != nil:
		x.fail(err)
	default:
		x.w.WriteInt(b2i(resp.Found))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (x *call) ttl() {
	if !x.arity(1, 1) {
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: string(x.args[0])})
	switch {
	case isNotFound(err):
		x.w.WriteInt(-2)
	case err != nil:
		x.fail(err)
	case resp.TTL <= 0:
		x.w.WriteInt(-1)
	case x.name == "pttl":
		x.w.WriteInt64(resp.TTL.Milliseconds())
	default:
		x.w.WriteInt64(int64((resp.TTL + 500*time.Millisecond) / time.Second))
	}
}

func (x *call) mget() {
	if !x.arity(1, -1) {
		return
	}
	vals := make([][]byte, len(x.args))
	found := make([]bool, len(x.args))
	for i, k := range x.args {
		resp, err := x.do(dataplane.Request{Op: dataplane.OpGet, DMap: defaultDMap, Key: string(k)})
		if isNotFound(err) {
			continue
		}
		if err != nil {
			x.fail(err)
			return
		}
		vals[i], found[i] = resp.Value, true
	}
	x.w.WriteArray(len(vals))
	for i := range vals {
		x.bulkOrNull(found[i], vals[i])
	}
}

func (x *call) mset() {
	if len(x.args) < 2 || len(x.args)%2 != 0 {
		x.arity(math.MaxInt, 0)
		return
	}
	for i := 0; i < len(x.args); i += 2 {
		_, err := x.do(dataplane.Request{Op: dataplane.OpPut, DMap: defaultDMap, Key: string(x.args[i]), Value: x.args[i+1]})
		if err != nil {
			x.fail(err)
			return
		}
	}
	x.w.WriteString("OK")
}

// scan answers [cursor, [keys...]] for SCAN and DM.SCAN.
func (x *call) scan(dmap string, cursorArg []byte, opts [][]byte) {
	cursor, ok := x.s.decodeCursor(cursorArg)
	if !ok {
		x.w.WriteError("ERR invalid cursor")
		return
	}
	match, count := "", int64(defaultScanCount)
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			x.syntax()
			return
		}
		switch {
		case is(opts[i], "match"):
			match = string(opts[i+1])
			if match == "*" {
				match = ""
			}
		case is(opts[i], "count"):
			n, ok := x.scanCount(opts[i+1])
			if !ok {
				return
			}
			count = n
		default:
			x.syntax()
			return
		}
	}
	start, _ := packCursor(cursor) // 0 for "" and unpackable cursors
	var keys []string
	for {
		page, next, err := x.s.c.Scan(x.ctx, dmap, match, cursor, int(count))
		if err != nil {
			x.fail(err)
			return
		}
		keys = append(keys, page...)
		cursor = next
		// A packed cursor rounds down: go on until it moves, so that a
		// client repeating it makes progress.
		if next == "" {
			break
		}
		if v, ok := packCursor(next); !ok || v != start {
			break
		}
	}
	x.w.WriteArray(2)
	x.w.WriteBulkString(strconv.FormatUint(x.s.encodeCursor(cursor), 10))
	x.w.WriteArray(len(keys))
	for _, k := range keys {
		x.w.WriteBulkString(k)
	}
}

// ---- DM.* ----

func (x *call) dmPut() {
	if !x.arity(3, -1) {
		return
	}
	var e expiry
	var nx, xx bool
	opts := x.args[3:]
	for i := 0; i < len(opts); {
		n := x.parseExpiry(opts, i, &e, false)
		if n < 0 {
			return
		}
		if n > 0 {
			i += n
			continue
		}
		switch {
		case is(opts[i], "nx") && !xx:
			nx = true
		case is(opts[i], "xx") && !nx:
			xx = true
		default:
			x.syntax()
			return
		}
		i++
	}
	_, err := x.do(dataplane.Request{Op: dataplane.OpPut, DMap: string(x.args[0]), Key: string(x.args[1]),
		Value: x.args[2], TTL: e.ttl, ExpireAt: e.expireAt, NX: nx, XX: xx})
	x.replyOK(err)
}

// dmGet: DM.GET dmap key [RW] (RW: the entry in Olric's encoding).
func (x *call) dmGet() {
	if !x.arity(2, 3) {
		return
	}
	raw, ok := x.rawFlag(x.args[2:])
	if !ok {
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpGet, DMap: string(x.args[0]), Key: string(x.args[1])})
	if err == nil && raw {
		x.w.WriteBulk(olricEntry(string(x.args[1]), resp.Value, resp.TTL, time.Now()))
		return
	}
	x.replyValue(resp, err)
}

func (x *call) dmExpire() {
	if !x.arity(3, 3) {
		return
	}
	ttl, ok := x.duration(x.args[2], x.name == "dm.expire")
	if !ok {
		return
	}
	if ttl <= 0 {
		x.w.WriteError("ERR invalid expire time in '" + x.name + "' command")
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpExpire, DMap: string(x.args[0]), Key: string(x.args[1]), TTL: ttl})
	switch {
	case err != nil:
		x.fail(err)
	case !resp.Found:
		x.fail(dataplane.ErrNotFound)
	default:
		x.w.WriteString("OK")
	}
}

func (x *call) dmIncr() {
	if !x.arity(3, 3) {
		return
	}
	d, ok := parseInt(x.args[2])
	if !ok {
		x.notInt()
		return
	}
	if x.name == "dm.decr" {
		if d == math.MinInt64 {
			x.w.WriteError("ERR decrement would overflow")
			return
		}
		d = -d
	}
	x.incr(string(x.args[0]), x.args[1], d, true)
}

func (x *call) dmIncrByFloat() {
	if !x.arity(3, 3) {
		return
	}
	d, ok := parseFloat(x.args[2])
	if !ok {
		x.w.WriteError("ERR value is not a valid float")
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpIncrByFloat, DMap: string(x.args[0]), Key: string(x.args[1]), DeltaFloat: d})
	if err != nil {
		if errorIs(err, dataplane.ErrNotANumber) {
			x.w.WriteError("ERR value is not a valid float")
			return
		}
		x.fail(err)
		return
	}
	x.w.WriteBulkString(strconv.FormatFloat(resp.Float, 'f', -1, 64))
}

// dmGetPut: DM.GETPUT dmap key value [RW] (RW: the previous entry in
// Olric's encoding, without its TTL).
func (x *call) dmGetPut() {
	if !x.arity(3, 4) {
		return
	}
	raw, ok := x.rawFlag(x.args[3:])
	if !ok {
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpGetPut, DMap: string(x.args[0]), Key: string(x.args[1]), Value: x.args[2]})
	switch {
	case err != nil:
		x.fail(err)
	case raw && resp.Found:
		x.w.WriteBulk(olricEntry(string(x.args[1]), resp.Value, 0, time.Now()))
	default:
		x.bulkOrNull(resp.Found, resp.Value)
	}
}

func (x *call) dmDestroy() {
	if !x.arity(1, 1) {
		return
	}
	if err := x.s.c.Destroy(x.ctx, string(x.args[0])); err != nil {
		x.fail(err)
		return
	}
	x.w.WriteString("OK")
}

// dmLock: DM.LOCK dmap key seconds [EX s|PX ms]. seconds (fractions
// allowed) is the wait; the lease defaults to the wait, at least
// dataplane.DefaultLockLease.
func (x *call) dmLock() {
	if !x.arity(3, 5) {
		return
	}
	wait, ok := parseSeconds(x.args[2])
	if !ok {
		x.w.WriteError("ERR invalid timeout in 'dm.lock' command")
		return
	}
	// Olric's locks without EX/PX never expire; ours get a lease.
	lease := max(wait, dataplane.DefaultLockLease)
	if len(x.args) > 3 {
		var e expiry
		if len(x.args) != 5 || (!is(x.args[3], "ex") && !is(x.args[3], "px")) {
			x.syntax()
			return
		}
		if x.parseExpiry(x.args, 3, &e, false) < 0 {
			return
		}
		lease = e.ttl
	}
	if lease <= 0 {
		x.w.WriteError("ERR invalid lease in 'dm.lock' command")
		return
	}
	// The wait must end before the command's deadline.
	w := wait
	if dl, ok := x.ctx.Deadline(); ok {
		w = min(w, time.Until(dl)-100*time.Millisecond)
	}
	w = max(w, 0)
	resp, err := x.do(dataplane.Request{Op: dataplane.OpLock, DMap: string(x.args[0]), Key: string(x.args[1]), TTL: lease, Wait: w})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.WriteBulkString(strconv.FormatUint(resp.Token, 10))
}

func (x *call) token(b []byte) (uint64, bool) {
	t, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || len(b) > 20 {
		x.w.WriteError("NOSUCHLOCK no such lock")
		return 0, false
	}
	return t, true
}

func (x *call) dmUnlock() {
	if !x.arity(3, 3) {
		return
	}
	tok, ok := x.token(x.args[2])
	if !ok {
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpUnlock, DMap: string(x.args[0]), Key: string(x.args[1]), Token: tok})
	switch {
	case err != nil:
		x.fail(err)
	case !resp.Found:
		x.fail(dataplane.ErrNoSuchLock)
	default:
		x.w.WriteString("OK")
	}
}

func (x *call) dmLease() {
	if !x.arity(4, 4) {
		return
	}
	tok, ok := x.token(x.args[2])
	if !ok {
		return
	}
	lease, ok := x.duration(x.args[3], x.name == "dm.locklease")
	if !ok {
		return
	}
	if lease <= 0 {
		x.w.WriteError("ERR invalid lease in '" + x.name + "' command")
		return
	}
	resp, err := x.do(dataplane.Request{Op: dataplane.OpLease, DMap: string(x.args[0]), Key: string(x.args[1]), Token: tok, TTL: lease})
	switch {
	case err != nil:
		x.fail(err)
	case !resp.Found:
		x.fail(dataplane.ErrNoSuchLock)
	default:
		x.w.WriteString("OK")
	}
}

// ---- cluster ----

// CLUSTER.ROUTINGTABLE, CLUSTER.MEMBERS and STATS are in olric.go.
