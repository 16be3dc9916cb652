package dataplane

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/metadata"
)

// The reference: types with the same fields and tags as the wire types
// but no methods, so the library encodes and decodes them by reflection,
// as every member did before wire.go. Nested wire types are mirrored too
// (rpcReplyNoCodec.Resp is a *responseNoCodec, not a *Response), so the
// reference never runs a hand-written codec. TestWireTwinsMirror checks
// the mirrors have exactly the originals' fields, tags and layout; values
// are converted with unsafe pointer casts.
type (
	requestNoCodec    Request
	responseNoCodec   Response
	replResultNoCodec replResult

	rpcReplyNoCodec struct {
		Code    string           `msgpack:"code,omitempty"`
		Message string           `msgpack:"msg,omitempty"`
		Version uint64           `msgpack:"rv,omitempty"`
		Resp    *responseNoCodec `msgpack:"resp,omitempty"`
	}
	requestResultNoCodec struct {
		At          int64            `msgpack:"at"`
		Fingerprint uint64           `msgpack:"fp,omitempty"`
		Response    *responseNoCodec `msgpack:"resp,omitempty"`
		Code        string           `msgpack:"code,omitempty"`
		Message     string           `msgpack:"msg,omitempty"`
	}
	mutationNoCodec struct {
		Seq       uint64                `msgpack:"s"`
		Epoch     uint64                `msgpack:"e"`
		Kind      MutationKind          `msgpack:"k"`
		DMap      string                `msgpack:"dm"`
		Key       string                `msgpack:"key,omitempty"`
		Value     []byte                `msgpack:"v,omitempty"`
		Version   uint64                `msgpack:"ver,omitempty"`
		ExpireAt  int64                 `msgpack:"exp,omitempty"`
		RequestID string                `msgpack:"rid,omitempty"`
		Result    *requestResultNoCodec `msgpack:"res,omitempty"`
	}
	replItemNoCodec struct {
		P         uint32             `msgpack:"p"`
		Epoch     uint64             `msgpack:"e"`
		Snap      *PartitionSnapshot `msgpack:"snap,omitempty"`
		Resume    bool               `msgpack:"res,omitempty"`
		ResumeSeq uint64             `msgpack:"rsq,omitempty"`
		Muts      []mutationNoCodec  `msgpack:"m,omitempty"`
		Chunk     uint32             `msgpack:"ch,omitempty"`
		More      bool               `msgpack:"more,omitempty"`
	}
	replicateRequestNoCodec struct {
		From    metadata.NodeID   `msgpack:"f"`
		Version uint64            `msgpack:"v"`
		Items   []replItemNoCodec `msgpack:"items"`
	}
	replicateReplyNoCodec struct {
		Code    string              `msgpack:"code,omitempty"`
		Message string              `msgpack:"msg,omitempty"`
		Results []replResultNoCodec `msgpack:"res,omitempty"`
	}
)

// snapshotHand is a PartitionSnapshot coded by wire.go's snapshot codec,
// which only replItem's codec calls (PartitionSnapshot keeps no methods),
// decoded under a reply's policy (unknown keys skipped): it tests that
// codec against the reflection codec of PartitionSnapshot itself, its
// reference twin.
type snapshotHand PartitionSnapshot

func (s snapshotHand) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := wenc{e: enc}
	(*PartitionSnapshot)(&s).encodeWire(&w)
	return w.err
}

func (s *snapshotHand) DecodeMsgpack(dec *msgpack.Decoder) error {
	st := beginDecode(dec, false)
	err := decodeStruct(dec, st, (*PartitionSnapshot)(s), snapshotFields)
	endDecode(st)
	return err
}

// twinOf maps each wire type to its reference mirror.
var twinOf = map[reflect.Type]reflect.Type{
	reflect.TypeFor[snapshotHand]():     reflect.TypeFor[PartitionSnapshot](),
	reflect.TypeFor[Request]():          reflect.TypeFor[requestNoCodec](),
	reflect.TypeFor[Response]():         reflect.TypeFor[responseNoCodec](),
	reflect.TypeFor[rpcReply]():         reflect.TypeFor[rpcReplyNoCodec](),
	reflect.TypeFor[RequestResult]():    reflect.TypeFor[requestResultNoCodec](),
	reflect.TypeFor[Mutation]():         reflect.TypeFor[mutationNoCodec](),
	reflect.TypeFor[replItem]():         reflect.TypeFor[replItemNoCodec](),
	reflect.TypeFor[replicateRequest](): reflect.TypeFor[replicateRequestNoCodec](),
	reflect.TypeFor[replicateReply]():   reflect.TypeFor[replicateReplyNoCodec](),
	reflect.TypeFor[replResult]():       reflect.TypeFor[replResultNoCodec](),
}

// TestWireTwinsMirror: every reference mirror has its original's fields
// (names, tags, offsets, types up to the mirroring), so the unsafe casts
// are sound and the reference encodes what the originals did.
func TestWireTwinsMirror(t *testing.T) {
	var same func(a, b reflect.Type) bool
	same = func(a, b reflect.Type) bool {
		if tw, ok := twinOf[a]; ok && tw == b {
			if a.NumField() != b.NumField() || a.Size() != b.Size() {
				return false
			}
			for i := range a.NumField() {
				fa, fb := a.Field(i), b.Field(i)
				if fa.Name != fb.Name || fa.Tag != fb.Tag || fa.Offset != fb.Offset || !same(fa.Type, fb.Type) {
					t.Errorf("%s.%s does not mirror %s.%s", b, fb.Name, a, fa.Name)
					return false
				}
			}
			return true
		}
		if a == b {
			return true
		}
		if a.Kind() != b.Kind() {
			return false
		}
		switch a.Kind() {
		case reflect.Pointer, reflect.Slice:
			return same(a.Elem(), b.Elem())
		}
		return false
	}
	for a, b := range twinOf {
		if !same(a, b) {
			t.Errorf("%s does not mirror %s", b, a)
		}
		if reflect.PointerTo(b).Implements(reflect.TypeFor[msgpack.CustomEncoder]()) ||
			reflect.PointerTo(b).Implements(reflect.TypeFor[msgpack.CustomDecoder]()) {
			t.Errorf("reference type %s has a codec", b)
		}
	}
	for typ, names := range map[reflect.Type][]string{
		reflect.TypeFor[Request](): requestFields, reflect.TypeFor[Response](): responseFields,
		reflect.TypeFor[rpcReply](): rpcReplyFields, reflect.TypeFor[replicateRequest](): replicateRequestFields,
		reflect.TypeFor[replItem](): replItemFields, reflect.TypeFor[replicateReply](): replicateReplyFields,
		reflect.TypeFor[replResult](): replResultFields, reflect.TypeFor[Mutation](): mutationFields,
		reflect.TypeFor[RequestResult](): requestResultFields, reflect.TypeFor[PartitionSnapshot](): snapshotFields,
		reflect.TypeFor[DMapSnapshot](): dmapSnapshotFields, reflect.TypeFor[EntrySnapshot](): entrySnapshotFields,
		reflect.TypeFor[LockSnapshot](): lockSnapshotFields,
	} {
		var tags []string
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				tags = append(tags, strings.Split(f.Tag.Get("msgpack"), ",")[0])
			}
		}
		if !reflect.DeepEqual(tags, names) {
			t.Errorf("%s: field list %q, tags %q", typ, names, tags)
		}
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[Request](), reflect.TypeFor[Response](), reflect.TypeFor[rpcReply](),
		reflect.TypeFor[replicateRequest](), reflect.TypeFor[replItem](), reflect.TypeFor[Mutation](),
		reflect.TypeFor[replicateReply](), reflect.TypeFor[replResult]()} {
		if !typ.Implements(reflect.TypeFor[msgpack.CustomEncoder]()) || !reflect.PointerTo(typ).Implements(reflect.TypeFor[msgpack.CustomDecoder]()) {
			t.Errorf("%s lacks a hand-written codec", typ)
		}
	}
	// The snapshot types keep the reflection codec outside replItem (the
	// transfer reply, the reference above): methods would change how
	// those paths treat unknown keys.
	for _, typ := range []reflect.Type{reflect.TypeFor[PartitionSnapshot](), reflect.TypeFor[DMapSnapshot](),
		reflect.TypeFor[EntrySnapshot](), reflect.TypeFor[LockSnapshot](), reflect.TypeFor[RequestSnapshot]()} {
		for _, iface := range []reflect.Type{reflect.TypeFor[msgpack.CustomEncoder](), reflect.TypeFor[msgpack.CustomDecoder](),
			reflect.TypeFor[msgpack.Marshaler](), reflect.TypeFor[msgpack.Unmarshaler]()} {
			if reflect.PointerTo(typ).Implements(iface) {
				t.Errorf("%s implements %s", typ, iface)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Generators.

func genOpt[V any](g *rapid.Generator[V]) *rapid.Generator[V] {
	return rapid.Custom(func(t *rapid.T) V {
		if rapid.IntRange(0, 3).Draw(t, "zero") == 0 {
			var zero V
			return zero
		}
		return g.Draw(t, "v")
	})
}

func genStr() *rapid.Generator[string] {
	return rapid.OneOf(rapid.Just(""), rapid.String(), rapid.StringN(0, 3, -1),
		rapid.StringN(30, 40, -1), // around the fixstr/str8 boundary
		rapid.Map(rapid.IntRange(250, 300), func(n int) string { return strings.Repeat("é", n/2) }))
}

func genBytes() *rapid.Generator[[]byte] {
	return rapid.OneOf(rapid.Just([]byte(nil)), rapid.Just([]byte{}), rapid.SliceOf(rapid.Byte()),
		rapid.SliceOfN(rapid.Byte(), 250, 300))
}

func genFloat() *rapid.Generator[float64] {
	return rapid.OneOf(rapid.Float64(), rapid.Just(math.Copysign(0, -1)), rapid.Just(math.NaN()),
		rapid.Just(math.Inf(1)), rapid.Just(-1.5))
}

func genDuration() *rapid.Generator[time.Duration] {
	return rapid.Map(rapid.Int64(), func(n int64) time.Duration { return time.Duration(n) })
}

var genRequest = rapid.Custom(func(t *rapid.T) Request {
	return Request{
		Op:             Op(rapid.Uint8().Draw(t, "op")),
		DMap:           genStr().Draw(t, "dm"),
		Key:            genStr().Draw(t, "k"),
		Value:          genBytes().Draw(t, "v"),
		TTL:            genOpt(genDuration()).Draw(t, "ttl"),
		ExpireAt:       genOpt(rapid.Int64()).Draw(t, "exat"),
		KeepTTL:        rapid.Bool().Draw(t, "kttl"),
		NX:             rapid.Bool().Draw(t, "nx"),
		XX:             rapid.Bool().Draw(t, "xx"),
		IfVersion:      genOpt(rapid.Uint64()).Draw(t, "ifv"),
		HasIfVersion:   rapid.Bool().Draw(t, "hifv"),
		Delta:          genOpt(rapid.Int64()).Draw(t, "d"),
		DeltaFloat:     genOpt(genFloat()).Draw(t, "df"),
		Wait:           genOpt(genDuration()).Draw(t, "w"),
		Token:          genOpt(rapid.Uint64()).Draw(t, "tok"),
		Partition:      genOpt(rapid.Uint32()).Draw(t, "p"),
		Match:          genStr().Draw(t, "m"),
		Cursor:         genStr().Draw(t, "c"),
		Limit:          genOpt(rapid.Int()).Draw(t, "l"),
		RoutingVersion: genOpt(rapid.Uint64()).Draw(t, "rv"),
		LeaderEpoch:    genOpt(rapid.Uint64()).Draw(t, "le"),
		RequestID:      genStr().Draw(t, "rid"),
	}
})

var genResponse = rapid.Custom(func(t *rapid.T) Response {
	return Response{
		Found:          rapid.Bool().Draw(t, "f"),
		Value:          genBytes().Draw(t, "v"),
		Version:        genOpt(rapid.Uint64()).Draw(t, "ver"),
		TTL:            genOpt(genDuration()).Draw(t, "ttl"),
		Deleted:        rapid.Bool().Draw(t, "del"),
		Int:            genOpt(rapid.Int64()).Draw(t, "i"),
		Float:          genOpt(genFloat()).Draw(t, "fl"),
		Token:          genOpt(rapid.Uint64()).Draw(t, "tok"),
		Keys:           rapid.OneOf(rapid.Just([]string(nil)), rapid.Just([]string{}), rapid.SliceOf(genStr())).Draw(t, "keys"),
		Cursor:         genStr().Draw(t, "c"),
		RoutingVersion: genOpt(rapid.Uint64()).Draw(t, "rv"),
	}
})

func genPtr[V any](g *rapid.Generator[V]) *rapid.Generator[*V] {
	return rapid.Custom(func(t *rapid.T) *V {
		if rapid.Bool().Draw(t, "nil") {
			return nil
		}
		v := g.Draw(t, "v")
		return &v
	})
}

var genRPCReply = rapid.Custom(func(t *rapid.T) rpcReply {
	return rpcReply{
		Code:    genStr().Draw(t, "code"),
		Message: genStr().Draw(t, "msg"),
		Version: genOpt(rapid.Uint64()).Draw(t, "rv"),
		Resp:    genPtr(genResponse).Draw(t, "resp"),
	}
})

var genRequestResult = rapid.Custom(func(t *rapid.T) RequestResult {
	return RequestResult{
		At:          rapid.Int64().Draw(t, "at"),
		Fingerprint: genOpt(rapid.Uint64()).Draw(t, "fp"),
		Response:    genPtr(genResponse).Draw(t, "resp"),
		Code:        genStr().Draw(t, "code"),
		Message:     genStr().Draw(t, "msg"),
	}
})

var genMutation = rapid.Custom(func(t *rapid.T) Mutation {
	return Mutation{
		Seq:       rapid.Uint64().Draw(t, "s"),
		Epoch:     rapid.Uint64().Draw(t, "e"),
		Kind:      MutationKind(rapid.Uint8().Draw(t, "k")),
		DMap:      genStr().Draw(t, "dm"),
		Key:       genStr().Draw(t, "key"),
		Value:     genBytes().Draw(t, "v"),
		Version:   genOpt(rapid.Uint64()).Draw(t, "ver"),
		ExpireAt:  genOpt(rapid.Int64()).Draw(t, "exp"),
		RequestID: genStr().Draw(t, "rid"),
		Result:    genPtr(genRequestResult).Draw(t, "res"),
	}
})

func genSlice[V any](g *rapid.Generator[V], max int) *rapid.Generator[[]V] {
	return rapid.OneOf(rapid.Just([]V(nil)), rapid.Just([]V{}), rapid.SliceOfN(g, 1, max))
}

var genEntrySnapshot = rapid.Custom(func(t *rapid.T) EntrySnapshot {
	return EntrySnapshot{
		Key:      genStr().Draw(t, "k"),
		Value:    genBytes().Draw(t, "v"),
		Version:  genOpt(rapid.Uint64()).Draw(t, "ver"),
		ExpireAt: genOpt(rapid.Int64()).Draw(t, "exp"),
	}
})

var genLockSnapshot = rapid.Custom(func(t *rapid.T) LockSnapshot {
	return LockSnapshot{
		Key:      genStr().Draw(t, "k"),
		Token:    genOpt(rapid.Uint64()).Draw(t, "tok"),
		ExpireAt: genOpt(rapid.Int64()).Draw(t, "exp"),
	}
})

var genDMapSnapshot = rapid.Custom(func(t *rapid.T) DMapSnapshot {
	return DMapSnapshot{
		Name:    genStr().Draw(t, "name"),
		Entries: genSlice(genEntrySnapshot, 5).Draw(t, "entries"),
		Locks:   genSlice(genLockSnapshot, 3).Draw(t, "locks"),
	}
})

var genRequestSnapshot = rapid.Custom(func(t *rapid.T) RequestSnapshot {
	return RequestSnapshot{ID: genStr().Draw(t, "id"), Result: genRequestResult.Draw(t, "res")}
})

var genSnapshot = rapid.Custom(func(t *rapid.T) PartitionSnapshot {
	return PartitionSnapshot{
		Format:    genOpt(rapid.Uint8()).Draw(t, "fmt"),
		Partition: genOpt(rapid.Uint32()).Draw(t, "p"),
		Seq:       genOpt(rapid.Uint64()).Draw(t, "seq"),
		Fence:     genOpt(rapid.Uint64()).Draw(t, "fence"),
		DMaps:     genSlice(genDMapSnapshot, 3).Draw(t, "dmaps"),
		Requests:  genSlice(genRequestSnapshot, 2).Draw(t, "reqs"),
	}
})

var genReplItem = rapid.Custom(func(t *rapid.T) replItem {
	return replItem{
		P:         rapid.Uint32().Draw(t, "p"),
		Epoch:     rapid.Uint64().Draw(t, "e"),
		Snap:      rapid.OneOf(rapid.Just((*PartitionSnapshot)(nil)), genPtr(genSnapshot)).Draw(t, "snap"),
		Resume:    rapid.Bool().Draw(t, "res"),
		ResumeSeq: genOpt(rapid.Uint64()).Draw(t, "rsq"),
		Muts:      genSlice(genMutation, 4).Draw(t, "m"),
		Chunk:     genOpt(rapid.Uint32()).Draw(t, "ch"),
		More:      rapid.Bool().Draw(t, "more"),
	}
})

var genReplicateRequest = rapid.Custom(func(t *rapid.T) replicateRequest {
	return replicateRequest{
		From:    metadata.NodeID(genStr().Draw(t, "f")),
		Version: rapid.Uint64().Draw(t, "v"),
		Items:   genSlice(genReplItem, 3).Draw(t, "items"),
	}
})

var genReplResult = rapid.Custom(func(t *rapid.T) replResult {
	return replResult{
		P:       rapid.Uint32().Draw(t, "p"),
		Seq:     rapid.Uint64().Draw(t, "s"),
		Partial: rapid.Bool().Draw(t, "part"),
		Code:    genStr().Draw(t, "code"),
		Message: genStr().Draw(t, "msg"),
	}
})

var genReplicateReply = rapid.Custom(func(t *rapid.T) replicateReply {
	return replicateReply{
		Code:    genStr().Draw(t, "code"),
		Message: genStr().Draw(t, "msg"),
		Results: genSlice(genReplResult, 4).Draw(t, "res"),
	}
})

// ---------------------------------------------------------------------------
// Normalisation: what the reflection codec itself changes in a round
// trip, and nothing else. An omitempty []byte, []string or slice of structs
// that is empty but not nil is left out, so decodes as nil; an omitempty
// float -0 is left out (decodes as +0, which == -0, so DeepEqual needs no
// help). NaN is replaced by a marker on both sides because DeepEqual finds
// NaN != NaN.

const nanMarker = 1.2345e-300

func normFloat(f float64) float64 {
	if math.IsNaN(f) {
		return nanMarker
	}
	return f
}

func emptyNil[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normRequest(r Request) Request {
	r.Value = emptyNil(r.Value)
	r.DeltaFloat = normFloat(r.DeltaFloat)
	return r
}

func normResponse(r Response) Response {
	r.Value = emptyNil(r.Value)
	r.Keys = emptyNil(r.Keys)
	r.Float = normFloat(r.Float)
	return r
}

func normResponsePtr(r *Response) *Response {
	if r == nil {
		return nil
	}
	n := normResponse(*r)
	return &n
}

func normRPCReply(r rpcReply) rpcReply {
	r.Resp = normResponsePtr(r.Resp)
	return r
}

func normRequestResult(r RequestResult) *RequestResult {
	r.Response = normResponsePtr(r.Response)
	return &r
}

func normMutation(m Mutation) Mutation {
	m.Value = emptyNil(m.Value)
	if m.Result != nil {
		m.Result = normRequestResult(*m.Result)
	}
	return m
}

// normSnapshot: the omitempty slices (not EntrySnapshot.Value, which is
// not omitempty: nil and empty both survive).
func normSnapshot(s PartitionSnapshot) PartitionSnapshot {
	if s.DMaps = emptyNil(s.DMaps); s.DMaps != nil {
		dmaps := make([]DMapSnapshot, len(s.DMaps))
		for i, d := range s.DMaps {
			d.Entries, d.Locks = emptyNil(d.Entries), emptyNil(d.Locks)
			dmaps[i] = d
		}
		s.DMaps = dmaps
	}
	if s.Requests = emptyNil(s.Requests); s.Requests != nil {
		reqs := make([]RequestSnapshot, len(s.Requests))
		for i, r := range s.Requests {
			r.Result = *normRequestResult(r.Result)
			reqs[i] = r
		}
		s.Requests = reqs
	}
	return s
}

func normReplItem(it replItem) replItem {
	if it.Snap != nil {
		s := normSnapshot(*it.Snap)
		it.Snap = &s
	}
	it.Muts = emptyNil(it.Muts)
	if it.Muts != nil {
		muts := make([]Mutation, len(it.Muts))
		for i, m := range it.Muts {
			muts[i] = normMutation(m)
		}
		it.Muts = muts
	}
	return it
}

func normReplicateRequest(r replicateRequest) replicateRequest {
	if r.Items != nil { // not omitempty: an empty slice stays empty
		items := make([]replItem, len(r.Items))
		for i, it := range r.Items {
			items[i] = normReplItem(it)
		}
		r.Items = items
	}
	return r
}

func normReplResult(r replResult) replResult { return r }

func normReplicateReply(r replicateReply) replicateReply {
	r.Results = emptyNil(r.Results)
	return r
}

// ---------------------------------------------------------------------------
// The properties.

// wireCase checks one wire type T against its reference twin N.
type wireCase[T, N any] struct {
	gen  *rapid.Generator[T]
	norm func(T) T
}

func twin[T, N any](v *T) *N { return (*N)(unsafe.Pointer(v)) }

func (c wireCase[T, N]) check(t *testing.T) {
	if unsafe.Sizeof(*new(T)) != unsafe.Sizeof(*new(N)) {
		t.Fatal("twin size differs")
	}
	rapid.Check(t, func(rt *rapid.T) {
		v := c.gen.Draw(rt, "value")

		// 1. Byte-identical, by pointer and by value.
		custom, err := msgpack.Marshal(&v)
		if err != nil {
			rt.Fatalf("Marshal: %v", err)
		}
		byValue, err := msgpack.Marshal(v)
		if err != nil {
			rt.Fatalf("Marshal by value: %v", err)
		}
		ref, err := msgpack.Marshal(twin[T, N](&v))
		if err != nil {
			rt.Fatalf("reference Marshal: %v", err)
		}
		if !bytes.Equal(custom, ref) || !bytes.Equal(byValue, ref) {
			rt.Fatalf("encoding differs:\ncustom    % x\nreference % x", custom, ref)
		}
		// Through a stream encoder too (sendBatch's way).
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).Encode(&v); err != nil || !bytes.Equal(buf.Bytes(), ref) {
			rt.Fatalf("stream encoding differs (%v)", err)
		}
		want := c.norm(v)

		// 2a. The reflection decoder reads the custom bytes.
		var n N
		if err := msgpack.Unmarshal(custom, &n); err != nil {
			rt.Fatalf("reference Unmarshal: %v", err)
		}
		if got := c.norm(*(*T)(unsafe.Pointer(&n))); !reflect.DeepEqual(got, want) {
			rt.Fatalf("reference decode:\n got %#v\nwant %#v", got, want)
		}
		// 2b. The custom decoder reads the reference bytes, strictly and not.
		var got T
		if err := msgpack.Unmarshal(ref, &got); err != nil {
			rt.Fatalf("Unmarshal: %v", err)
		}
		if g := c.norm(got); !reflect.DeepEqual(g, want) {
			rt.Fatalf("decode:\n got %#v\nwant %#v", g, want)
		}
		// Without normalisation, the two decoders agree exactly (empty vs
		// nil included).
		if !reflect.DeepEqual(normNaN(got), normNaN(*(*T)(unsafe.Pointer(&n)))) {
			rt.Fatalf("decoders differ:\ncustom    %#v\nreference %#v", got, *(*T)(unsafe.Pointer(&n)))
		}
		var strict T
		if err := strictmsgpack.Unmarshal(ref, &strict); err != nil {
			rt.Fatalf("strict Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(normNaN(strict), normNaN(got)) {
			rt.Fatalf("strict decode differs")
		}

		// The array form of a struct (UseArrayEncodedStructs), which the
		// library's encoder produces (ours never does) and both decoders
		// read alike.
		var arrRef bytes.Buffer
		e2 := msgpack.NewEncoder(&arrRef)
		e2.UseArrayEncodedStructs(true)
		if err := e2.Encode(twin[T, N](&v)); err != nil {
			rt.Fatal(err)
		}
		var ga T
		var na N
		errA, errN := msgpack.Unmarshal(arrRef.Bytes(), &ga), msgpack.Unmarshal(arrRef.Bytes(), &na)
		if (errA == nil) != (errN == nil) || !reflect.DeepEqual(normNaN(ga), normNaN(*(*T)(unsafe.Pointer(&na)))) {
			rt.Fatalf("array form decoders differ: %v / %v", errA, errN)
		}
		// Compact ints (another encoder's choice): readable by the custom
		// decoder (any integer width).
		var compact bytes.Buffer
		e3 := msgpack.NewEncoder(&compact)
		e3.UseCompactInts(true)
		if err := e3.Encode(twin[T, N](&v)); err != nil {
			rt.Fatal(err)
		}
		var gc T
		if err := msgpack.Unmarshal(compact.Bytes(), &gc); err != nil || !reflect.DeepEqual(normNaN(gc), normNaN(got)) {
			rt.Fatalf("compact-int decode differs (%v)", err)
		}
	})
}

// normNaN replaces NaN floats anywhere in v (by reflection, in place:
// only for decoded values nothing else shares) with nanMarker.
func normNaN[T any](v T) T {
	fixNaN(reflect.ValueOf(&v).Elem())
	return v
}

func fixNaN(v reflect.Value) {
	switch v.Kind() {
	case reflect.Float64:
		if v.CanSet() && math.IsNaN(v.Float()) {
			v.SetFloat(nanMarker)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			fixNaN(v.Elem())
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				fixNaN(v.Index(i))
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fixNaN(v.Field(i))
			}
		}
	}
}

func TestWireRequest(t *testing.T) {
	wireCase[Request, requestNoCodec]{genRequest, normRequest}.check(t)
}

func TestWireResponse(t *testing.T) {
	wireCase[Response, responseNoCodec]{genResponse, normResponse}.check(t)
}

func TestWireRPCReply(t *testing.T) {
	wireCase[rpcReply, rpcReplyNoCodec]{genRPCReply, normRPCReply}.check(t)
}

func TestWireMutation(t *testing.T) {
	wireCase[Mutation, mutationNoCodec]{genMutation, normMutation}.check(t)
}

func TestWireSnapshot(t *testing.T) {
	wireCase[snapshotHand, PartitionSnapshot]{
		rapid.Map(genSnapshot, func(s PartitionSnapshot) snapshotHand { return snapshotHand(s) }),
		func(s snapshotHand) snapshotHand { return snapshotHand(normSnapshot(PartitionSnapshot(s))) },
	}.check(t)
}

func TestWireReplItem(t *testing.T) {
	wireCase[replItem, replItemNoCodec]{genReplItem, normReplItem}.check(t)
}

func TestWireReplicateRequest(t *testing.T) {
	wireCase[replicateRequest, replicateRequestNoCodec]{genReplicateRequest, normReplicateRequest}.check(t)
}

func TestWireReplicateReply(t *testing.T) {
	wireCase[replicateReply, replicateReplyNoCodec]{genReplicateReply, normReplicateReply}.check(t)
}

func TestWireReplResult(t *testing.T) {
	wireCase[replResult, replResultNoCodec]{genReplResult, normReplResult}.check(t)
}

// TestWireEdgeCases: fixed values at the encoding boundaries (string and
// byte lengths, integer extremes), byte-identical and round-tripping.
func TestWireEdgeCases(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000, 200000} {
		s := strings.Repeat("x", n)
		b := bytes.Repeat([]byte{7}, n)
		reqs := []Request{
			{Op: OpPut, DMap: s, Key: s, Value: b, RequestID: s},
			{Op: 255, TTL: math.MinInt64, ExpireAt: math.MaxInt64, Delta: -1, Limit: math.MinInt64, Partition: math.MaxUint32, Token: math.MaxUint64, DeltaFloat: math.SmallestNonzeroFloat64},
			{Limit: math.MaxInt64, Wait: -32, Delta: -33, IfVersion: 1, HasIfVersion: true},
		}
		for _, r := range reqs {
			custom, err := msgpack.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			ref, _ := msgpack.Marshal((*requestNoCodec)(&r))
			if !bytes.Equal(custom, ref) {
				t.Fatalf("len %d: encoding differs", n)
			}
			var got Request
			if err := strictmsgpack.Unmarshal(custom, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normRequest(got), normRequest(r)) {
				t.Fatalf("len %d: round trip differs", n)
			}
		}
		rep := rpcReply{Resp: &Response{Value: b, Keys: []string{s, "", s}, Cursor: s}}
		custom, _ := msgpack.Marshal(rep)
		ref, _ := msgpack.Marshal(twin[rpcReply, rpcReplyNoCodec](&rep))
		if !bytes.Equal(custom, ref) {
			t.Fatalf("len %d: reply encoding differs", n)
		}
		var got rpcReply
		if err := msgpack.Unmarshal(custom, &got); err != nil || !reflect.DeepEqual(normRPCReply(got), normRPCReply(rep)) {
			t.Fatalf("len %d: reply round trip: %v", n, err)
		}
		snap := PartitionSnapshot{Format: 255, Partition: math.MaxUint32, Seq: math.MaxUint64, DMaps: []DMapSnapshot{{Name: s,
			Entries: []EntrySnapshot{{Key: s, Value: b, Version: math.MaxUint64, ExpireAt: math.MinInt64}, {Key: s, ExpireAt: -1}},
			Locks:   []LockSnapshot{{Key: s, Token: 1, ExpireAt: math.MaxInt64}}}}}
		custom, _ = msgpack.Marshal(snapshotHand(snap))
		ref, _ = msgpack.Marshal(&snap)
		if !bytes.Equal(custom, ref) {
			t.Fatalf("len %d: snapshot encoding differs", n)
		}
		var gotSnap replicateRequest
		item := replicateRequest{Items: []replItem{{Snap: &snap}}}
		custom, _ = msgpack.Marshal(&item)
		if err := strictmsgpack.Unmarshal(custom, &gotSnap); err != nil || !reflect.DeepEqual(gotSnap, item) {
			t.Fatalf("len %d: snapshot round trip: %v", n, err)
		}
	}
	// A zero snapshot: its four plain fields, in the library's widths.
	b0, _ := msgpack.Marshal(snapshotHand{})
	want0 := []byte{0x84, 0xa3, 'f', 'm', 't', 0xcc, 0, 0xa1, 'p', 0xce, 0, 0, 0, 0,
		0xa3, 's', 'e', 'q', 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0xa5, 'f', 'e', 'n', 'c', 'e', 0xcf, 0, 0, 0, 0, 0, 0, 0, 0}
	if ref, _ := msgpack.Marshal(PartitionSnapshot{}); !bytes.Equal(b0, want0) || !bytes.Equal(ref, want0) {
		t.Fatalf("zero snapshot: % x", b0)
	}
	// An entry's value is not omitempty: nil is sent as nil, empty as an
	// empty bin; an empty DMap as its name alone.
	ents := PartitionSnapshot{DMaps: []DMapSnapshot{{Name: "d", Entries: []EntrySnapshot{{Key: "a"}, {Key: "b", Value: []byte{}}}, Locks: []LockSnapshot{{}}}, {Name: "e", Entries: []EntrySnapshot{}}}}
	b3, _ := msgpack.Marshal(snapshotHand(ents))
	if ref, _ := msgpack.Marshal(&ents); !bytes.Equal(b3, ref) ||
		!bytes.Contains(b3, []byte{0xa1, 'v', 0xc0}) || !bytes.Contains(b3, []byte{0xa1, 'v', 0xc4, 0}) ||
		!bytes.HasSuffix(b3, []byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'e'}) {
		t.Fatalf("snapshot entries: % x", b3)
	}
	// A non-nil empty Response is not empty (a pointer): sent as {}.
	b, _ := msgpack.Marshal(rpcReply{Resp: &Response{}})
	if !bytes.Equal(b, []byte{0x81, 0xa4, 'r', 'e', 's', 'p', 0x80}) {
		t.Fatalf("reply with an empty response: % x", b)
	}
	// Items is not omitempty: nil and empty differ on the wire.
	b1, _ := msgpack.Marshal(replicateRequest{})
	b2, _ := msgpack.Marshal(replicateRequest{Items: []replItem{}})
	if b1[len(b1)-1] != 0xc0 || b2[len(b2)-1] != 0x90 {
		t.Fatalf("items: % x / % x", b1, b2)
	}
}

// encodeMap encodes entries (key, value pairs) as a msgpack map in order.
func encodeMap(t *testing.T, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := e.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for _, x := range kv {
		if raw, ok := x.(msgpack.RawMessage); ok {
			buf.Write(raw)
			continue
		}
		if err := e.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// diffDecode decodes body with our decoder (into newT()) and with the
// reference twin's reflection decoder (into newRef()), strictly or not,
// and fails unless both fail or both give the same value.
func diffDecode(t testing.TB, body []byte, strict bool, newT, newRef func() any) (any, error) {
	t.Helper()
	got, ref := newT(), newRef()
	var err error
	if strict {
		err = strictmsgpack.Unmarshal(body, got)
	} else {
		err = msgpack.Unmarshal(body, got)
	}
	// The reference decodes under the type's own unknown-key policy
	// (wire.go), whichever entry point ours went through.
	errRef := referenceDecode(body, ref, policyStrict(got))
	if (err == nil) != (errRef == nil) {
		t.Fatalf("% x (strict %v): ours %v, reference %v", body, strict, err, errRef)
	}
	if err == nil {
		refAsT := reflect.NewAt(reflect.TypeOf(got).Elem(), unsafe.Pointer(reflect.ValueOf(ref).Pointer())).Interface()
		if !reflect.DeepEqual(normNaN(got), normNaN(refAsT)) {
			t.Fatalf("% x (strict %v): decoders differ:\n ours %#v\n ref  %#v", body, strict, got, refAsT)
		}
	}
	return got, err
}

// policyStrict reports whether v (a pointer to a message) refuses unknown
// keys: requests do, replies skip them (wire.go).
func policyStrict(v any) bool {
	switch v.(type) {
	case *Request, *replicateRequest, *replItem, *Mutation:
		return true
	}
	return false
}

// referenceDecode decodes b into ref (a twin) by reflection, refusing
// unknown keys if strict, after the same well-formedness check
// strictmsgpack makes.
func referenceDecode(b []byte, ref any, strict bool) error {
	if err := strictmsgpack.Check(b); err != nil {
		return err
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields(strict)
	return dec.Decode(ref)
}

// TestWireDecodeForms: hand-built inputs in forms the encoders do not
// produce but the reflection decoder accepts (or refuses): nil for every
// field, nil and array-form elements, other integer widths and signs,
// str for bytes and bin for strings and keys, floats as integers,
// duplicate keys (decoded over the first), wrong types. Our decoder must
// agree with the reference on each, strictly and not.
func TestWireDecodeForms(t *testing.T) {
	raw := func(b ...byte) msgpack.RawMessage { return msgpack.RawMessage(b) }
	arr := func(elems ...[]byte) msgpack.RawMessage {
		var buf bytes.Buffer
		_ = msgpack.NewEncoder(&buf).EncodeArrayLen(len(elems))
		for _, e := range elems {
			buf.Write(e)
		}
		return buf.Bytes()
	}
	nilAll := func(names []string) []byte {
		kv := []any{}
		for _, n := range names {
			kv = append(kv, n, nil)
		}
		return encodeMap(t, kv...)
	}
	newReq := func() any { return new(Request) }
	newReqRef := func() any { return new(requestNoCodec) }
	newRep := func() any { return new(rpcReply) }
	newRepRef := func() any { return new(rpcReplyNoCodec) }
	newRR := func() any { return new(replicateRequest) }
	newRRRef := func() any { return new(replicateRequestNoCodec) }
	newRY := func() any { return new(replicateReply) }
	newRYRef := func() any { return new(replicateReplyNoCodec) }
	mut := encodeMap(t, "s", int8(-1), "e", uint16(300), "k", int64(257), "dm", raw(0xc4, 1, 'd'), "v", "str-as-bytes", "ver", int32(-5), "exp", uint64(math.MaxUint64), "res", raw(0x80))
	arrMut := func() []byte {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		e.UseArrayEncodedStructs(true)
		m := Mutation{Seq: 1, Epoch: 2, Kind: MutationSet, DMap: "d", Key: "k", Value: []byte("v"), Result: &RequestResult{At: 1, Response: &Response{Keys: []string{"a"}}}}
		_ = e.Encode(twin[Mutation, mutationNoCodec](&m)) // the library's array form
		return buf.Bytes()
	}()
	cases := []struct {
		name       string
		body       []byte
		newT, newR func() any
	}{
		{"request nil fields", nilAll(requestFields), newReq, newReqRef},
		{"request widths", encodeMap(t, "op", int64(-1), "dm", raw(0xc4, 2, 'a', 'b'), "v", "text", "ttl", uint64(math.MaxUint64), "exat", int8(-3),
			"kttl", true, "ifv", int8(-2), "d", uint32(7), "df", int16(-9), "w", uint8(200), "tok", float32(1), "p", uint64(1<<33|5), "l", uint64(1<<63), "rid", raw(0xd9, 1, 'x')), newReq, newReqRef},
		{"request float32", encodeMap(t, "df", float32(1.5), "op", uint8(1)), newReq, newReqRef},
		{"request bool as int", encodeMap(t, "nx", 1), newReq, newReqRef},
		{"request string as int", encodeMap(t, "dm", 1), newReq, newReqRef},
		{"request int as string", encodeMap(t, "op", "1"), newReq, newReqRef},
		{"request bin key", encodeMap(t, raw(0xc4, 2, 'd', 'm'), "x", raw(0xc4, 1, 'k'), "y"), newReq, newReqRef},
		{"request nil key", encodeMap(t, raw(0xc0), 1), newReq, newReqRef},
		{"request int key", encodeMap(t, 1, 1), newReq, newReqRef},
		{"request duplicate", encodeMap(t, "k", "a", "v", "xyz", "k", "b", "v", nil), newReq, newReqRef},
		{"request array form", func() []byte {
			var buf bytes.Buffer
			e := msgpack.NewEncoder(&buf)
			e.UseArrayEncodedStructs(true)
			_ = e.Encode((*requestNoCodec)(&Request{Op: OpPut, DMap: "d", Value: []byte{}, Limit: -1})) // the library's array form
			return buf.Bytes()
		}(), newReq, newReqRef},
		{"request short array", arr([]byte{0x01}, []byte{0xa1, 'd'}), newReq, newReqRef},
		{"request empty array", arr(), newReq, newReqRef},
		{"request nil", []byte{0xc0}, newReq, newReqRef},
		{"request ext", []byte{0xd4, 1, 1}, newReq, newReqRef},
		{"request string", []byte{0xa1, 'x'}, newReq, newReqRef},
		{"reply nil fields", nilAll(rpcReplyFields), newRep, newRepRef},
		{"reply nil response fields", encodeMap(t, "resp", raw(nilAll(responseFields)...)), newRep, newRepRef},
		{"reply response array form", encodeMap(t, "resp", arr(raw(0xc3), raw(0xc0), raw(0x05), raw(0x06), raw(0xc2), raw(0xff), raw(0x00), raw(0xc0), arr(raw(0xa1, 'k')), raw(0xa0), raw(0x01))), newRep, newRepRef},
		{"reply response duplicate", encodeMap(t, "resp", raw(encodeMap(t, "f", true)...), "resp", raw(encodeMap(t, "ver", 3)...), "resp", nil), newRep, newRepRef},
		{"reply response merge", encodeMap(t, "resp", raw(encodeMap(t, "f", true, "keys", []string{"a"})...), "resp", raw(encodeMap(t, "ver", 3, "keys", nil)...)), newRep, newRepRef},
		{"reply keys bin", encodeMap(t, "resp", raw(encodeMap(t, "keys", arr(raw(0xc4, 1, 'a'), raw(0xc0)))...)), newRep, newRepRef},
		{"reply keys not strings", encodeMap(t, "resp", raw(encodeMap(t, "keys", []int{1})...)), newRep, newRepRef},
		{"reply resp not a map", encodeMap(t, "resp", 5), newRep, newRepRef},
		{"replicate nil items", encodeMap(t, "f", nil, "v", nil, "items", nil), newRR, newRRRef},
		{"replicate nil elements", encodeMap(t, "f", "a", "v", 1, "items", arr(raw(0xc0), raw(encodeMap(t, "p", 1, "m", arr(raw(0xc0), mut, arrMut))...))), newRR, newRRRef},
		{"replicate nil item fields", encodeMap(t, "items", arr(nilAll(replItemFields))), newRR, newRRRef},
		{"replicate nil mutation fields", encodeMap(t, "items", arr(encodeMap(t, "m", arr(nilAll(mutationFields))))), newRR, newRRRef},
		{"replicate nil result fields", encodeMap(t, "items", arr(encodeMap(t, "m", arr(encodeMap(t, "res", raw(nilAll(requestResultFields)...)))))), newRR, newRRRef},
		{"replicate duplicate items", encodeMap(t, "items", arr(encodeMap(t, "p", 1, "e", 2), encodeMap(t, "p", 3)), "items", arr(encodeMap(t, "e", 9))), newRR, newRRRef},
		{"replicate duplicate items grow", encodeMap(t, "items", arr(encodeMap(t, "p", 1, "e", 2)), "items", arr(encodeMap(t, "e", 9), encodeMap(t, "p", 4), encodeMap(t, "more", true))), newRR, newRRRef},
		{"replicate duplicate items shrink", encodeMap(t, "items", arr(encodeMap(t, "p", 1), encodeMap(t, "p", 2)), "items", arr()), newRR, newRRRef},
		{"replicate items not array", encodeMap(t, "items", raw(0x80)), newRR, newRRRef},
		{"replicate item array form", encodeMap(t, "items", arr(arr(raw(0x01), raw(0x02), raw(0xc0), raw(0xc3), raw(0x04), arr(mut), raw(0x00), raw(0xc2)))), newRR, newRRRef},
		{"replicate item wrong array", encodeMap(t, "items", arr(arr(raw(0x01)))), newRR, newRRRef},
		{"replicate snap nil", encodeMap(t, "items", arr(encodeMap(t, "snap", nil))), newRR, newRRRef},
		{"replicate snap", encodeMap(t, "items", arr(encodeMap(t, "snap", &PartitionSnapshot{Format: SnapshotFormat, Seq: 4, Requests: []RequestSnapshot{{ID: "i", Result: RequestResult{At: 1, Response: &Response{Found: true}}}}}))), newRR, newRRRef},
		{"replicate snap unknown", encodeMap(t, "items", arr(encodeMap(t, "snap", raw(encodeMap(t, "fmt", 1, "zz", 2)...)))), newRR, newRRRef},
		{"reply results nil elements", encodeMap(t, "res", arr(raw(0xc0), nilAll(replResultFields), arr(raw(1), raw(2), raw(0xc3), raw(0xa1, 'c'), raw(0xa0)))), newRY, newRYRef},
		{"reply results empty", encodeMap(t, "res", arr()), newRY, newRYRef},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			diffDecode(t, c.body, true, c.newT, c.newR)
			diffDecode(t, c.body, false, c.newT, c.newR)
		})
	}

	// Snapshots, each decoded as the copy in a replicate request and on
	// its own (snapshotHand).
	arrForm := func(v any) msgpack.RawMessage {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		e.UseArrayEncodedStructs(true)
		if err := e.Encode(v); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	full := &PartitionSnapshot{Format: SnapshotFormat, Partition: 3, Seq: 9, Fence: 2,
		DMaps: []DMapSnapshot{{Name: "d", Entries: []EntrySnapshot{{Key: "a", Value: []byte("x"), Version: 1, ExpireAt: 5}, {Key: "b", Value: []byte{}}, {Key: "c"}},
			Locks: []LockSnapshot{{Key: "l", Token: 7, ExpireAt: 8}}}, {Name: "e"}},
		Requests: []RequestSnapshot{{ID: "i", Result: RequestResult{At: 1, Fingerprint: 2, Response: &Response{Found: true, Keys: []string{"k"}}}},
			{ID: "j", Result: RequestResult{At: 3, Code: CodeNotFound, Message: "m"}}}}
	dmap := func(kv ...any) msgpack.RawMessage { return encodeMap(t, "dmaps", arr(encodeMap(t, kv...))) }
	entry := encodeMap(t, "k", raw(0xc4, 1, 'k'), "v", "str-as-bytes", "ver", int8(-2), "exp", uint64(math.MaxUint64))
	snaps := []struct {
		name string
		body []byte
	}{
		{"nil", []byte{0xc0}},
		{"nil fields", nilAll(snapshotFields)},
		{"widths", encodeMap(t, "fmt", int64(257), "p", uint64(1<<33|5), "seq", int8(-1), "fence", uint16(3))},
		{"empty slices", encodeMap(t, "dmaps", arr(encodeMap(t, "name", "d", "entries", arr(), "locks", arr())), "reqs", arr())},
		{"nil dmaps", encodeMap(t, "dmaps", arr(raw(0xc0), nilAll(dmapSnapshotFields)))},
		{"entry forms", dmap("name", raw(0xc4, 1, 'd'), "entries", arr(raw(0xc0), nilAll(entrySnapshotFields), entry, arr(raw(0xa1, 'k'), raw(0xc4, 0), raw(0x01), raw(0xff))))},
		{"entry values", dmap("entries", arr(encodeMap(t, "k", "a", "v", raw(0xc4, 0)), encodeMap(t, "k", "b", "v", nil), encodeMap(t, "k", "c", "v", raw(0xa0))))},
		{"lock forms", dmap("locks", arr(raw(0xc0), nilAll(lockSnapshotFields), encodeMap(t, "k", "l", "tok", int8(-1), "exp", uint8(5)), arr(raw(0xa1, 'l'), raw(0x02), raw(0xd0, 0x80))))},
		{"entry short array", dmap("entries", arr(arr(raw(0xa1, 'k'))))},
		{"lock long array", dmap("locks", arr(arr(raw(0xa1, 'k'), raw(1), raw(2), raw(3))))},
		{"duplicates", encodeMap(t, "seq", 1, "dmaps", arr(encodeMap(t, "name", "a", "entries", arr(encodeMap(t, "k", "x", "v", "1")))), "seq", 2,
			"dmaps", arr(encodeMap(t, "entries", arr(encodeMap(t, "v", "y"), encodeMap(t, "k", "z")))),
			"reqs", arr(encodeMap(t, "id", "i")), "reqs", arr(encodeMap(t, "res", raw(encodeMap(t, "at", 4)...))))},
		{"array form", arrForm(full)},
		{"array-form elements", encodeMap(t, "dmaps", arrForm(full.DMaps), "reqs", arrForm(full.Requests))},
		{"wrong array", arr(raw(0x01))},
		{"empty array", arr()},
		{"int", []byte{0x05}},
		{"string", []byte{0xa1, 'x'}},
		{"dmaps not an array", encodeMap(t, "dmaps", raw(0x80))},
		{"entries not an array", dmap("entries", 1)},
		{"entry key not a string", dmap("entries", arr(encodeMap(t, "k", 1)))},
		{"entry value not bytes", dmap("entries", arr(encodeMap(t, "v", 1)))},
		{"entry version not an int", dmap("entries", arr(encodeMap(t, "ver", "x")))},
		{"lock token not an int", dmap("locks", arr(encodeMap(t, "tok", "x")))},
		{"name not a string", dmap("name", true)},
		{"reqs nil", encodeMap(t, "reqs", nil)},
		{"reqs nil element", encodeMap(t, "reqs", arr(raw(0xc0)))},
		{"reqs not an array", encodeMap(t, "reqs", 1)},
		{"reqs wrong types", encodeMap(t, "reqs", arr(encodeMap(t, "id", 1)))},
		// The library decodes the Response in a dedupe record with
		// Response's own codec, which skips unknown keys under any
		// policy; so did the reflection codec of the whole copy.
		{"reqs response unknown key", encodeMap(t, "reqs", arr(encodeMap(t, "id", "i", "res", raw(encodeMap(t, "at", 1, "resp", raw(encodeMap(t, "f", true, "zz", 1)...))...))))},
	}
	for _, c := range snaps {
		t.Run("snapshot "+c.name, func(t *testing.T) {
			item := encodeMap(t, "items", arr(encodeMap(t, "p", 1, "snap", raw(c.body...))))
			for _, strict := range []bool{true, false} {
				diffDecode(t, item, strict, newRR, newRRRef)
				diffDecode(t, item, strict, newRR, newRRRef)
				diffDecode(t, c.body, strict, func() any { return new(snapshotHand) }, func() any { return new(PartitionSnapshot) })
			}
		})
	}
}

// TestWireUnknownKeys: a request (what strictmsgpack.Unmarshal decodes for
// incoming RPCs) with a key its type does not have is refused, at any
// depth; a reply (what transport.Client.Call decodes) skips it and keeps
// the rest; the reflection decoder of the reference twin, set to the same
// policy, agrees on each.
func TestWireUnknownKeys(t *testing.T) {
	mut, _ := msgpack.Marshal(&Mutation{Seq: 1, Epoch: 1, Kind: MutationSet, DMap: "d", Key: "k", Value: []byte("v"), Version: 1})
	mutExtra := encodeMap(t, "s", uint64(1), "e", uint64(1), "k", uint8(1), "dm", "d", "zz", []int{1, 2}, "key", "k")
	resExtra := encodeMap(t, "at", int64(5), "resp", msgpack.RawMessage(encodeMap(t, "f", true, "new", "x")))
	mutResExtra := encodeMap(t, "s", uint64(1), "e", uint64(1), "k", uint8(7), "dm", "", "rid", "r", "res", msgpack.RawMessage(resExtra))
	item := func(m []byte) []byte {
		return encodeMap(t, "p", uint32(1), "e", uint64(1), "m", msgpack.RawMessage(append([]byte{0x91}, m...)))
	}
	long := strings.Repeat("y", 300)
	cases := []struct {
		name   string
		body   []byte
		newT   func() any
		newRef func() any
	}{
		{"request", encodeMap(t, "op", uint8(OpGet), "dm", "d", "k", "key", "new", true),
			func() any { return new(Request) }, func() any { return new(requestNoCodec) }},
		{"request long key", encodeMap(t, "op", uint8(OpGet), long, map[string]int{"a": 1}, "dm", "d"),
			func() any { return new(Request) }, func() any { return new(requestNoCodec) }},
		{"request empty key", encodeMap(t, "", 1, "dm", "d"),
			func() any { return new(Request) }, func() any { return new(requestNoCodec) }},
		{"replicate", encodeMap(t, "f", "a", "v", uint64(2), "items", []any{}, "x", nil),
			func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
		{"replicate item", encodeMap(t, "f", "a", "v", uint64(2), "items", msgpack.RawMessage(append([]byte{0x91}, encodeMap(t, "p", uint32(1), "e", uint64(1), "extra", 3)...))),
			func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
		{"replicate mutation", encodeMap(t, "f", "a", "v", uint64(2), "items", msgpack.RawMessage(append([]byte{0x92}, append(item(mut), item(mutExtra)...)...))),
			func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
		{"replicate result response", encodeMap(t, "f", "a", "v", uint64(2), "items", msgpack.RawMessage(append([]byte{0x91}, item(mutResExtra)...))),
			func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
		{"reply", encodeMap(t, "code", "x", "future", map[string]any{"a": []any{1, "b"}}, "rv", uint64(9), "resp", msgpack.RawMessage(encodeMap(t, "f", true, "z", 1.5, "ver", uint64(3)))),
			func() any { return new(rpcReply) }, func() any { return new(rpcReplyNoCodec) }},
		{"replicate reply", encodeMap(t, "res", msgpack.RawMessage(append([]byte{0x91}, encodeMap(t, "p", uint32(3), "new", "x", "s", uint64(4))...)), "q", 1),
			func() any { return new(replicateReply) }, func() any { return new(replicateReplyNoCodec) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if policyStrict(c.newT()) {
				// A request: refused through both entry points, as by
				// the strict reference.
				for _, decode := range []func([]byte, any) error{strictmsgpack.Unmarshal, msgpack.Unmarshal} {
					if err := decode(c.body, c.newT()); err == nil {
						t.Fatal("a request with an unknown key was accepted")
					} else if !strings.Contains(err.Error(), "unknown field") {
						t.Fatalf("decode: %v, want an unknown field error", err)
					}
				}
				if err := referenceDecode(c.body, c.newRef(), true); err == nil {
					t.Fatal("reference strict decode accepted an unknown key")
				}
				return
			}
			// A reply: skipped through both entry points, the known fields
			// kept, as by the lenient reference.
			ref := c.newRef()
			if err := referenceDecode(c.body, ref, false); err != nil {
				t.Fatalf("reference lenient decode: %v", err)
			}
			for _, decode := range []func([]byte, any) error{strictmsgpack.Unmarshal, msgpack.Unmarshal} {
				got := c.newT()
				if err := decode(c.body, got); err != nil {
					t.Fatalf("decode of a reply: %v", err)
				}
				refAsT := reflect.NewAt(reflect.TypeOf(got).Elem(), unsafe.Pointer(reflect.ValueOf(ref).Pointer())).Interface()
				if !reflect.DeepEqual(got, refAsT) {
					t.Fatalf("decode of a reply:\n got %#v\nwant %#v", got, refAsT)
				}
			}
		})
	}
	// The known fields of a reply with an unknown key survive.
	var r rpcReply
	if err := msgpack.Unmarshal(cases[7].body, &r); err != nil || r.Code != "x" || r.Version != 9 || r.Resp == nil || !r.Resp.Found || r.Resp.Version != 3 {
		t.Fatalf("reply: %+v %v", r, err)
	}
}

// TestWireSnapshotUnknownKeys: a key a snapshot type does not have, at any
// depth of a copy, is refused in a replicate request (a request) and
// skipped under a reply's policy (snapshotHand), as by the reference.
func TestWireSnapshotUnknownKeys(t *testing.T) {
	arr := func(elems ...[]byte) msgpack.RawMessage {
		return append([]byte{byte(0x90 | len(elems))}, bytes.Join(elems, nil)...)
	}
	entry := encodeMap(t, "k", "a", "v", []byte("x"), "ver", uint64(1))
	cases := []struct {
		name string
		snap []byte
	}{
		{"snapshot", encodeMap(t, "fmt", uint8(1), "new", []int{1}, "seq", uint64(3))},
		{"long key", encodeMap(t, strings.Repeat("y", 300), 1, "seq", uint64(3))},
		{"dmap", encodeMap(t, "dmaps", arr(encodeMap(t, "name", "d", "zz", nil, "entries", arr(entry))))},
		{"entry", encodeMap(t, "dmaps", arr(encodeMap(t, "name", "d", "entries", arr(entry, encodeMap(t, "k", "b", "ttl", 5, "ver", uint64(2))))))},
		{"lock", encodeMap(t, "dmaps", arr(encodeMap(t, "locks", arr(encodeMap(t, "k", "l", "tok", uint64(1), "owner", "x", "exp", int64(2))))))},
		{"dedupe record", encodeMap(t, "reqs", arr(encodeMap(t, "id", "i", "x", 1, "res", msgpack.RawMessage(encodeMap(t, "at", int64(1))))))},
		{"dedupe result", encodeMap(t, "reqs", arr(encodeMap(t, "id", "i", "res", msgpack.RawMessage(encodeMap(t, "at", int64(1), "y", 2)))))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := encodeMap(t, "f", "a", "v", uint64(2), "items", arr(encodeMap(t, "p", uint32(1), "e", uint64(1), "snap", msgpack.RawMessage(c.snap))))
			for _, decode := range []func([]byte, any) error{strictmsgpack.Unmarshal, msgpack.Unmarshal} {
				if err := decode(req, new(replicateRequest)); err == nil || !strings.Contains(err.Error(), "unknown field") {
					t.Fatalf("in a request: %v, want an unknown field error", err)
				}
			}
			if err := referenceDecode(req, new(replicateRequestNoCodec), true); err == nil {
				t.Fatal("reference strict decode accepted an unknown key")
			}
			var ref PartitionSnapshot
			if err := referenceDecode(c.snap, &ref, false); err != nil {
				t.Fatalf("reference lenient decode: %v", err)
			}
			if ref.Seq == 0 && len(ref.DMaps) == 0 && len(ref.Requests) == 0 {
				t.Fatal("no known field decoded")
			}
			for _, decode := range []func([]byte, any) error{strictmsgpack.Unmarshal, msgpack.Unmarshal} {
				var got snapshotHand
				if err := decode(c.snap, &got); err != nil {
					t.Fatalf("under a reply's policy: %v", err)
				}
				if !reflect.DeepEqual(PartitionSnapshot(got), ref) {
					t.Fatalf("under a reply's policy:\n got %#v\nwant %#v", got, ref)
				}
			}
		})
	}
}

// TestWireTruncatedAndGarbled: every truncation of some encoded messages
// fails (never panics) through both entry points; random corruptions never
// panic, and where strictmsgpack.Check accepts the bytes (so the reference
// decoder cannot be made to allocate without bound) our decoder and the
// reference agree on success and result.
func TestWireTruncatedAndGarbled(t *testing.T) {
	type msg struct {
		body   []byte
		newT   func() any
		newRef func() any
	}
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	res := &RequestResult{At: 9, Fingerprint: 77, Response: &Response{Found: true, Value: []byte("old"), Keys: []string{"a"}}}
	snap := &PartitionSnapshot{Format: SnapshotFormat, Partition: 1, Seq: 3, Fence: 1, DMaps: []DMapSnapshot{
		{Name: "d", Entries: []EntrySnapshot{{Key: "k", Value: []byte("v"), Version: 1}, {Key: "t", Value: []byte{}, Version: 2, ExpireAt: 1 << 62}, {Key: "n"}},
			Locks: []LockSnapshot{{Key: "l", Token: 3, ExpireAt: 4}}},
		{Name: "e", Locks: []LockSnapshot{{Key: "m"}}}},
		Requests: []RequestSnapshot{{ID: "r", Result: *res}, {ID: "s", Result: RequestResult{At: 10, Code: CodeKeyExists, Message: "x"}}}}
	msgs := []msg{
		{enc(&Request{Op: OpPut, DMap: "dm", Key: "key", Value: []byte("value"), TTL: time.Second, DeltaFloat: 1.5, Limit: -3, Partition: 7, RoutingVersion: 1 << 40, RequestID: "rid"}),
			func() any { return new(Request) }, func() any { return new(requestNoCodec) }},
		{enc(rpcReply{Version: 3, Resp: &Response{Found: true, Value: []byte("v"), Keys: []string{"a", "bb"}, TTL: -time.Second, Float: math.Pi}}),
			func() any { return new(rpcReply) }, func() any { return new(rpcReplyNoCodec) }},
		{enc(&replicateRequest{From: "m1", Version: 2, Items: []replItem{
			{P: 1, Epoch: 2, Snap: snap, Chunk: 1, More: true},
			{P: 3, Epoch: 4, Muts: []Mutation{{Seq: 5, Epoch: 4, Kind: MutationSet, DMap: "d", Key: "k", Value: []byte("v"), Version: 9, ExpireAt: 10, RequestID: "r", Result: res}, {Seq: 6, Epoch: 4, Kind: MutationDelete, DMap: "d", Key: "k"}}},
			{P: 5, Epoch: 6, Resume: true, ResumeSeq: 8},
		}}), func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
		{enc(replicateReply{Code: "c", Results: []replResult{{P: 1, Seq: 2, Partial: true, Code: "x", Message: "y"}}}),
			func() any { return new(replicateReply) }, func() any { return new(replicateReplyNoCodec) }},
		{enc(snapshotHand(*snap)), func() any { return new(snapshotHand) }, func() any { return new(PartitionSnapshot) }},
	}
	for i, m := range msgs {
		for n := range len(m.body) {
			if err := strictmsgpack.Unmarshal(m.body[:n], m.newT()); err == nil {
				t.Fatalf("message %d truncated to %d: strict decode succeeded", i, n)
			}
			if err := msgpack.Unmarshal(m.body[:n], m.newT()); err == nil {
				t.Fatalf("message %d truncated to %d: decode succeeded", i, n)
			}
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		m := msgs[rapid.IntRange(0, len(msgs)-1).Draw(rt, "msg")]
		b := bytes.Clone(m.body)
		for range rapid.IntRange(1, 4).Draw(rt, "flips") {
			i := rapid.IntRange(0, len(b)-1).Draw(rt, "at")
			b[i] = rapid.OneOf(rapid.Byte(), rapid.SampledFrom([]byte{0xc0, 0xc1, 0xc2, 0xc3, 0xcc, 0xcf, 0xd3, 0xdc, 0xdd, 0xde, 0xdf, 0xdb, 0xc6, 0x90, 0x80, 0xff})).Draw(rt, "b")
		}
		if rapid.Bool().Draw(rt, "cut") {
			b = b[:rapid.IntRange(0, len(b)).Draw(rt, "len")]
		}
		_ = msgpack.Unmarshal(b, m.newT()) // must not panic
		got := m.newT()
		err := strictmsgpack.Unmarshal(b, got)
		if strictmsgpack.Check(b) != nil {
			return
		}
		ref := m.newRef()
		errRef := referenceDecode(b, ref, policyStrict(got))
		if (err == nil) != (errRef == nil) {
			rt.Fatalf("% x: ours %v, reference %v", b, err, errRef)
		}
		if err == nil {
			refAsT := reflect.NewAt(reflect.TypeOf(got).Elem(), unsafe.Pointer(reflect.ValueOf(ref).Pointer())).Interface()
			if !reflect.DeepEqual(normNaN(got), normNaN(refAsT)) {
				rt.Fatalf("% x: decoders differ:\n ours %#v\n ref  %#v", b, got, refAsT)
			}
		}
		lg, lr := m.newT(), m.newRef()
		e1, e2 := msgpack.Unmarshal(b, lg), referenceDecode(b, lr, policyStrict(lg))
		if (e1 == nil) != (e2 == nil) {
			rt.Fatalf("% x: lenient ours %v, reference %v", b, e1, e2)
		}
	})
}

// FuzzWireSnapshot: any bytes, decoded as a replicate request (whose copies
// take most of the hand-written decoder) or as a snapshot under a reply's
// policy, never panic; where strictmsgpack.Check accepts them, our decoder
// and the reference agree.
func FuzzWireSnapshot(f *testing.F) {
	snap := PartitionSnapshot{Format: SnapshotFormat, Partition: 2, Seq: 5, Fence: 1, DMaps: []DMapSnapshot{
		{Name: "d", Entries: []EntrySnapshot{{Key: "k", Value: []byte("v"), Version: 1, ExpireAt: 9}, {Key: "e", Value: []byte{}}}, Locks: []LockSnapshot{{Key: "l", Token: 2, ExpireAt: 3}}}},
		Requests: []RequestSnapshot{{ID: "r", Result: RequestResult{At: 1, Response: &Response{Found: true}}}}}
	for _, v := range []any{snapshotHand(snap), snapshotHand{}, &replicateRequest{From: "m", Items: []replItem{{P: 2, Epoch: 1, Snap: &snap}}}} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa5, 'd', 'm', 'a', 'p', 's', 0x91, 0x94, 0xa1, 'd', 0xc0, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []struct{ newT, newRef func() any }{
			{func() any { return new(replicateRequest) }, func() any { return new(replicateRequestNoCodec) }},
			{func() any { return new(snapshotHand) }, func() any { return new(PartitionSnapshot) }},
		} {
			_ = msgpack.Unmarshal(b, m.newT()) // must not panic
			if strictmsgpack.Check(b) != nil {
				continue
			}
			diffDecode(t, b, true, m.newT, m.newRef)
			diffDecode(t, b, false, m.newT, m.newRef)
		}
	})
}

// TestWireHugeLengths: lengths far beyond the input fail without a big
// allocation (the reflection decoder would allocate them up front).
func TestWireHugeLengths(t *testing.T) {
	hdr := func(key string, lenHdr ...byte) []byte {
		b := []byte{0x81, byte(0xa0 | len(key))}
		b = append(b, key...)
		return append(b, lenHdr...)
	}
	bodies := [][]byte{
		hdr("v", 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3),
		hdr("keys", 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa0),
		hdr("m", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		hdr("items", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		hdr("res", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		hdr("resp", 0x81, 0xa4, 'k', 'e', 'y', 's', 0xdd, 0xff, 0xff, 0xff, 0xff),
		{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'z'},
		{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'z'},
		hdr("dmaps", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		hdr("reqs", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		hdr("dmaps", append([]byte{0x91}, hdr("entries", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80)...)...),
		hdr("dmaps", append([]byte{0x91}, hdr("locks", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80)...)...),
		hdr("dmaps", append([]byte{0x91}, hdr("entries", append([]byte{0x91}, hdr("v", 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3)...)...)...)...),
		hdr("snap", hdr("dmaps", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80)...),
	}
	// Only the types that have the key: an unknown key's value is
	// skipped by the library (as by the reflection decoder), which reads
	// it in steps of up to 1 MiB.
	all := []func() any{
		func() any { return new(Request) }, func() any { return new(Response) }, func() any { return new(replItem) },
		func() any { return new(replicateRequest) }, func() any { return new(replicateReply) }, func() any { return new(rpcReply) },
		func() any { return new(snapshotHand) },
	}
	snap := all[6:7]
	types := [][]func() any{all[:2], all[1:2], all[2:3], all[3:4], all[4:5], all[5:6], all, all, snap, snap, snap, snap, snap, all[2:3]}
	for i, b := range bodies {
		for _, newV := range types[i] {
			// The least of a few runs: TotalAlloc counts other
			// goroutines' allocations too.
			least := uint64(math.MaxUint64)
			for range 5 {
				v := newV()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				err := msgpack.Unmarshal(b, v)
				runtime.ReadMemStats(&after)
				if err == nil {
					t.Fatalf("% x into %T: decoded", b, v)
				}
				least = min(least, after.TotalAlloc-before.TotalAlloc)
			}
			if least > 1<<20 {
				t.Fatalf("% x into %T: allocated %d bytes", b, newV(), least)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Benchmarks: the hand-written codecs against the reflection codec (the
// method-less twin types).

func benchRequest() Request {
	return Request{Op: OpPut, DMap: "bench", Key: "key:000123456", Value: bytes.Repeat([]byte("x"), 64), TTL: 10 * time.Second,
		RoutingVersion: 42, LeaderEpoch: 7, RequestID: "req-0001"}
}

func benchReply() rpcReply {
	return rpcReply{Version: 42, Resp: &Response{Found: true, Value: bytes.Repeat([]byte("x"), 64), Version: 7<<40 | 99, TTL: 5 * time.Second}}
}

func benchReplicate() replicateRequest {
	muts := make([]Mutation, 8)
	for i := range muts {
		muts[i] = Mutation{Seq: uint64(100 + i), Epoch: 7, Kind: MutationSet, DMap: "bench", Key: fmt.Sprintf("key:%09d", i), Value: bytes.Repeat([]byte("x"), 64), Version: 7<<40 | uint64(100+i)}
	}
	return replicateRequest{From: "member-1", Version: 42, Items: []replItem{{P: 17, Epoch: 7, Muts: muts}}}
}

func benchMarshal[T any](b *testing.B, v *T) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := msgpack.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchUnmarshal[T any](b *testing.B, data []byte, strict bool) {
	b.ReportAllocs()
	for b.Loop() {
		var v T
		var err error
		if strict {
			err = strictmsgpack.Unmarshal(data, &v)
		} else {
			err = msgpack.Unmarshal(data, &v)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWireRequestMarshal(b *testing.B) {
	r := benchRequest()
	b.Run("reflect", func(b *testing.B) { benchMarshal(b, (*requestNoCodec)(&r)) })
	b.Run("custom", func(b *testing.B) { benchMarshal(b, &r) })
}

func BenchmarkWireRequestUnmarshal(b *testing.B) {
	r := benchRequest()
	data, _ := msgpack.Marshal(&r)
	b.Run("reflect", func(b *testing.B) { benchUnmarshal[requestNoCodec](b, data, true) })
	b.Run("custom", func(b *testing.B) { benchUnmarshal[Request](b, data, true) })
}

func BenchmarkWireRPCReplyMarshal(b *testing.B) {
	r := benchReply()
	b.Run("reflect", func(b *testing.B) { benchMarshal(b, twin[rpcReply, rpcReplyNoCodec](&r)) })
	b.Run("custom", func(b *testing.B) { benchMarshal(b, &r) })
	b.Run("custom-by-value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkWireRPCReplyUnmarshal(b *testing.B) {
	r := benchReply()
	data, _ := msgpack.Marshal(&r)
	b.Run("reflect", func(b *testing.B) { benchUnmarshal[rpcReplyNoCodec](b, data, false) })
	b.Run("custom", func(b *testing.B) { benchUnmarshal[rpcReply](b, data, false) })
}

func BenchmarkWireReplicateMarshal(b *testing.B) {
	r := benchReplicate()
	b.Run("reflect", func(b *testing.B) { benchMarshal(b, twin[replicateRequest, replicateRequestNoCodec](&r)) })
	b.Run("custom", func(b *testing.B) { benchMarshal(b, &r) })
}

func BenchmarkWireReplicateUnmarshal(b *testing.B) {
	r := benchReplicate()
	data, _ := msgpack.Marshal(&r)
	b.Run("reflect", func(b *testing.B) { benchUnmarshal[replicateRequestNoCodec](b, data, true) })
	b.Run("custom", func(b *testing.B) { benchUnmarshal[replicateRequest](b, data, true) })
}

// benchSnapshot: a copy of one partition, as rebalancing sends it.
func benchSnapshot() replicateRequest {
	entries := make([]EntrySnapshot, 4000)
	for i := range entries {
		entries[i] = EntrySnapshot{Key: fmt.Sprintf("key:%012d", i), Value: bytes.Repeat([]byte("x"), 100), Version: 7<<40 | uint64(i)}
		if i%4 == 0 {
			entries[i].ExpireAt = 1 << 60
		}
	}
	snap := &PartitionSnapshot{Format: SnapshotFormat, Partition: 17, Seq: 4000, Fence: 7,
		DMaps: []DMapSnapshot{{Name: "bench", Entries: entries, Locks: []LockSnapshot{{Key: "l", Token: 9, ExpireAt: 1 << 60}}}}}
	return replicateRequest{From: "member-1", Version: 42, Items: []replItem{{P: 17, Epoch: 7, Snap: snap, Chunk: 1}}}
}

// TestWireSnapshotAllocs: a copy decodes with two allocations per entry
// (its key and its value) plus slice growth, and encodes with a few for
// the output buffer.
func TestWireSnapshotAllocs(t *testing.T) {
	r := benchSnapshot()
	data, err := msgpack.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	n := len(r.Items[0].Snap.DMaps[0].Entries)
	dec := testing.AllocsPerRun(5, func() {
		var got replicateRequest
		if err := strictmsgpack.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
	})
	if dec > float64(2*n+64) {
		t.Errorf("decoding %d entries: %v allocations", n, dec)
	}
	enc := testing.AllocsPerRun(5, func() {
		if _, err := msgpack.Marshal(&r); err != nil {
			t.Fatal(err)
		}
	})
	if enc > 64 {
		t.Errorf("encoding %d entries: %v allocations", n, enc)
	}
}

func BenchmarkWireSnapshotMarshal(b *testing.B) {
	r := benchSnapshot()
	b.Run("reflect", func(b *testing.B) { benchMarshal(b, twin[replicateRequest, replicateRequestNoCodec](&r)) })
	b.Run("custom", func(b *testing.B) { benchMarshal(b, &r) })
}

func BenchmarkWireSnapshotUnmarshal(b *testing.B) {
	r := benchSnapshot()
	data, _ := msgpack.Marshal(&r)
	b.Run("reflect", func(b *testing.B) { benchUnmarshal[replicateRequestNoCodec](b, data, true) })
	b.Run("custom", func(b *testing.B) { benchUnmarshal[replicateRequest](b, data, true) })
}
