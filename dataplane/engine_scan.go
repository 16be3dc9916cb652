package dataplane

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// DefaultScanLimit is the page size of a scan with Limit 0.
const DefaultScanLimit = 100

// scanBudget bounds the keys one scan page examines (at least twice the
// limit), so a selective match on a big partition returns short pages
// rather than holding the partition lock for long.
const scanBudget = 16384

// scan returns one page of DMap req.DMap's live keys on this partition
// that match the pattern, in keyHash order.
//
// The cursor is the hash of the last key returned, as 16 hex digits ("" to
// start, "" again when the partition is done); a page returns the keys
// whose hash is greater. Hash order is a fixed total order on all possible
// keys, the same on every member, so: every key present for the whole scan
// is returned exactly once, whatever is written meanwhile (and whichever
// member serves the next page); keys written during the scan may or may
// not appear. A page never ends inside a group of keys with equal 64-bit
// hashes, so in that (astronomically rare) case it may return more than
// Limit keys.
//
// Cost: the table's buckets are contiguous hash ranges of at most ~900
// keys, so a page reads and sorts the buckets it passes: O(B log B) per
// bucket, a full scan O(n log B) plus O(B) per page, never O(n²). A page
// examines at most max(16384, 2×Limit) keys and may then return fewer than
// Limit keys (even none) with a non-empty cursor.
func (o *opCtx) scan(req *Request, match *globPattern) (*Response, error) {
	pos, done, _ := parseScanCursor(req.Cursor) // checked by checkRequest
	d := o.part.dmaps[req.DMap]
	if done || d == nil || d.tab.n == 0 {
		return &Response{}, nil
	}
	limit := req.Limit
	if limit == 0 {
		limit = DefaultScanLimit
	}
	budget := max(scanBudget, 2*limit)
	type item struct {
		h uint64
		k string
	}
	var (
		items    []item
		out      = make([]string, 0, min(limit, d.tab.n))
		last     uint64
		examined int
	)
	for {
		b := d.tab.bucket(pos)
		_, hi := bucketRange(b, pos)
		items = items[:0]
		for h, ent := range b.all {
			if h < pos || ent.expired(o.now) || o.idle(d, ent) {
				continue
			}
			if k := ent.key(); match.match(k) {
				items = append(items, item{h, k})
			}
		}
		for k, ent := range d.tab.over { // colliding keys (practically never)
			if h := hashKey(k); h >= pos && h <= hi && !ent.expired(o.now) && !o.idle(d, ent) && match.match(k) {
				items = append(items, item{h, k})
			}
		}
		examined += b.n
		slices.SortFunc(items, func(a, b item) int {
			if c := cmp.Compare(a.h, b.h); c != 0 {
				return c
			}
			return cmp.Compare(a.k, b.k)
		})
		for _, it := range items {
			if len(out) >= limit && it.h != last {
				return &Response{Keys: out, Cursor: formatScanCursor(last)}, nil
			}
			out = append(out, it.k)
			last = it.h
		}
		if hi == math.MaxUint64 {
			return &Response{Keys: out}, nil
		}
		if len(out) >= limit || examined >= budget {
			return &Response{Keys: out, Cursor: formatScanCursor(hi)}, nil
		}
		pos = hi + 1
	}
}

// parseScanCursor returns the first hash a page starts at, or done when
// the cursor is past the last possible hash.
func parseScanCursor(c string) (pos uint64, done bool, err error) {
	if c == "" {
		return 0, false, nil
	}
	h, perr := strconv.ParseUint(c, 16, 64)
	if len(c) != 16 || perr != nil {
		return 0, false, fmt.Errorf("%w: malformed scan cursor %q", ErrInvalid, c)
	}
	if h == math.MaxUint64 {
		return 0, true, nil
	}
	return h + 1, false, nil
}

func formatScanCursor(h uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&15]
		h >>= 4
	}
	return string(b[:])
}
