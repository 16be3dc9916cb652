package strictmsgpack_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"nil", []byte{0xc0}, true},
		{"empty", nil, false},
		{"fixarray of two", []byte{0x92, 0x01, 0x02}, true},
		{"fixarray short", []byte{0x92, 0x01}, false},
		{"array32 huge", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, false},
		{"map32 huge", []byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00}, false},
		{"str32 huge", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, false},
		{"ext8", []byte{0xc7, 0x01, 0x05, 0xaa}, true},
		{"ext8 short", []byte{0xc7, 0x02, 0x05, 0xaa}, false},
		{"reserved", []byte{0xc1}, false},
		{"trailing", []byte{0x01, 0x02}, false},
		{"deep", append(bytes.Repeat([]byte{0x91}, strictmsgpack.MaxDepth+1), 0x01), false},
		{"max depth", append(bytes.Repeat([]byte{0x91}, strictmsgpack.MaxDepth), 0x01), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := strictmsgpack.Check(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("Check(% x) = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, strictmsgpack.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

type point struct {
	X     int      `msgpack:"x"`
	Names []string `msgpack:"n"`
	Sub   []point  `msgpack:"s"`
}

func TestUnmarshal(t *testing.T) {
	want := point{X: 3, Names: []string{"a", "b"}, Sub: []point{{X: 1}}}
	b, err := msgpack.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got point
	if err := strictmsgpack.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.X != want.X || len(got.Names) != 2 || got.Names[1] != "b" || len(got.Sub) != 1 || got.Sub[0].X != 1 {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	unknown, _ := msgpack.Marshal(map[string]any{"x": 1, "y": 2})
	if err := strictmsgpack.Unmarshal(unknown, &got); !errors.Is(err, strictmsgpack.ErrMismatch) {
		t.Fatalf("unknown field: got %v, want ErrMismatch", err)
	}
	wrongType, _ := msgpack.Marshal(map[string]any{"x": "one"})
	if err := strictmsgpack.Unmarshal(wrongType, &got); !errors.Is(err, strictmsgpack.ErrMismatch) {
		t.Fatalf("wrong type: got %v, want ErrMismatch", err)
	}
	// {"s": array32 of 2^32-1 points}: refused before msgpack allocates.
	huge := []byte{0x81, 0xa1, 's', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80}
	if err := strictmsgpack.Unmarshal(huge, &got); !errors.Is(err, strictmsgpack.ErrMalformed) {
		t.Fatalf("huge array: got %v, want ErrMalformed", err)
	}
}

// FuzzUnmarshal: Check and Unmarshal never panic, and whatever Unmarshal
// accepts re-encodes to bytes it accepts again with the same result.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range []any{
		point{X: 3, Names: []string{"a", "b"}, Sub: []point{{X: 1}, {Names: []string{""}}}},
		map[string]any{"x": -1, "s": []any{map[string]any{"x": 2}}},
		[]any{1, "two", nil, 3.5, true, []byte{1, 2}},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc7, 0x01, 0x05, 0xaa})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = strictmsgpack.Check(b)
		var p point
		if err := strictmsgpack.Unmarshal(b, &p); err != nil {
			return
		}
		again, err := msgpack.Marshal(p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var q point
		if err := strictmsgpack.Unmarshal(again, &q); err != nil {
			t.Fatalf("re-encoded value refused: %v", err)
		}
		again2, _ := msgpack.Marshal(q)
		if !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed the value: %+v then %+v", p, q)
		}
	})
}
