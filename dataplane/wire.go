package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/olric-raft/olric-raft/metadata"
)

// Hand-written msgpack codecs for the data-plane RPC messages (Request,
// Response, rpcReply, replicateRequest, replItem, Mutation,
// replicateReply, replResult): the reflection encoder and decoder of
// vmihailenco/msgpack cost about a fifth of a member's CPU under load.
// The partition copy a replItem carries (PartitionSnapshot and its
// DMapSnapshot, EntrySnapshot and LockSnapshot) is coded by hand too, but
// only from replItem's codec: those types keep no msgpack methods, so
// elsewhere (transferReply, tests) they still take the reflection codec,
// under the caller's unknown-key setting. A copy's dedupe records
// (RequestSnapshot) are few and small: the library codes them.
//
// The wire format is exactly the reflection codec's (members running the
// old and the new code interoperate; wire_test.go proves it byte for
// byte): a map keyed by the msgpack tag names, fields in struct order,
// omitempty fields left out when empty (a non-nil empty []byte too),
// every other field always present. With the library's default encoder
// settings it encodes each Go type as the reflection encoder does:
// uint8 (Op, MutationKind) as uint8 (0xcc), uint32 as uint32 (0xce),
// uint64 as uint64 (0xcf), int64 and time.Duration as int64 (0xd3), int
// in the shortest form, float64 as float64 (0xcb), a nil slice or pointer
// as nil. An omitempty float is empty when == 0 (so -0 is left out and NaN
// is not).
//
// Decoding accepts what the reflection decoder accepts: keys in any order
// (a later duplicate wins), any integer width or sign the library's
// DecodeUint64/DecodeInt64 accept (narrower fields truncate as
// reflect.Value.SetUint/SetInt do), nil for any field (zero; a nil array
// of strings leaves the field as it was, like the library), str or bin for
// strings and bytes, and the array form of a struct (UseArrayEncodedStructs).
// Decoding into a value that is not zero (nothing here does; a duplicate
// key does) also matches: absent fields are kept, a non-nil pointer and
// the elements of a slice of structs are decoded into; only byte and
// string slices are freshly allocated rather than overwritten in place
// (same contents). Lengths read from the input never size an
// allocation beyond a fixed bound: byte strings grow in 64 KiB steps as
// their bytes arrive, slices of structs and strings from a bounded
// capacity.
//
// Unknown keys: the reflection decoder refuses them under
// Decoder.DisallowUnknownFields(true) (strictmsgpack.Unmarshal, used by
// Service.ServeRPC for incoming requests) and skips them otherwise
// (msgpack.Unmarshal, used by transport.Client.Call for replies: a newer
// member may add reply fields). The Decoder has no getter for that
// setting, so the policy goes by the message decoded at the top: requests
// (Request, replicateRequest, replItem, Mutation) refuse unknown keys,
// replies (rpcReply, Response, replicateReply, replResult) skip them; what
// a message carries is decoded under its policy (a Response inside a
// replicated Mutation refuses them). That is what the module's two call
// paths ask for. A copy's dedupe records are decoded by the library from
// their raw bytes with the setting of the copy's message; the Response
// in one skips unknown keys (its codec's own policy), as it did when the
// library decoded whole copies.
//
// The codecs implement the library's default settings only; nothing in
// this module changes them (no UseCompactInts, SetOmitEmpty,
// UseArrayEncodedStructs, interned strings or dictionaries).

// Field names in struct order, for the array form of a struct.
var (
	requestFields          = []string{"op", "dm", "k", "v", "ttl", "exat", "kttl", "nx", "xx", "ifv", "hifv", "d", "df", "w", "tok", "p", "m", "c", "l", "rv", "le", "rid"}
	responseFields         = []string{"f", "v", "ver", "ttl", "del", "i", "fl", "tok", "keys", "c", "rv"}
	rpcReplyFields         = []string{"code", "msg", "rv", "resp"}
	replicateRequestFields = []string{"f", "v", "items"}
	replItemFields         = []string{"p", "e", "snap", "res", "rsq", "m", "ch", "more"}
	replicateReplyFields   = []string{"code", "msg", "res"}
	replResultFields       = []string{"p", "s", "part", "code", "msg"}
	mutationFields         = []string{"s", "e", "k", "dm", "key", "v", "ver", "exp", "rid", "res"}
	requestResultFields    = []string{"at", "fp", "resp", "code", "msg"}
	snapshotFields         = []string{"fmt", "p", "seq", "fence", "dmaps", "reqs"}
	dmapSnapshotFields     = []string{"name", "entries", "locks"}
	entrySnapshotFields    = []string{"k", "v", "ver", "exp"}
	lockSnapshotFields     = []string{"k", "tok", "exp"}
)

// Bounds on preallocation from an untrusted length.
const (
	wireBinStep        = 64 << 10 // bytes of a byte string allocated ahead of its data
	wireStructPrealloc = 64       // elements of a slice of structs
	wireStringPrealloc = 1024     // elements of a slice of strings
)

// ---------------------------------------------------------------------------
// Encoding.

// wenc writes map entries, keeping the first error.
type wenc struct {
	e   *msgpack.Encoder
	err error
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (w *wenc) mapLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeMapLen(n)
	}
}

func (w *wenc) key(k string) {
	if w.err == nil {
		w.err = w.e.EncodeString(k)
	}
}

func (w *wenc) str(k, v string) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeString(v)
	}
}

func (w *wenc) bin(k string, v []byte) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeBytes(v)
	}
}

func (w *wenc) u8(k string, v uint8) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeUint8(v)
	}
}

func (w *wenc) u32(k string, v uint32) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeUint32(v)
	}
}

func (w *wenc) u64(k string, v uint64) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeUint64(v)
	}
}

func (w *wenc) i64(k string, v int64) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeInt64(v)
	}
}

func (w *wenc) int(k string, v int) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeInt(int64(v))
	}
}

func (w *wenc) f64(k string, v float64) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeFloat64(v)
	}
}

func (w *wenc) boolean(k string, v bool) {
	w.key(k)
	if w.err == nil {
		w.err = w.e.EncodeBool(v)
	}
}

func (w *wenc) arrayLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeArrayLen(n)
	}
}

func (w *wenc) null() {
	if w.err == nil {
		w.err = w.e.EncodeNil()
	}
}

// EncodeMsgpack implements msgpack.CustomEncoder (see wire.go's comment).
// The value receiver lets msgpack.Marshal take a Request or a *Request.
func (r Request) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	r.encodeWire(&w)
	return w.err
}

func (r *Request) encodeWire(w *wenc) {
	w.mapLen(2 + b2i(r.Key != "") + b2i(len(r.Value) != 0) + b2i(r.TTL != 0) + b2i(r.ExpireAt != 0) +
		b2i(r.KeepTTL) + b2i(r.NX) + b2i(r.XX) + b2i(r.IfVersion != 0) + b2i(r.HasIfVersion) +
		b2i(r.Delta != 0) + b2i(r.DeltaFloat != 0) + b2i(r.Wait != 0) + b2i(r.Token != 0) +
		b2i(r.Partition != 0) + b2i(r.Match != "") + b2i(r.Cursor != "") + b2i(r.Limit != 0) +
		b2i(r.RoutingVersion != 0) + b2i(r.LeaderEpoch != 0) + b2i(r.RequestID != ""))
	w.u8("op", uint8(r.Op))
	w.str("dm", r.DMap)
	if r.Key != "" {
		w.str("k", r.Key)
	}
	if len(r.Value) != 0 {
		w.bin("v", r.Value)
	}
	if r.TTL != 0 {
		w.i64("ttl", int64(r.TTL))
	}
	if r.ExpireAt != 0 {
		w.i64("exat", r.ExpireAt)
	}
	if r.KeepTTL {
		w.boolean("kttl", true)
	}
	if r.NX {
		w.boolean("nx", true)
	}
	if r.XX {
		w.boolean("xx", true)
	}
	if r.IfVersion != 0 {
		w.u64("ifv", r.IfVersion)
	}
	if r.HasIfVersion {
		w.boolean("hifv", true)
	}
	if r.Delta != 0 {
		w.i64("d", r.Delta)
	}
	if r.DeltaFloat != 0 {
		w.f64("df", r.DeltaFloat)
	}
	if r.Wait != 0 {
		w.i64("w", int64(r.Wait))
	}
	if r.Token != 0 {
		w.u64("tok", r.Token)
	}
	if r.Partition != 0 {
		w.u32("p", r.Partition)
	}
	if r.Match != "" {
		w.str("m", r.Match)
	}
	if r.Cursor != "" {
		w.str("c", r.Cursor)
	}
	if r.Limit != 0 {
		w.int("l", r.Limit)
	}
	if r.RoutingVersion != 0 {
		w.u64("rv", r.RoutingVersion)
	}
	if r.LeaderEpoch != 0 {
		w.u64("le", r.LeaderEpoch)
	}
	if r.RequestID != "" {
		w.str("rid", r.RequestID)
	}
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r Response) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	r.encodeWire(&w)
	return w.err
}

func (r *Response) encodeWire(w *wenc) {
	w.mapLen(b2i(r.Found) + b2i(len(r.Value) != 0) + b2i(r.Version != 0) + b2i(r.TTL != 0) +
		b2i(r.Deleted) + b2i(r.Int != 0) + b2i(r.Float != 0) + b2i(r.Token != 0) +
		b2i(len(r.Keys) != 0) + b2i(r.Cursor != "") + b2i(r.RoutingVersion != 0))
	if r.Found {
		w.boolean("f", true)
	}
	if len(r.Value) != 0 {
		w.bin("v", r.Value)
	}
	if r.Version != 0 {
		w.u64("ver", r.Version)
	}
	if r.TTL != 0 {
		w.i64("ttl", int64(r.TTL))
	}
	if r.Deleted {
		w.boolean("del", true)
	}
	if r.Int != 0 {
		w.i64("i", r.Int)
	}
	if r.Float != 0 {
		w.f64("fl", r.Float)
	}
	if r.Token != 0 {
		w.u64("tok", r.Token)
	}
	if len(r.Keys) != 0 {
		w.key("keys")
		w.arrayLen(len(r.Keys))
		for _, k := range r.Keys {
			if w.err == nil {
				w.err = w.e.EncodeString(k)
			}
		}
	}
	if r.Cursor != "" {
		w.str("c", r.Cursor)
	}
	if r.RoutingVersion != 0 {
		w.u64("rv", r.RoutingVersion)
	}
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r rpcReply) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	w.mapLen(b2i(r.Code != "") + b2i(r.Message != "") + b2i(r.Version != 0) + b2i(r.Resp != nil))
	if r.Code != "" {
		w.str("code", r.Code)
	}
	if r.Message != "" {
		w.str("msg", r.Message)
	}
	if r.Version != 0 {
		w.u64("rv", r.Version)
	}
	if r.Resp != nil {
		w.key("resp")
		r.Resp.encodeWire(&w)
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r replicateRequest) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	w.mapLen(3)
	w.str("f", string(r.From))
	w.u64("v", r.Version)
	w.key("items")
	if r.Items == nil {
		w.null()
	} else {
		w.arrayLen(len(r.Items))
		for i := range r.Items {
			r.Items[i].encodeWire(&w)
		}
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (it replItem) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	it.encodeWire(&w)
	return w.err
}

func (it *replItem) encodeWire(w *wenc) {
	w.mapLen(2 + b2i(it.Snap != nil) + b2i(it.Resume) + b2i(it.ResumeSeq != 0) + b2i(len(it.Muts) != 0) +
		b2i(it.Chunk != 0) + b2i(it.More))
	w.u32("p", it.P)
	w.u64("e", it.Epoch)
	if it.Snap != nil {
		w.key("snap")
		it.Snap.encodeWire(w)
	}
	if it.Resume {
		w.boolean("res", true)
	}
	if it.ResumeSeq != 0 {
		w.u64("rsq", it.ResumeSeq)
	}
	if len(it.Muts) != 0 {
		w.key("m")
		w.arrayLen(len(it.Muts))
		for i := range it.Muts {
			it.Muts[i].encodeWire(w)
		}
	}
	if it.Chunk != 0 {
		w.u32("ch", it.Chunk)
	}
	if it.More {
		w.boolean("more", true)
	}
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m Mutation) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	m.encodeWire(&w)
	return w.err
}

func (m *Mutation) encodeWire(w *wenc) {
	w.mapLen(4 + b2i(m.Key != "") + b2i(len(m.Value) != 0) + b2i(m.Version != 0) + b2i(m.ExpireAt != 0) +
		b2i(m.RequestID != "") + b2i(m.Result != nil))
	w.u64("s", m.Seq)
	w.u64("e", m.Epoch)
	w.u8("k", uint8(m.Kind))
	w.str("dm", m.DMap)
	if m.Key != "" {
		w.str("key", m.Key)
	}
	if len(m.Value) != 0 {
		w.bin("v", m.Value)
	}
	if m.Version != 0 {
		w.u64("ver", m.Version)
	}
	if m.ExpireAt != 0 {
		w.i64("exp", m.ExpireAt)
	}
	if m.RequestID != "" {
		w.str("rid", m.RequestID)
	}
	if m.Result != nil {
		w.key("res")
		encodeRequestResult(w, m.Result)
	}
}

// encodeRequestResult encodes r as the reflection encoder encodes a
// RequestResult (which keeps no methods: snapshots encode it by
// reflection).
func encodeRequestResult(w *wenc, r *RequestResult) {
	w.mapLen(1 + b2i(r.Fingerprint != 0) + b2i(r.Response != nil) + b2i(r.Code != "") + b2i(r.Message != ""))
	w.i64("at", r.At)
	if r.Fingerprint != 0 {
		w.u64("fp", r.Fingerprint)
	}
	if r.Response != nil {
		w.key("resp")
		r.Response.encodeWire(w)
	}
	if r.Code != "" {
		w.str("code", r.Code)
	}
	if r.Message != "" {
		w.str("msg", r.Message)
	}
}

// encodeWire encodes s as the reflection encoder encodes a
// PartitionSnapshot (which keeps no methods: see the package comment).
func (s *PartitionSnapshot) encodeWire(w *wenc) {
	w.mapLen(4 + b2i(len(s.DMaps) != 0) + b2i(len(s.Requests) != 0))
	w.u8("fmt", s.Format)
	w.u32("p", s.Partition)
	w.u64("seq", s.Seq)
	w.u64("fence", s.Fence)
	if len(s.DMaps) != 0 {
		w.key("dmaps")
		w.arrayLen(len(s.DMaps))
		for i := range s.DMaps {
			s.DMaps[i].encodeWire(w)
		}
	}
	if len(s.Requests) != 0 {
		// Few and small: the library encodes them.
		w.key("reqs")
		if w.err == nil {
			w.err = w.e.Encode(s.Requests)
		}
	}
}

func (d *DMapSnapshot) encodeWire(w *wenc) {
	w.mapLen(1 + b2i(len(d.Entries) != 0) + b2i(len(d.Locks) != 0))
	w.str("name", d.Name)
	if len(d.Entries) != 0 {
		w.key("entries")
		w.arrayLen(len(d.Entries))
		for i := range d.Entries {
			d.Entries[i].encodeWire(w)
		}
	}
	if len(d.Locks) != 0 {
		w.key("locks")
		w.arrayLen(len(d.Locks))
		for i := range d.Locks {
			d.Locks[i].encodeWire(w)
		}
	}
}

func (e *EntrySnapshot) encodeWire(w *wenc) {
	w.mapLen(3 + b2i(e.ExpireAt != 0))
	w.str("k", e.Key)
	w.bin("v", e.Value) // not omitempty: nil is sent as nil, empty as empty
	w.u64("ver", e.Version)
	if e.ExpireAt != 0 {
		w.i64("exp", e.ExpireAt)
	}
}

func (l *LockSnapshot) encodeWire(w *wenc) {
	w.mapLen(3)
	w.str("k", l.Key)
	w.u64("tok", l.Token)
	w.i64("exp", l.ExpireAt)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r replicateReply) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	w.mapLen(b2i(r.Code != "") + b2i(r.Message != "") + b2i(len(r.Results) != 0))
	if r.Code != "" {
		w.str("code", r.Code)
	}
	if r.Message != "" {
		w.str("msg", r.Message)
	}
	if len(r.Results) != 0 {
		w.key("res")
		w.arrayLen(len(r.Results))
		for i := range r.Results {
			r.Results[i].encodeWire(&w)
		}
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r replResult) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	r.encodeWire(&w)
	return w.err
}

func (r *replResult) encodeWire(w *wenc) {
	w.mapLen(2 + b2i(r.Partial) + b2i(r.Code != "") + b2i(r.Message != ""))
	w.u32("p", r.P)
	w.u64("s", r.Seq)
	if r.Partial {
		w.boolean("part", true)
	}
	if r.Code != "" {
		w.str("code", r.Code)
	}
	if r.Message != "" {
		w.str("msg", r.Message)
	}
}

// ---------------------------------------------------------------------------
// Decoding.

// wdec is one top-level decode's state: whether unknown keys are refused,
// and a buffer for keys.
type wdec struct {
	strict bool
	br     io.ByteScanner // the Decoder's reader, nil if not a ByteScanner
	key    [64]byte
}

var wdecPool = sync.Pool{New: func() any { return new(wdec) }}

// beginDecode returns the state for decoding with dec; strict: unknown
// keys are refused (see the package comment above).
func beginDecode(dec *msgpack.Decoder, strict bool) *wdec {
	st := wdecPool.Get().(*wdec)
	st.strict = strict
	// Keys are read straight from the Decoder's reader, which its own
	// methods read from too (Buffered returns it).
	st.br, _ = dec.Buffered().(io.ByteScanner)
	return st
}

func endDecode(st *wdec) {
	st.br = nil
	wdecPool.Put(st)
}

// wireStruct is a type with a hand-written decoder.
type wireStruct interface {
	// wireField decodes the value of field key; false: no such field
	// (nothing read).
	wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error)
	// wireZero sets the value to its zero value.
	wireZero()
}

// decodeStruct decodes a struct encoded as a map (or as an array of its
// fields in order: names), as the reflection decoder's decodeStructValue
// does.
func decodeStruct(dec *msgpack.Decoder, st *wdec, v wireStruct, names []string) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		v.wireZero()
		return dec.DecodeNil()
	}
	if msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32 {
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return err
		}
		if n <= 0 {
			v.wireZero()
			return nil
		}
		if n != len(names) {
			return fmt.Errorf("msgpack: number of fields in array-encoded struct has changed")
		}
		for _, name := range names {
			if _, err := v.wireField(dec, st, []byte(name)); err != nil {
				return err
			}
		}
		return nil
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return fmt.Errorf("msgpack: invalid code=%x decoding map length", c)
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		key, long, err := st.readKey(dec)
		if err != nil {
			return err
		}
		if !long {
			known, err := v.wireField(dec, st, key)
			if err != nil {
				return err
			}
			if known {
				continue
			}
		}
		if st.strict {
			if long {
				return fmt.Errorf("msgpack: unknown field %q (the start of a longer name)", key)
			}
			return fmt.Errorf("msgpack: unknown field %q", key)
		}
		if err := dec.Skip(); err != nil {
			return err
		}
	}
	return nil
}

// readKey reads a map key (str, bin or nil) into st.key without
// allocating. A key longer than st.key (no field has one) is read in
// full; its start is returned with long set.
func (st *wdec) readKey(dec *msgpack.Decoder) (key []byte, long bool, err error) {
	if st.br != nil {
		// Fast path for the usual fixstr key.
		c, err := st.br.ReadByte()
		if err != nil {
			return nil, false, err
		}
		if msgpcode.IsFixedString(c) {
			n := int(c & msgpcode.FixedStrMask)
			for i := range n {
				if st.key[i], err = st.br.ReadByte(); err != nil {
					return nil, false, err
				}
			}
			return st.key[:n], false, nil
		}
		if err := st.br.UnreadByte(); err != nil {
			return nil, false, err
		}
	}
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, false, err
	}
	if n <= 0 {
		return st.key[:0], false, nil
	}
	if n <= len(st.key) {
		return st.key[:n], false, dec.ReadFull(st.key[:n])
	}
	var head [32]byte
	if err := dec.ReadFull(st.key[:len(head)]); err != nil {
		return nil, true, err
	}
	copy(head[:], st.key[:])
	for rest := n - len(head); rest > 0; {
		m := min(rest, len(st.key))
		if err := dec.ReadFull(st.key[:m]); err != nil {
			return nil, true, err
		}
		rest -= m
	}
	k := copy(st.key[:], head[:])
	return st.key[:k], true, nil
}

// decodeBin decodes a byte string as the reflection decoder does (nil for
// nil, a non-nil empty slice for an empty one; str accepted), allocating
// at most wireBinStep bytes ahead of the data read.
func decodeBin(dec *msgpack.Decoder) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n <= wireBinStep {
		b := make([]byte, n)
		if n > 0 {
			if err := dec.ReadFull(b); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	b := make([]byte, 0, wireBinStep)
	for len(b) < n {
		start := len(b)
		b = append(b, make([]byte, min(n-start, max(start, wireBinStep)))...)
		if err := dec.ReadFull(b[start:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// decodeStrings decodes an array of strings as the reflection decoder does
// (nil leaves *p as it was; an empty array gives a non-nil empty slice).
func decodeStrings(dec *msgpack.Decoder, p *[]string) error {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return err
	}
	ss := make([]string, 0, min(n, wireStringPrealloc))
	for i := 0; i < n; i++ {
		s, err := dec.DecodeString()
		if err != nil {
			return err
		}
		ss = append(ss, s)
	}
	*p = ss
	return nil
}

// decodeSlice decodes an array of structs as the reflection decoder does:
// nil gives a nil slice, an empty array a non-nil empty one, and elements
// are decoded into the destination's backing array where it has room
// (only a duplicate key meets a non-empty destination). Unlike the
// reflection decoder, it grows the slice as elements arrive rather than
// allocating the announced length up front.
func decodeSlice[T any, PT interface {
	*T
	wireStruct
}](dec *msgpack.Decoder, st *wdec, p *[]T, names []string) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*p = nil
		return nil
	}
	s := *p
	if s == nil {
		s = make([]T, 0, min(n, wireStructPrealloc))
	}
	s = s[:min(n, cap(s))]
	for i := 0; i < n; i++ {
		if i == len(s) {
			var zero T
			s = append(s, zero)
			s = s[:min(n, cap(s))]
		}
		if err := decodeStruct(dec, st, PT(&s[i]), names); err != nil {
			return err
		}
	}
	*p = s
	return nil
}

// decodeUint decodes any msgpack integer (or nil: 0) as an uint64.
func decodeUint(dec *msgpack.Decoder, err *error) uint64 {
	n, e := dec.DecodeUint64()
	*err = e
	return n
}

func decodeInt(dec *msgpack.Decoder, err *error) int64 {
	n, e := dec.DecodeInt64()
	*err = e
	return n
}

// DecodeMsgpack implements msgpack.CustomDecoder (see wire.go's comment).
func (r *Request) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, true)
	err := decodeStruct(dec, st, r, requestFields)
	endDecode(st)
	return err
}

func (r *Request) wireZero() { *r = Request{} }

func (r *Request) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "op":
		r.Op = Op(decodeUint(dec, &err))
	case "dm":
		r.DMap, err = dec.DecodeString()
	case "k":
		r.Key, err = dec.DecodeString()
	case "v":
		r.Value, err = decodeBin(dec)
	case "ttl":
		r.TTL = time.Duration(decodeInt(dec, &err))
	case "exat":
		r.ExpireAt = decodeInt(dec, &err)
	case "kttl":
		r.KeepTTL, err = dec.DecodeBool()
	case "nx":
		r.NX, err = dec.DecodeBool()
	case "xx":
		r.XX, err = dec.DecodeBool()
	case "ifv":
		r.IfVersion = decodeUint(dec, &err)
	case "hifv":
		r.HasIfVersion, err = dec.DecodeBool()
	case "d":
		r.Delta = decodeInt(dec, &err)
	case "df":
		r.DeltaFloat, err = dec.DecodeFloat64()
	case "w":
		r.Wait = time.Duration(decodeInt(dec, &err))
	case "tok":
		r.Token = decodeUint(dec, &err)
	case "p":
		r.Partition = uint32(decodeUint(dec, &err))
	case "m":
		r.Match, err = dec.DecodeString()
	case "c":
		r.Cursor, err = dec.DecodeString()
	case "l":
		r.Limit = int(decodeInt(dec, &err))
	case "rv":
		r.RoutingVersion = decodeUint(dec, &err)
	case "le":
		r.LeaderEpoch = decodeUint(dec, &err)
	case "rid":
		r.RequestID, err = dec.DecodeString()
	default:
		return false, nil
	}
	return true, err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *Response) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, r, responseFields)
	endDecode(st)
	return err
}

func (r *Response) wireZero() { *r = Response{} }

func (r *Response) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "f":
		r.Found, err = dec.DecodeBool()
	case "v":
		r.Value, err = decodeBin(dec)
	case "ver":
		r.Version = decodeUint(dec, &err)
	case "ttl":
		r.TTL = time.Duration(decodeInt(dec, &err))
	case "del":
		r.Deleted, err = dec.DecodeBool()
	case "i":
		r.Int = decodeInt(dec, &err)
	case "fl":
		r.Float, err = dec.DecodeFloat64()
	case "tok":
		r.Token = decodeUint(dec, &err)
	case "keys":
		err = decodeStrings(dec, &r.Keys)
	case "c":
		r.Cursor, err = dec.DecodeString()
	case "rv":
		r.RoutingVersion = decodeUint(dec, &err)
	default:
		return false, nil
	}
	return true, err
}

// decodeResponsePtr decodes a *Response field: nil sets it nil, anything
// else decodes into it (allocated if nil).
func decodeResponsePtr(dec *msgpack.Decoder, st *wdec, p **Response) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		*p = nil
		return dec.DecodeNil()
	}
	if *p == nil {
		*p = new(Response)
	}
	return decodeStruct(dec, st, *p, responseFields)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *rpcReply) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, r, rpcReplyFields)
	endDecode(st)
	return err
}

func (r *rpcReply) wireZero() { *r = rpcReply{} }

func (r *rpcReply) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "code":
		r.Code, err = dec.DecodeString()
	case "msg":
		r.Message, err = dec.DecodeString()
	case "rv":
		r.Version = decodeUint(dec, &err)
	case "resp":
		err = decodeResponsePtr(dec, st, &r.Resp)
	default:
		return false, nil
	}
	return true, err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *replicateRequest) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, true)
	err := decodeStruct(dec, st, r, replicateRequestFields)
	endDecode(st)
	return err
}

func (r *replicateRequest) wireZero() { *r = replicateRequest{} }

func (r *replicateRequest) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "f":
		var s string
		s, err = dec.DecodeString()
		r.From = metadata.NodeID(s)
	case "v":
		r.Version = decodeUint(dec, &err)
	case "items":
		err = decodeSlice(dec, st, &r.Items, replItemFields)
	default:
		return false, nil
	}
	return true, err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (it *replItem) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, true)
	err := decodeStruct(dec, st, it, replItemFields)
	endDecode(st)
	return err
}

func (it *replItem) wireZero() { *it = replItem{} }

func (it *replItem) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "p":
		it.P = uint32(decodeUint(dec, &err))
	case "e":
		it.Epoch = decodeUint(dec, &err)
	case "snap":
		err = decodeSnapshotPtr(dec, st, &it.Snap)
	case "res":
		it.Resume, err = dec.DecodeBool()
	case "rsq":
		it.ResumeSeq = decodeUint(dec, &err)
	case "m":
		err = decodeSlice(dec, st, &it.Muts, mutationFields)
	case "ch":
		it.Chunk = uint32(decodeUint(dec, &err))
	case "more":
		it.More, err = dec.DecodeBool()
	default:
		return false, nil
	}
	return true, err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *Mutation) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, true)
	err := decodeStruct(dec, st, m, mutationFields)
	endDecode(st)
	return err
}

func (m *Mutation) wireZero() { *m = Mutation{} }

func (m *Mutation) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "s":
		m.Seq = decodeUint(dec, &err)
	case "e":
		m.Epoch = decodeUint(dec, &err)
	case "k":
		m.Kind = MutationKind(decodeUint(dec, &err))
	case "dm":
		m.DMap, err = dec.DecodeString()
	case "key":
		m.Key, err = dec.DecodeString()
	case "v":
		m.Value, err = decodeBin(dec)
	case "ver":
		m.Version = decodeUint(dec, &err)
	case "exp":
		m.ExpireAt = decodeInt(dec, &err)
	case "rid":
		m.RequestID, err = dec.DecodeString()
	case "res":
		err = decodeRequestResultPtr(dec, st, &m.Result)
	default:
		return false, nil
	}
	return true, err
}

// requestResultWire decodes a RequestResult as the reflection decoder
// does, without giving RequestResult methods.
type requestResultWire RequestResult

func (r *requestResultWire) wireZero() { *r = requestResultWire{} }

func (r *requestResultWire) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "at":
		r.At = decodeInt(dec, &err)
	case "fp":
		r.Fingerprint = decodeUint(dec, &err)
	case "resp":
		err = decodeResponsePtr(dec, st, &r.Response)
	case "code":
		r.Code, err = dec.DecodeString()
	case "msg":
		r.Message, err = dec.DecodeString()
	default:
		return false, nil
	}
	return true, err
}

func decodeRequestResultPtr(dec *msgpack.Decoder, st *wdec, p **RequestResult) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		*p = nil
		return dec.DecodeNil()
	}
	if *p == nil {
		*p = new(RequestResult)
	}
	return decodeStruct(dec, st, (*requestResultWire)(*p), requestResultFields)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *replicateReply) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, r, replicateReplyFields)
	endDecode(st)
	return err
}

func (r *replicateReply) wireZero() { *r = replicateReply{} }

func (r *replicateReply) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "code":
		r.Code, err = dec.DecodeString()
	case "msg":
		r.Message, err = dec.DecodeString()
	case "res":
		err = decodeSlice(dec, st, &r.Results, replResultFields)
	default:
		return false, nil
	}
	return true, err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *replResult) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, r, replResultFields)
	endDecode(st)
	return err
}

func (r *replResult) wireZero() { *r = replResult{} }

func (r *replResult) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "p":
		r.P = uint32(decodeUint(dec, &err))
	case "s":
		r.Seq = decodeUint(dec, &err)
	case "part":
		r.Partial, err = dec.DecodeBool()
	case "code":
		r.Code, err = dec.DecodeString()
	case "msg":
		r.Message, err = dec.DecodeString()
	default:
		return false, nil
	}
	return true, err
}

// decodeSnapshotPtr decodes a *PartitionSnapshot field as decodeResponsePtr
// does a *Response.
func decodeSnapshotPtr(dec *msgpack.Decoder, st *wdec, p **PartitionSnapshot) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		*p = nil
		return dec.DecodeNil()
	}
	if *p == nil {
		*p = new(PartitionSnapshot)
	}
	return decodeStruct(dec, st, *p, snapshotFields)
}

func (s *PartitionSnapshot) wireZero() { *s = PartitionSnapshot{} }

func (s *PartitionSnapshot) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "fmt":
		s.Format = uint8(decodeUint(dec, &err))
	case "p":
		s.Partition = uint32(decodeUint(dec, &err))
	case "seq":
		s.Seq = decodeUint(dec, &err)
	case "fence":
		s.Fence = decodeUint(dec, &err)
	case "dmaps":
		err = decodeSlice(dec, st, &s.DMaps, dmapSnapshotFields)
	case "reqs":
		err = decodeLibrary(dec, st, &s.Requests)
	default:
		return false, nil
	}
	return true, err
}

// decodeLibrary decodes the next value into v (a pointer) with the
// library, under st's unknown-key policy. The Decoder has no getter for
// its own setting, so a sub-decoder reads a copy of the value's bytes:
// only for values that are few and small.
func decodeLibrary(dec *msgpack.Decoder, st *wdec, v any) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	sub := msgpack.NewDecoder(bytes.NewReader(raw))
	sub.DisallowUnknownFields(st.strict)
	return sub.Decode(v)
}

func (d *DMapSnapshot) wireZero() { *d = DMapSnapshot{} }

func (d *DMapSnapshot) wireField(dec *msgpack.Decoder, st *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "name":
		d.Name, err = dec.DecodeString()
	case "entries":
		err = decodeSlice(dec, st, &d.Entries, entrySnapshotFields)
	case "locks":
		err = decodeSlice(dec, st, &d.Locks, lockSnapshotFields)
	default:
		return false, nil
	}
	return true, err
}

func (e *EntrySnapshot) wireZero() { *e = EntrySnapshot{} }

func (e *EntrySnapshot) wireField(dec *msgpack.Decoder, _ *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "k":
		e.Key, err = dec.DecodeString()
	case "v":
		e.Value, err = decodeBin(dec)
	case "ver":
		e.Version = decodeUint(dec, &err)
	case "exp":
		e.ExpireAt = decodeInt(dec, &err)
	default:
		return false, nil
	}
	return true, err
}

func (l *LockSnapshot) wireZero() { *l = LockSnapshot{} }

func (l *LockSnapshot) wireField(dec *msgpack.Decoder, _ *wdec, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "k":
		l.Key, err = dec.DecodeString()
	case "tok":
		l.Token = decodeUint(dec, &err)
	case "exp":
		l.ExpireAt = decodeInt(dec, &err)
	default:
		return false, nil
	}
	return true, err
}
