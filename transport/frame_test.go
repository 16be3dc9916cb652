package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, req := range []request{
		{},
		{ID: 1, Method: "ping"},
		{ID: math.MaxUint64, Method: strings.Repeat("m", 300), Deadline: math.MaxInt64, Body: bytes.Repeat([]byte{7}, 70000)},
		{ID: 200, Method: strings.Repeat("x", 40), Deadline: -1, Body: []byte{}},
		{ID: 1 << 40, Deadline: math.MinInt64, Body: []byte("body")},
	} {
		frame, err := appendRequestFrame(nil, &req, DefaultMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		body, err := readFrame(bytes.NewReader(frame), DefaultMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRequest(body)
		if err != nil {
			t.Fatalf("decode %+v: %v", req, err)
		}
		if got.ID != req.ID || got.Method != req.Method || got.Deadline != req.Deadline || !bytes.Equal(got.Body, req.Body) {
			t.Fatalf("got %+v, want %+v", got, req)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, resp := range []response{
		{},
		{ID: 9, Body: []byte("ok")},
		{ID: 1 << 33, Code: "stale_routing", Message: strings.Repeat("v", 70000)},
	} {
		frame, err := appendResponseFrame(nil, &resp, DefaultMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeResponse(frame[frameHeaderLen:])
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != resp.ID || got.Code != resp.Code || got.Message != resp.Message || !bytes.Equal(got.Body, resp.Body) {
			t.Fatalf("got %+v, want %+v", got, resp)
		}
	}
}

// The envelope is plain msgpack: a generic msgpack decoder reads ours, and
// ours reads a generic encoder's (including int forms it may choose and
// extra trailing fields).
func TestEnvelopeIsMsgpack(t *testing.T) {
	req := request{ID: 300, Method: "kv.get", Deadline: 1700000000123456789, Body: []byte{1, 2, 3}}
	frame, err := appendRequestFrame(nil, &req, DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct {
		_msgpack struct{} `msgpack:",as_array"` //nolint:unused // msgpack option
		ID       uint64
		Method   string
		Deadline int64
		Body     []byte
	}
	if err := msgpack.Unmarshal(frame[frameHeaderLen:], &generic); err != nil {
		t.Fatal(err)
	}
	if generic.ID != req.ID || generic.Method != req.Method || generic.Deadline != req.Deadline || !reflect.DeepEqual(generic.Body, req.Body) {
		t.Fatalf("generic decode = %+v, want %+v", generic, req)
	}

	enc, err := msgpack.Marshal([]any{int8(5), "m", int64(-7), "as str", "future field"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 5 || got.Method != "m" || got.Deadline != -7 || string(got.Body) != "as str" {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not an array", []byte{0xc0}},
		{"three fields", []byte{0x93, 0x01, 0xa0, 0x00}},
		{"negative id", []byte{0x94, 0xff, 0xa0, 0x00, 0xc4, 0x00}},
		{"id not an int", []byte{0x94, 0xa0, 0xa0, 0x00, 0xc4, 0x00}},
		{"deadline overflows", []byte{0x94, 0x01, 0xa0, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc4, 0x00}},
		{"body length past the end", []byte{0x94, 0x01, 0xa0, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"trailing bytes", []byte{0x94, 0x01, 0xa0, 0x00, 0xc4, 0x00, 0x00}},
		{"array32 length past the end", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRequest(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decodeRequest: got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	if _, err := readFrame(bytes.NewReader(nil), 10); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0}), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short header: got %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 5, 1}), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: got %v", err)
	}
	// A large frame announced but cut short allocates as it goes.
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 3*frameAllocChunk)
	in := append(hdr[:], make([]byte, frameAllocChunk+10)...)
	if _, err := readFrame(bytes.NewReader(in), 4*frameAllocChunk); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut large frame: got %v", err)
	}
	big := bytes.Repeat([]byte{9}, 2*frameAllocChunk+3)
	binary.BigEndian.PutUint32(hdr[:], uint32(len(big)))
	got, err := readFrame(bytes.NewReader(append(hdr[:], big...)), 4*frameAllocChunk)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large frame: %d bytes, %v", len(got), err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and both envelope
// decoders: none may panic, and what they accept must survive a round trip.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 6, 0x94, 0x01, 0xa0, 0x00, 0xc4, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxSize = 1 << 16
		body, err := readFrame(bytes.NewReader(data), maxSize)
		if err != nil {
			return
		}
		if len(body) > maxSize || !bytes.Equal(body, data[frameHeaderLen:frameHeaderLen+len(body)]) {
			t.Fatalf("readFrame returned %d bytes not matching the input", len(body))
		}
		checkRequestRoundTrip(t, body)
		checkResponseRoundTrip(t, body)
	})
}

// FuzzDecodeRequest fuzzes the request envelope decoder directly.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte{0x94, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x00, 0xc4, 0x00})
	f.Add([]byte{0x95, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xd9, 1, 'm', 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa1, 'b', 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRequestRoundTrip(t, data)
	})
}

// FuzzDecodeResponse fuzzes the response envelope decoder directly.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte{0x94, 0x01, 0xa0, 0xa0, 0xc4, 0x02, 'o', 'k'})
	f.Add([]byte{0x94, 0x02, 0xa9, 'n', 'o', 't', '_', 'f', 'o', 'u', 'n', 'd', 0xa0, 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkResponseRoundTrip(t, data)
	})
}

func checkRequestRoundTrip(t *testing.T, data []byte) {
	req, err := decodeRequest(data)
	if err != nil {
		return
	}
	frame, err := appendRequestFrame(nil, &req, math.MaxUint32)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	again, err := decodeRequest(frame[frameHeaderLen:])
	if err != nil {
		t.Fatalf("decode of re-encoded %+v: %v", req, err)
	}
	if again.ID != req.ID || again.Method != req.Method || again.Deadline != req.Deadline || !bytes.Equal(again.Body, req.Body) {
		t.Fatalf("round trip changed %+v into %+v", req, again)
	}
}

func checkResponseRoundTrip(t *testing.T, data []byte) {
	resp, err := decodeResponse(data)
	if err != nil {
		return
	}
	frame, err := appendResponseFrame(nil, &resp, math.MaxUint32)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	again, err := decodeResponse(frame[frameHeaderLen:])
	if err != nil {
		t.Fatalf("decode of re-encoded %+v: %v", resp, err)
	}
	if again.ID != resp.ID || again.Code != resp.Code || again.Message != resp.Message || !bytes.Equal(again.Body, resp.Body) {
		t.Fatalf("round trip changed %+v into %+v", resp, again)
	}
}
