package resp

import (
	"strconv"
	"strings"
)

// Cursor encoding (see the package doc). A data-plane cursor
// "partition:" or "partition:<16 hex digits>" maps to
// partition<<posBits | start>>dropBits, where start is the first hash of
// the next page rounded down to a multiple of 1<<dropBits.
const (
	posBits      = 47
	dropBits     = 64 - posBits // 17
	maxPartition = 1<<16 - 1
	tableBit     = uint64(1) << 63
	// maxCursors bounds the table of cursors of other forms.
	maxCursors = 4096
)

// cursorTable keeps cursors that have no stateless encoding, under
// increasing ids; the oldest fall out first. Guarded by Server.mu.
type cursorTable struct {
	next  uint64
	byID  map[uint64]string
	order []uint64
}

// encodeCursor turns a data-plane cursor into a RESP cursor ("" -> 0).
func (s *Server) encodeCursor(c string) uint64 {
	if c == "" {
		return 0
	}
	if v, ok := packCursor(c); ok {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.cursors
	if t.byID == nil {
		t.byID = make(map[uint64]string)
	}
	t.next++
	id := tableBit | t.next&^tableBit
	t.byID[id] = c
	t.order = append(t.order, id)
	if len(t.order) > maxCursors {
		delete(t.byID, t.order[0])
		t.order = t.order[1:]
	}
	return id
}

// decodeCursor turns a RESP cursor back into a data-plane cursor.
func (s *Server) decodeCursor(arg []byte) (string, bool) {
	v, err := strconv.ParseUint(string(arg), 10, 64)
	if err != nil {
		return "", false
	}
	if v == 0 {
		return "", true
	}
	if v&tableBit != 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		c, ok := s.cursors.byID[v]
		return c, ok
	}
	return unpackCursor(v), true
}

// packCursor encodes "pid:" or "pid:hhhhhhhhhhhhhhhh" (the hash of the
// last key returned; the next page starts after it).
func packCursor(c string) (uint64, bool) {
	ps, inner, ok := strings.Cut(c, ":")
	if !ok || ps == "" || len(ps) > 5 || ps[0] == '+' {
		return 0, false
	}
	pid, err := strconv.ParseUint(ps, 10, 32)
	if err != nil || pid > maxPartition || strconv.FormatUint(pid, 10) != ps {
		return 0, false
	}
	var start uint64
	if inner != "" {
		if len(inner) != 16 {
			return 0, false
		}
		h, err := strconv.ParseUint(inner, 16, 64)
		if err != nil {
			return 0, false
		}
		if h == ^uint64(0) {
			start = h // rounds down: repeats at most the last bucket
		} else {
			start = h + 1
		}
	}
	v := pid<<posBits | start>>dropBits
	if v == 0 {
		// partition 0 from its first hash: the scan's start. The service
		// never answers it as a next cursor, but keep 0 meaning "done".
		return 0, false
	}
	return v, true
}

func unpackCursor(v uint64) string {
	pid := v >> posBits
	start := (v & (1<<posBits - 1)) << dropBits
	if start == 0 {
		return strconv.FormatUint(pid, 10) + ":"
	}
	const digits = "0123456789abcdef"
	var b [16]byte
	h := start - 1
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&15]
		h >>= 4
	}
	return strconv.FormatUint(pid, 10) + ":" + string(b[:])
}
