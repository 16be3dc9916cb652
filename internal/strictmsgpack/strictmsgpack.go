package strictmsgpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth bounds how deeply arrays and maps may nest. The routing table and
// the fsm commands nest at most six levels.
const MaxDepth = 32

// Sentinel errors. Messages are prefixed with the package name; test with
// errors.Is.
var (
	// ErrMalformed reports bytes that are not exactly one well-formed msgpack
	// value: truncated, the reserved code 0xc1, a length beyond the input,
	// nesting deeper than MaxDepth, or bytes after the value.
	ErrMalformed = errors.New("strictmsgpack: malformed msgpack")
	// ErrMismatch reports well-formed msgpack that does not fit the
	// destination: wrong types, or a field the destination does not have.
	ErrMismatch = errors.New("strictmsgpack: msgpack does not fit the destination")
)

// Unmarshal decodes b, which must hold exactly one msgpack value, into v (a
// non-nil pointer). Unknown struct fields are refused: a field added to an
// encoded type must come with a new format version.
func Unmarshal(b []byte, v any) error {
	if err := Check(b); err != nil {
		return err
	}
	d := decoders.Get().(*decoder)
	d.r.Reset(b)
	d.dec.Reset(&d.r) // also clears every setting
	d.dec.DisallowUnknownFields(true)
	err := d.dec.Decode(v)
	d.dec.Reset(nil)
	d.r.Reset(nil)
	decoders.Put(d)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return nil
}

// decoder is a reusable Decoder reading a reusable bytes.Reader (Unmarshal
// runs for every cluster RPC a member serves).
type decoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := new(decoder)
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

// Check reports whether b is exactly one well-formed msgpack value (see
// ErrMalformed). It runs in O(len(b)) time and allocates only its nesting
// stack.
func Check(b []byte) error {
	// pending[d] counts the values still to read at nesting depth d.
	var stackBuf [MaxDepth + 1]uint64
	pending := append(stackBuf[:0], 1)
	pos := 0
	for len(pending) > 0 {
		top := len(pending) - 1
		if pending[top] == 0 {
			pending = pending[:top]
			continue
		}
		pending[top]--
		if pos >= len(b) {
			return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, pos)
		}
		code := b[pos]
		pos++
		// skip is the payload to step over; children the values nested in
		// this one (array elements, or keys plus values of a map).
		var skip, children uint64
		// lenBytes is the size of a big-endian length that follows the code.
		lenBytes := 0
		// extra is added to a read length (the type byte of ext formats);
		// mul scales it (map entries are two values).
		var extra, mul uint64 = 0, 0
		isContainer := false
		switch {
		case code <= 0x7f, code >= 0xe0: // positive and negative fixint
		case code <= 0x8f: // fixmap
			children = 2 * uint64(code&0x0f)
		case code <= 0x9f: // fixarray
			children = uint64(code & 0x0f)
		case code <= 0xbf: // fixstr
			skip = uint64(code & 0x1f)
		default:
			switch code {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc1:
				return fmt.Errorf("%w: reserved code 0xc1 at byte %d", ErrMalformed, pos-1)
			case 0xc4, 0xd9: // bin8, str8
				lenBytes, mul = 1, 1
			case 0xc5, 0xda: // bin16, str16
				lenBytes, mul = 2, 1
			case 0xc6, 0xdb: // bin32, str32
				lenBytes, mul = 4, 1
			case 0xc7: // ext8
				lenBytes, mul, extra = 1, 1, 1
			case 0xc8: // ext16
				lenBytes, mul, extra = 2, 1, 1
			case 0xc9: // ext32
				lenBytes, mul, extra = 4, 1, 1
			case 0xca: // float32
				skip = 4
			case 0xcb: // float64
				skip = 8
			case 0xcc, 0xd0: // uint8, int8
				skip = 1
			case 0xcd, 0xd1: // uint16, int16
				skip = 2
			case 0xce, 0xd2: // uint32, int32
				skip = 4
			case 0xcf, 0xd3: // uint64, int64
				skip = 8
			case 0xd4: // fixext1 (type byte + 1)
				skip = 2
			case 0xd5: // fixext2
				skip = 3
			case 0xd6: // fixext4
				skip = 5
			case 0xd7: // fixext8
				skip = 9
			case 0xd8: // fixext16
				skip = 17
			case 0xdc: // array16
				lenBytes, mul, isContainer = 2, 1, true
			case 0xdd: // array32
				lenBytes, mul, isContainer = 4, 1, true
			case 0xde: // map16
				lenBytes, mul, isContainer = 2, 2, true
			case 0xdf: // map32
				lenBytes, mul, isContainer = 4, 2, true
			}
		}
		if lenBytes > 0 {
			if len(b)-pos < lenBytes {
				return fmt.Errorf("%w: truncated length at byte %d", ErrMalformed, pos)
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(b[pos])
			case 2:
				n = uint64(binary.BigEndian.Uint16(b[pos:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(b[pos:]))
			}
			pos += lenBytes
			if isContainer {
				children = n * mul
			} else {
				skip = n*mul + extra
			}
		}
		rest := uint64(len(b) - pos)
		if skip > rest {
			return fmt.Errorf("%w: %d-byte payload at byte %d exceeds the %d bytes left", ErrMalformed, skip, pos, rest)
		}
		pos += int(skip)
		if children > 0 {
			// Every nested value takes at least one byte.
			if children > uint64(len(b)-pos) {
				return fmt.Errorf("%w: %d nested values at byte %d exceed the %d bytes left", ErrMalformed, children, pos, len(b)-pos)
			}
			if len(pending) > MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d at byte %d", ErrMalformed, MaxDepth, pos)
			}
			pending = append(pending, children)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%w: %d bytes after the value", ErrMalformed, len(b)-pos)
	}
	return nil
}
