package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// DefaultMaxFrameSize bounds one RPC frame (the envelope, without the 4-byte
// length prefix) unless Config.MaxFrameSize or ClientOptions.MaxFrameSize say
// otherwise.
const DefaultMaxFrameSize = 64 << 20

// frameHeaderLen is the size of the big-endian uint32 length prefix.
const frameHeaderLen = 4

// frameAllocChunk caps how much readFrame allocates ahead of the bytes that
// actually arrived, so a peer announcing a large frame and then stalling
// costs little memory.
const frameAllocChunk = 1 << 20

// request is the envelope of one RPC call. See doc.go for the byte layout.
type request struct {
	ID       uint64
	Method   string
	Deadline int64 // unix nanoseconds; 0 = none
	Body     []byte
}

// response is the envelope of one RPC answer, matched to its request by ID.
// Code is empty on success.
type response struct {
	ID      uint64
	Code    string
	Message string
	Body    []byte
}

// readFrame reads one length-prefixed frame from r and returns its body. A
// length above maxSize fails with ErrFrameTooLarge before anything else is
// read; the stream cannot be resynchronised after that, so callers close it.
func readFrame(r io.Reader, maxSize int) ([]byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d allowed", ErrFrameTooLarge, n, maxSize)
	}
	if n <= frameAllocChunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	// Large frame: grow as the bytes arrive (never more than twice what
	// arrived, so a lying length prefix costs little), doubling the
	// capacity so that the copies add up to O(n).
	buf := make([]byte, 0, frameAllocChunk)
	for uint32(len(buf)) < n {
		step := min(int(n)-len(buf), frameAllocChunk)
		start := len(buf)
		if start+step > cap(buf) {
			grown := make([]byte, start, min(int(n), max(2*cap(buf), start+step)))
			copy(grown, buf)
			buf = grown
		}
		buf = buf[:start+step]
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, noEOF(err)
		}
	}
	return buf, nil
}

// noEOF turns an EOF in the middle of a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// beginFrame appends a placeholder length prefix to dst and returns the
// offset of the prefix; endFrame fills it in.
func beginFrame(dst []byte) ([]byte, int) {
	off := len(dst)
	return append(dst, 0, 0, 0, 0), off
}

// endFrame writes the body length into the prefix at off and checks it
// against maxSize.
func endFrame(frame []byte, off, maxSize int) ([]byte, error) {
	n := len(frame) - off - frameHeaderLen
	if n > maxSize || n > math.MaxUint32 {
		return frame, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrFrameTooLarge, n, maxSize)
	}
	binary.BigEndian.PutUint32(frame[off:], uint32(n))
	return frame, nil
}

// appendRequestFrame appends req as a complete frame (prefix and envelope).
func appendRequestFrame(dst []byte, req *request, maxSize int) ([]byte, error) {
	dst, off := beginFrame(dst)
	dst = append(dst, mpFixArray|4)
	dst = appendUint(dst, req.ID)
	dst = appendStr(dst, req.Method)
	dst = appendInt(dst, req.Deadline)
	dst = appendBin(dst, req.Body)
	return endFrame(dst, off, maxSize)
}

// appendResponseFrame appends resp as a complete frame.
func appendResponseFrame(dst []byte, resp *response, maxSize int) ([]byte, error) {
	dst, off := beginFrame(dst)
	dst = append(dst, mpFixArray|4)
	dst = appendUint(dst, resp.ID)
	dst = appendStr(dst, resp.Code)
	dst = appendStr(dst, resp.Message)
	dst = appendBin(dst, resp.Body)
	return endFrame(dst, off, maxSize)
}

// decodeRequest decodes a request envelope (a frame body). It never panics
// and never allocates more than len(b): every announced length is checked
// against the bytes left. Body aliases b.
func decodeRequest(b []byte) (request, error) {
	var req request
	d := mpDecoder{b: b}
	n := d.arrayLen()
	req.ID = d.uint()
	req.Method = d.str()
	req.Deadline = d.int()
	req.Body = d.bin()
	if err := d.finish(n, 4); err != nil {
		return request{}, fmt.Errorf("%w: request: %w", ErrMalformed, err)
	}
	return req, nil
}

// decodeResponse decodes a response envelope (a frame body), with the same
// guarantees as decodeRequest.
func decodeResponse(b []byte) (response, error) {
	var resp response
	d := mpDecoder{b: b}
	n := d.arrayLen()
	resp.ID = d.uint()
	resp.Code = d.str()
	resp.Message = d.str()
	resp.Body = d.bin()
	if err := d.finish(n, 4); err != nil {
		return response{}, fmt.Errorf("%w: response: %w", ErrMalformed, err)
	}
	return resp, nil
}

// The msgpack subset the envelopes use (https://github.com/msgpack/msgpack/blob/master/spec.md).
const (
	mpFixArray  = 0x90 // 0x90..0x9f: array of 0..15 elements
	mpFixStr    = 0xa0 // 0xa0..0xbf: string of 0..31 bytes
	mpNil       = 0xc0
	mpBin8      = 0xc4
	mpBin16     = 0xc5
	mpBin32     = 0xc6
	mpUint8     = 0xcc
	mpUint16    = 0xcd
	mpUint32    = 0xce
	mpUint64    = 0xcf
	mpInt8      = 0xd0
	mpInt16     = 0xd1
	mpInt32     = 0xd2
	mpInt64     = 0xd3
	mpStr8      = 0xd9
	mpStr16     = 0xda
	mpStr32     = 0xdb
	mpArray16   = 0xdc
	mpArray32   = 0xdd
	mpNegFixMin = 0xe0 // 0xe0..0xff: -32..-1
)

// appendUint appends v in the shortest msgpack unsigned form.
func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, mpUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, mpUint32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, mpUint64), v)
	}
}

// appendInt appends v in the shortest msgpack form (unsigned forms for
// v >= 0, as msgpack encoders commonly do).
func appendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, mpInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, mpInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, mpInt32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, mpInt64), uint64(v))
	}
}

func appendStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, mpFixStr|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, mpStr8, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, mpStr16), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, mpStr32), uint32(n))
	}
	return append(dst, s...)
}

func appendBin(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, mpBin8, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, mpBin16), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, mpBin32), uint32(n))
	}
	return append(dst, b...)
}

// mpDecoder reads the msgpack subset of the envelopes from b. The first
// error sticks: later reads return zero values, and finish reports it.
type mpDecoder struct {
	b   []byte
	off int
	err error
}

func (d *mpDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// take returns the next n bytes, or nil after recording an error.
func (d *mpDecoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("need %d bytes at offset %d, %d left", n, d.off, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *mpDecoder) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *mpDecoder) be(n uint64) uint64 {
	b := d.take(n)
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func (d *mpDecoder) arrayLen() uint64 {
	c := d.byte()
	switch {
	case d.err != nil:
		return 0
	case c&0xf0 == mpFixArray:
		return uint64(c & 0x0f)
	case c == mpArray16:
		return d.be(2)
	case c == mpArray32:
		return d.be(4)
	}
	d.fail("want array, got code 0x%02x at offset %d", c, d.off-1)
	return 0
}

// uint accepts any msgpack integer that is not negative.
func (d *mpDecoder) uint() uint64 {
	at := d.off
	v, neg := d.integer()
	if neg {
		d.fail("negative integer at offset %d where unsigned expected", at)
		return 0
	}
	return v
}

// int accepts any msgpack integer that fits int64.
func (d *mpDecoder) int() int64 {
	at := d.off
	v, neg := d.integer()
	if neg {
		return int64(v)
	}
	if v > math.MaxInt64 {
		d.fail("integer at offset %d overflows int64", at)
		return 0
	}
	return int64(v)
}

// integer decodes any msgpack integer. For negative values it returns the
// two's complement bits of the int64 and neg = true.
func (d *mpDecoder) integer() (v uint64, neg bool) {
	c := d.byte()
	if d.err != nil {
		return 0, false
	}
	switch {
	case c < 0x80:
		return uint64(c), false
	case c >= mpNegFixMin:
		return uint64(int64(int8(c))), true
	}
	switch c {
	case mpUint8:
		return d.be(1), false
	case mpUint16:
		return d.be(2), false
	case mpUint32:
		return d.be(4), false
	case mpUint64:
		return d.be(8), false
	case mpInt8:
		x := int64(int8(d.be(1)))
		return uint64(x), x < 0
	case mpInt16:
		x := int64(int16(d.be(2)))
		return uint64(x), x < 0
	case mpInt32:
		x := int64(int32(d.be(4)))
		return uint64(x), x < 0
	case mpInt64:
		x := int64(d.be(8))
		return uint64(x), x < 0
	}
	d.fail("want integer, got code 0x%02x at offset %d", c, d.off-1)
	return 0, false
}

// raw decodes a str, bin or nil header and returns the payload.
func (d *mpDecoder) raw(what string, allowStr, allowBin bool) []byte {
	c := d.byte()
	if d.err != nil {
		return nil
	}
	var n uint64
	switch {
	case c == mpNil:
		return nil
	case allowStr && c&0xe0 == mpFixStr:
		n = uint64(c & 0x1f)
	case allowStr && c == mpStr8, allowBin && c == mpBin8:
		n = d.be(1)
	case allowStr && c == mpStr16, allowBin && c == mpBin16:
		n = d.be(2)
	case allowStr && c == mpStr32, allowBin && c == mpBin32:
		n = d.be(4)
	default:
		d.fail("want %s, got code 0x%02x at offset %d", what, c, d.off-1)
		return nil
	}
	return d.take(n)
}

func (d *mpDecoder) str() string { return string(d.raw("string", true, false)) }

// bin accepts bin, str (older msgpack encoders write bytes as raw str) or nil.
func (d *mpDecoder) bin() []byte { return d.raw("binary", true, true) }

// finish checks the array had at least want elements. With exactly want
// elements the envelope must end here; with more, the rest of the frame is
// ignored (room for fields added later).
func (d *mpDecoder) finish(n uint64, want uint64) error {
	if d.err != nil {
		return d.err
	}
	if n < want {
		return fmt.Errorf("array of %d elements, want at least %d", n, want)
	}
	if n == want && d.off != len(d.b) {
		return fmt.Errorf("%d trailing bytes", len(d.b)-d.off)
	}
	return nil
}
