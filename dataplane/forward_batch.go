package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/metadata"
)

// Forwarded requests to one member travel together. Requests forwarded
// at the same moment (a pipeline's commands, many clients) to the same
// primary are coalesced: each is queued for its member, and a sender per
// member (at most maxForwardSenders at once) takes everything queued and
// sends it as one dmap.do_batch RPC — one frame, one dispatch and one
// reply instead of one each. The primary applies the batch's key reads and
// writes one after the other, then waits for their backups (their
// mutations went out together, so the waits overlap and share replication
// batches); a request that may block (a lock that waits) runs on its own.
// A lone request goes at once as a plain dmap.do: nothing ever waits to
// fill a batch. Batches form only while earlier ones are in flight.
//
// Each caller waits for its own result, for its partition's moved signal
// (a stalled primary: see forward) or for its context, whichever comes
// first; a caller that leaves early leaves its request's outcome unknown,
// exactly as a single call would. A request is encoded when it is queued,
// so its caller may reuse the Request (a retry) at once.

// MethodDoBatch runs several Requests on this member, each as MethodDo
// would (serveBatch); the reply holds one rpcReply per request, in order.
const MethodDoBatch = "dmap.do_batch"

// maxForwardBatch bounds the requests of one batch; maxForwardSenders
// the batches in flight to one member (a batch waits for its slowest
// request — a first write's Raft commit, a replication wait — so several
// run at once, and one slow partition holds up only the batches it is
// in).
const (
	maxForwardBatch   = 256
	maxForwardSenders = 8
)

// Size bounds, so a batch and its reply stay far below the transport's
// frame limit (64 MiB by default) whatever the values: a batch takes
// requests up to maxForwardBatchBytes of encoded requests (at least one);
// the primary answers reads only up to maxBatchReplyBytes of reply and
// asks for the rest to be sent again alone (codeResendAlone; they were
// only read). A write's reply always comes (it ran).
const maxForwardBatchBytes = 4 << 20

var maxBatchReplyBytes = 16 << 20 // a var for tests

const codeResendAlone = "resend_alone"

// fwdCall is one queued forwarded request.
type fwdCall struct {
	body     msgpack.RawMessage // the encoded Request
	deadline time.Time          // the caller's, zero for none
	reply    rpcReply
	err      error
	done     chan struct{} // closed once reply or err is set
}

// fwdQueue holds the requests waiting to be sent to one member.
type fwdQueue struct {
	addr string

	mu      sync.Mutex
	pending []*fwdCall
	senders int
}

// forwardQueue returns the queue of the member at addr.
func (s *Service) forwardQueue(addr string) *fwdQueue {
	if q, ok := s.fwdQueues.Load(addr); ok {
		return q.(*fwdQueue)
	}
	q, _ := s.fwdQueues.LoadOrStore(addr, &fwdQueue{addr: addr})
	return q.(*fwdQueue)
}

// forwardQueued sends req to the primary at m through m's queue and waits
// for its reply, the abort channel (its partition moved on) or ctx.
func (s *Service) forwardQueued(ctx context.Context, m metadata.Member, req *Request, abort <-chan struct{}) (*rpcReply, error, bool) {
	c, err := s.enqueueForward(ctx, m, req)
	if err != nil {
		return nil, err, false
	}
	return awaitForward(ctx, c, abort)
}

// enqueueForward queues req (encoded now: the caller may reuse it) for the
// primary at m.
func (s *Service) enqueueForward(ctx context.Context, m metadata.Member, req *Request) (*fwdCall, error) {
	body, err := encodeRequest(req)
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %v", ErrInvalid, err)
	}
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: the data plane is closed", ErrUnavailable)
	}
	c := &fwdCall{body: body, done: make(chan struct{})}
	c.deadline, _ = ctx.Deadline()
	q := s.forwardQueue(m.ClusterAddr)
	q.mu.Lock()
	q.pending = append(q.pending, c)
	start := q.senders < maxForwardSenders
	if start {
		q.senders++
	}
	q.mu.Unlock()
	if start {
		s.wg.Add(1)
		go s.sendQueued(q)
	}
	return c, nil
}

// awaitForward waits for c's reply, the abort channel (its partition moved
// on: movedOn) or ctx.
func awaitForward(ctx context.Context, c *fwdCall, abort <-chan struct{}) (reply *rpcReply, err error, movedOn bool) {
	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err, false
		}
		return &c.reply, nil, false
	case <-abort:
		return nil, errMovedOn, true
	case <-ctx.Done():
		return nil, ctx.Err(), false
	}
}

// sendQueued sends q's pending requests, batch after batch, until none is
// left.
func (s *Service) sendQueued(q *fwdQueue) {
	defer s.wg.Done()
	for {
		q.mu.Lock()
		n, size := 0, 0
		for n < len(q.pending) && n < maxForwardBatch && (n == 0 || size+len(q.pending[n].body) <= maxForwardBatchBytes) {
			size += len(q.pending[n].body)
			n++
		}
		if n == 0 {
			q.senders--
			q.mu.Unlock()
			return
		}
		batch := make([]*fwdCall, n)
		copy(batch, q.pending)
		rest := copy(q.pending, q.pending[n:])
		clear(q.pending[rest:])
		q.pending = q.pending[:rest]
		q.mu.Unlock()
		if len(batch) == 1 {
			s.sendOne(q, batch[0])
			continue
		}
		s.sendForwardBatch(q, batch)
	}
}

// callContext is the context of an RPC made on behalf of calls: the
// latest of their deadlines (a caller with an earlier one leaves on its
// own), and the service's lifetime.
func (s *Service) callContext(calls []*fwdCall) (context.Context, context.CancelFunc) {
	var dl time.Time
	for _, c := range calls {
		if c.deadline.IsZero() {
			dl = time.Time{}
			break
		}
		if c.deadline.After(dl) {
			dl = c.deadline
		}
	}
	if dl.IsZero() {
		dl = time.Now().Add(s.cfg.RouteTimeout + 30*time.Second)
	}
	return context.WithDeadline(s.ctx, dl)
}

func (s *Service) sendOne(q *fwdQueue, c *fwdCall) {
	ctx, cancel := s.callContext([]*fwdCall{c})
	c.err = s.cfg.Caller.Call(ctx, q.addr, MethodDo, c.body, &c.reply)
	cancel()
	close(c.done)
}

// encodeRequest encodes req into a buffer of about the right size (one
// allocation; msgpack.Marshal grows a buffer from empty).
func encodeRequest(req *Request) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(req.DMap) + len(req.Key) + len(req.Value) + len(req.Match) + len(req.Cursor) + len(req.RequestID) + 96)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := req.EncodeMsgpack(enc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// batchRequestIn and batchReply are MethodDoBatch's body and reply: the
// sender puts requests it encoded when they were queued
// (appendBatchRequest), the primary decodes them as Requests (the same
// bytes: an array of maps).
type batchRequestIn struct {
	Reqs []Request `msgpack:"reqs"`
}

// Hand-written codecs for the batch messages (wire.go): the reflection
// codec would box every element of the slices.
var (
	batchRequestFields = []string{"reqs"}
	batchReplyFields   = []string{"code", "msg", "replies"}
)

// appendBatchRequest appends the encoding of a batchRequest holding
// bodies (each an encoded Request) to b.
func appendBatchRequest(b []byte, bodies []*fwdCall) []byte {
	b = append(b, 0x81, 0xa4, 'r', 'e', 'q', 's') // {"reqs": ...}
	switch n := len(bodies); {
	case n < 16:
		b = append(b, 0x90|byte(n))
	case n < 1<<16:
		b = append(b, 0xdc, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for _, c := range bodies {
		b = append(b, c.body...)
	}
	return b
}

// DecodeMsgpack implements msgpack.CustomDecoder (a request: unknown keys
// are refused).
func (r *batchRequestIn) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, true)
	err := decodeStruct(dec, st, r, batchRequestFields)
	endDecode(st)
	return err
}

func (r *batchRequestIn) wireZero() { *r = batchRequestIn{} }

func (r *batchRequestIn) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	if string(key) != "reqs" {
		return false, nil
	}
	return true, decodeSlice(dec, st, &r.Reqs, requestFields)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *batchReply) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	w.mapLen(b2i(r.Code != "") + b2i(r.Message != "") + b2i(len(r.Replies) != 0))
	if r.Code != "" {
		w.str("code", r.Code)
	}
	if r.Message != "" {
		w.str("msg", r.Message)
	}
	if len(r.Replies) != 0 {
		w.key("replies")
		w.arrayLen(len(r.Replies))
		for i := range r.Replies {
			if w.err == nil {
				w.err = r.Replies[i].EncodeMsgpack(enc)
			}
		}
	}
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder (a reply: unknown keys
// are skipped).
func (r *batchReply) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, r, batchReplyFields)
	endDecode(st)
	return err
}

func (r *batchReply) wireZero() { *r = batchReply{} }

func (r *batchReply) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "code":
		r.Code, err = dec.DecodeString()
	case "msg":
		r.Message, err = dec.DecodeString()
	case "replies":
		err = decodeSlice(dec, st, &r.Replies, rpcReplyFields)
	default:
		return false, nil
	}
	return true, err
}

type batchReply struct {
	Code    string     `msgpack:"code,omitempty"`
	Message string     `msgpack:"msg,omitempty"`
	Replies []rpcReply `msgpack:"replies,omitempty"`
}

func (s *Service) sendForwardBatch(q *fwdQueue, batch []*fwdCall) {
	size := 16
	for _, c := range batch {
		size += len(c.body)
	}
	body := msgpack.RawMessage(appendBatchRequest(make([]byte, 0, size), batch))
	ctx, cancel := s.callContext(batch)
	var reply batchReply
	err := s.cfg.Caller.Call(ctx, q.addr, MethodDoBatch, body, &reply)
	cancel()
	if err == nil && reply.Code == "" && len(reply.Replies) != len(batch) {
		err = fmt.Errorf("%w: %s answered %d of a batch of %d", errBadBatchReply, q.addr, len(reply.Replies), len(batch))
	}
	for i, c := range batch {
		switch {
		case err != nil:
			c.err = err
		case reply.Code != "":
			// Refused as a whole, run not at all (its data plane is not
			// started, say): each request gets the refusal.
			c.reply = rpcReply{Code: reply.Code, Message: reply.Message}
		case reply.Replies[i].Code == codeResendAlone:
			s.sendOne(q, c) // a read whose reply did not fit
			continue
		default:
			c.reply = reply.Replies[i]
		}
		close(c.done)
	}
}

// errBadBatchReply: a batch's reply did not match it; the outcome of its
// requests is unknown.
var errBadBatchReply = errors.New("dataplane: malformed batch reply")

// serveBatch runs a MethodDoBatch body: every request as MethodDo would,
// in flight together: applied one after the other, then answered as their
// backups acknowledge (requests that may block run on the service's kept
// goroutines).
func (s *Service) serveBatch(ctx context.Context, body []byte) ([]byte, error) {
	var req batchRequestIn
	if err := strictmsgpack.Unmarshal(body, &req); err != nil {
		return msgpack.Marshal(&batchReply{Code: CodeInvalid, Message: err.Error()})
	}
	if len(req.Reqs) > maxForwardBatch {
		return msgpack.Marshal(&batchReply{Code: CodeInvalid, Message: fmt.Sprintf("a batch of %d requests, over %d", len(req.Reqs), maxForwardBatch)})
	}
	reply := batchReply{Replies: make([]rpcReply, len(req.Reqs))}
	// Requests that cannot block (key reads and writes) are applied one
	// after the other on this goroutine, then wait for their backups one
	// after the other (their mutations went out together, so the waits
	// overlap). Any other (a lock that waits, a scan) runs on a goroutine
	// of its own.
	var wg sync.WaitGroup
	runs := make([]localRun, len(req.Reqs))
	applied := make([]bool, len(req.Reqs))
	for i := range req.Reqs {
		r := &req.Reqs[i]
		if !r.Op.nonBlocking() {
			wg.Add(1)
			s.workers.Go(func() {
				defer wg.Done()
				reply.Replies[i] = s.serveRequest(ctx, r)
			})
			continue
		}
		if err := s.localApply(ctx, r, &runs[i]); err != nil {
			reply.Replies[i] = rpcReply{Version: runs[i].version(), Code: codeFor(err), Message: err.Error()}
			continue
		}
		applied[i] = true
	}
	for i := range req.Reqs {
		if applied[i] {
			resp, version, err := s.localFinish(ctx, &req.Reqs[i], &runs[i])
			if err != nil {
				reply.Replies[i] = rpcReply{Version: version, Code: codeFor(err), Message: err.Error()}
			} else {
				reply.Replies[i] = rpcReply{Version: version, Resp: resp}
			}
		}
	}
	wg.Wait()
	size := 0
	for i := range reply.Replies {
		r := &reply.Replies[i]
		n := 64 + len(r.Message)
		if r.Resp != nil {
			n += len(r.Resp.Value) + len(r.Resp.Cursor)
			for _, k := range r.Resp.Keys {
				n += len(k) + 8
			}
		}
		if size+n > maxBatchReplyBytes && !req.Reqs[i].Op.IsWrite() {
			*r = rpcReply{Code: codeResendAlone, Message: "the batch's reply is full: send this read alone"}
			continue
		}
		size += n
	}
	return msgpack.Marshal(&reply)
}

// serveDo runs one encoded Request (MethodDo's body).
func (s *Service) serveDo(ctx context.Context, body []byte) rpcReply {
	var req Request
	if err := strictmsgpack.Unmarshal(body, &req); err != nil {
		return rpcReply{Code: CodeInvalid, Message: err.Error()}
	}
	return s.serveRequest(ctx, &req)
}

// serveRequest runs a request a peer forwarded here.
func (s *Service) serveRequest(ctx context.Context, req *Request) rpcReply {
	resp, version, err := s.local(ctx, req)
	if err != nil {
		return rpcReply{Version: version, Code: codeFor(err), Message: err.Error()}
	}
	return rpcReply{Version: version, Resp: resp}
}

// broadcastTicker is a coarse clock for many waiters at once: C returns a
// channel that is closed at the next tick (no timer per waiter).
type broadcastTicker struct {
	ch atomic.Pointer[chan struct{}]
}

func newBroadcastTicker() *broadcastTicker {
	t := &broadcastTicker{}
	ch := make(chan struct{})
	t.ch.Store(&ch)
	return t
}

// C returns the channel closed at the next tick.
func (t *broadcastTicker) C() <-chan struct{} { return *t.ch.Load() }

// run ticks every period until stop is closed.
func (t *broadcastTicker) run(stop <-chan struct{}, period time.Duration) {
	tk := time.NewTicker(period)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			next := make(chan struct{})
			close(*t.ch.Swap(&next))
		}
	}
}
