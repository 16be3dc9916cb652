package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// Request deduplication: every partition keeps a bounded table of the
// results of recent writes that carried a Request.RequestID, so that a
// client retrying a write whose outcome it did not learn gets the first
// result instead of a second application. See doc.go ("Request ids").

// Dedupe table defaults and bounds (Config.DedupeEntries, DedupeBytes,
// DedupeWindow).
const (
	// DefaultDedupeEntries is how many write results a partition keeps.
	DefaultDedupeEntries = 4096
	// DefaultDedupeBytes bounds the memory of a partition's table (ids,
	// error messages and getput's previous values).
	DefaultDedupeBytes = 1 << 20
	// DefaultDedupeWindow is how long a result answers retries.
	DefaultDedupeWindow = 5 * time.Minute

	maxDedupeEntries = 1 << 20
	maxDedupeBytes   = 1 << 30
	maxDedupeWindow  = 24 * time.Hour

	// maxResultMessageLen bounds a recorded error message (longer ones are
	// cut when recorded; a snapshot or mutation with a longer one is
	// refused).
	maxResultMessageLen = 2048
	// dedupeEntryOverhead is what a table entry costs besides its id,
	// message and value bytes (the entry, its Response, the map slot).
	dedupeEntryOverhead = 192
)

// RequestResult is the recorded outcome of one write that carried a
// request id: a Response, or a definitive failure (wire Code and the
// error's text). It travels in mutations (Mutation.Result) and snapshots
// (PartitionSnapshot.Requests). A Result handed out by OnMutation or
// Snapshot views the engine's stored copy: never modify it.
type RequestResult struct {
	// At is when the result was recorded (unix ns, by the clock of the
	// primary that recorded it; never before an earlier record's).
	At int64 `msgpack:"at"`
	// Fingerprint identifies the request (op, dmap, key and arguments): a
	// request id reused for a different request is refused. 0 = unknown.
	Fingerprint uint64 `msgpack:"fp,omitempty"`
	// Response is the successful result (nil for a failure).
	Response *Response `msgpack:"resp,omitempty"`
	// Code and Message: the failure's wire code (CodeOf) and text.
	Code    string `msgpack:"code,omitempty"`
	Message string `msgpack:"msg,omitempty"`
}

// RequestSnapshot is one entry of a partition's dedupe table in a
// PartitionSnapshot.
type RequestSnapshot struct {
	ID     string        `msgpack:"id"`
	Result RequestResult `msgpack:"res"`
}

// recordedCodes are the failures recorded (and replayed to a retry): the
// operation ran against the partition's state and decided. Everything else
// is not recorded, so a retry runs again: validation errors (ErrInvalid,
// ErrTooLarge: the same request fails the same way), and transient ones
// (ErrFencedEpoch, ErrUnavailable, ErrStaleRouting, ErrOverloaded, a ctx
// error, also when it ended a lock wait). ErrFull is recorded: like
// key_exists it is the write's outcome given the DMap's state at that
// moment; a client that frees space retries with a new id.
var recordedCodes = map[string]bool{
	CodeNotFound:        true,
	CodeKeyExists:       true,
	CodeVersionMismatch: true,
	CodeNotANumber:      true,
	CodeOverflow:        true,
	CodeLocked:          true,
	CodeNoSuchLock:      true,
	CodeFull:            true,
}

// replayedError is a recorded failure returned to a retry: the original
// text, wrapping the original sentinel.
type replayedError struct {
	sentinel error
	msg      string
}

func (e *replayedError) Error() string { return e.msg }
func (e *replayedError) Unwrap() error { return e.sentinel }

// answer returns a copy of the recorded outcome.
func (r *RequestResult) answer() (*Response, error) {
	if r.Response == nil {
		return nil, &replayedError{sentinel: ErrorOf(r.Code), msg: r.Message}
	}
	c := *r.Response
	c.Value = cloneBytes(c.Value)
	return &c, nil
}

// check validates a result from a mutation or snapshot.
func (r *RequestResult) check() error {
	switch {
	case r.Response == nil && r.Code == "":
		return fmt.Errorf("%w: request result without response or error", ErrInvalid)
	case r.Response != nil && r.Code != "":
		return fmt.Errorf("%w: request result with both a response and error %q", ErrInvalid, r.Code)
	case r.Code != "" && !recordedCodes[r.Code]:
		return fmt.Errorf("%w: request result with error code %q, which is never recorded", ErrInvalid, r.Code)
	case len(r.Message) > maxResultMessageLen:
		return fmt.Errorf("%w: request result message of %d bytes", ErrInvalid, len(r.Message))
	case r.Response != nil && len(r.Response.Value) > maxValueLenLimit:
		return fmt.Errorf("%w: request result value of %d bytes", ErrInvalid, len(r.Response.Value))
	}
	return nil
}

// clone returns a copy of r for the table: owning its bytes, without the
// fields a write never sets.
func (r *RequestResult) clone() RequestResult {
	c := *r
	if r.Response != nil {
		resp := *r.Response
		resp.Value = cloneBytes(resp.Value)
		resp.Keys, resp.Cursor, resp.RoutingVersion = nil, "", 0
		c.Response = &resp
	}
	return c
}

func (r *RequestResult) size(id string) int64 {
	n := int64(dedupeEntryOverhead + len(id) + len(r.Message))
	if r.Response != nil {
		n += int64(len(r.Response.Value))
	}
	return n
}

// cloneBytes copies b; empty becomes nil (as after a msgpack round trip).
func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// dedupeLimits is the engine's resolved dedupe configuration.
type dedupeLimits struct {
	entries int
	bytes   int64
	window  int64 // ns
}

// dedupeTable is a partition's recent write results by request id, in
// recording order (guarded by the partition's mu). Its content is a
// function of the records made, in order, and of the limits — never of a
// local clock — so a backup replaying its primary's mutations, or
// installing its snapshot, holds the same table.
type dedupeTable struct {
	byID map[string]*dedupeEntry
	// q holds the entries oldest first; At never decreases along it.
	q     []*dedupeEntry
	bytes int64
}

type dedupeEntry struct {
	id   string
	res  RequestResult
	size int64
}

// lastAt returns the newest entry's At (0 when empty).
func (t *dedupeTable) lastAt() int64 {
	if n := len(t.q); n > 0 {
		return t.q[n-1].res.At
	}
	return 0
}

// lookup returns the live result recorded for id: one younger than the
// window by now (this engine's clock).
func (t *dedupeTable) lookup(id string, now int64, lim dedupeLimits) *RequestResult {
	ent := t.byID[id]
	if ent == nil || now-ent.res.At >= lim.window {
		return nil
	}
	return &ent.res
}

// record adds res (owned by the table from now on) for id and then drops,
// oldest first, entries that are a window older than it, and entries over
// the count or byte bound (the newest entry stays even if it alone is over
// the byte bound). A previous entry for id is replaced.
func (t *dedupeTable) record(id string, res RequestResult, lim dedupeLimits) {
	res.At = max(res.At, t.lastAt())
	for len(t.q) > 0 && res.At-t.q[0].res.At >= lim.window {
		t.pop()
	}
	if old := t.byID[id]; old != nil {
		// Not reached through Do (a live entry answers, an expired one is
		// gone by now); kept sound for any mutation sequence.
		i := slices.Index(t.q, old)
		t.q = slices.Delete(t.q, i, i+1)
		t.bytes -= old.size
		delete(t.byID, id)
	}
	ent := &dedupeEntry{id: id, res: res, size: res.size(id)}
	if t.byID == nil {
		t.byID = make(map[string]*dedupeEntry)
	}
	t.byID[id] = ent
	t.q = append(t.q, ent)
	t.bytes += ent.size
	for len(t.q) > lim.entries || (t.bytes > lim.bytes && len(t.q) > 1) {
		t.pop()
	}
}

func (t *dedupeTable) pop() {
	ent := t.q[0]
	t.q[0] = nil
	t.q = t.q[1:]
	t.bytes -= ent.size
	delete(t.byID, ent.id)
	if len(t.q) == 0 {
		*t = dedupeTable{} // let the emptied map and array go
	}
}

// recordLocked records res for id on part (a copy: res is not retained).
// part.mu is held.
func (e *Engine) recordLocked(part *partition, id string, res *RequestResult) {
	part.dedupe.record(strings.Clone(id), res.clone(), e.dedupe)
}

// requestFingerprint hashes what a write does: its op, DMap, key and
// arguments. The partition, routing fields, Wait and the id are left
// out: a retry may wait differently or travel another route.
func requestFingerprint(req *Request) uint64 {
	var d xxhash.Digest
	d.Reset()
	var buf [96]byte
	b := append(buf[:0], byte(req.Op))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(req.DMap)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(req.Key)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(req.Value)))
	b = binary.LittleEndian.AppendUint64(b, uint64(req.TTL))
	b = binary.LittleEndian.AppendUint64(b, uint64(req.ExpireAt))
	b = binary.LittleEndian.AppendUint64(b, req.IfVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(req.Delta))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(req.DeltaFloat))
	b = binary.LittleEndian.AppendUint64(b, req.Token)
	var flags byte
	for i, f := range []bool{req.KeepTTL, req.NX, req.XX, req.HasIfVersion} {
		if f {
			flags |= 1 << i
		}
	}
	b = append(b, flags)
	_, _ = d.Write(b)
	_, _ = d.WriteString(req.DMap)
	_, _ = d.WriteString(req.Key)
	_, _ = d.Write(req.Value)
	return d.Sum64()
}

// dedupeBegin starts a write that carries a request id: if the partition
// holds a live result for the id, it returns it (hit); a result recorded
// for a different request is refused with ErrInvalid. Otherwise the
// operation's mutations are held back from OnMutation until finish.
func (o *opCtx) dedupeBegin(req *Request) (resp *Response, err error, hit bool) {
	fp := requestFingerprint(req)
	if r := o.part.dedupe.lookup(req.RequestID, o.now, o.e.dedupe); r != nil {
		if r.Fingerprint != 0 && r.Fingerprint != fp {
			return nil, fmt.Errorf("%w: request id %s was used for a different request", ErrInvalid, quoteKey(req.RequestID)), true
		}
		resp, err = r.answer()
		return resp, err, true
	}
	o.rid, o.fp, o.hold = req.RequestID, fp, true
	return nil, nil, false
}

// dedupeFinish records the outcome of the write dedupeBegin started, if it
// is definitive (see recordedCodes), and reports the held mutations to
// OnMutation. The record rides on the operation's last mutation; an
// operation that changed nothing gets a MutationRecord of its own, so a
// backup's table matches.
func (o *opCtx) dedupeFinish(resp *Response, err error) {
	if !o.hold {
		return
	}
	o.hold = false
	held := o.held
	o.held = nil
	if res, ok := o.result(resp, err); ok {
		stored := res.clone() // the caller owns resp
		if n := len(held); n > 0 {
			o.part.dedupe.record(strings.Clone(o.rid), stored, o.e.dedupe)
			held[n-1].RequestID, held[n-1].Result = o.rid, &stored
		} else {
			o.emit(&Mutation{Kind: MutationRecord, RequestID: o.rid, Result: &stored})
		}
	}
	if h := o.e.OnMutation; h != nil {
		for i := range held {
			h(o.p, held[i])
		}
	}
}

// result returns what to record for the outcome resp, err, if anything.
func (o *opCtx) result(resp *Response, err error) (*RequestResult, bool) {
	res := &RequestResult{At: max(o.now, o.part.dedupe.lastAt()), Fingerprint: o.fp}
	if err == nil {
		if resp == nil {
			return nil, false
		}
		res.Response = resp
		return res, true
	}
	code := CodeOf(err)
	if !recordedCodes[code] || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, false
	}
	res.Code, res.Message = code, truncateUTF8(err.Error(), maxResultMessageLen)
	return res, true
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
