package dataplane

import (
	"fmt"
)

// globPattern is a compiled Redis MATCH pattern, matched byte by byte:
//
//	syntax  matches
//	------  -------
//	*       any run of bytes, including none
//	?       exactly one byte
//	[abc]   one of the bytes listed; [^abc] one byte not listed
//	[a-z]   a range (either order); '-' first or last in a class is literal
//	\x      the byte x itself (also inside a class)
//
// An unterminated class or a trailing backslash is malformed (ErrInvalid),
// where Redis would match it somehow. "[]" is an empty class (matches
// nothing), "[^]" matches any byte. The empty pattern matches every key (a
// scan without MATCH). Matching costs O(len(key) × len(pattern)) at worst
// (one backtracking point: the last star), never exponential.
type globPattern struct {
	toks []globTok
	all  bool // "" or only stars
}

type globTok struct {
	kind  uint8
	b     byte
	class *[4]uint64 // 256-bit set, for globClass
}

const (
	globLit uint8 = iota
	globAny
	globStar
	globClass
)

func compileGlob(pat string) (*globPattern, error) {
	g := &globPattern{}
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case '*':
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != globStar {
				g.toks = append(g.toks, globTok{kind: globStar})
			}
		case '?':
			g.toks = append(g.toks, globTok{kind: globAny})
		case '\\':
			if i+1 >= len(pat) {
				return nil, fmt.Errorf("%w: match pattern ends with a backslash", ErrInvalid)
			}
			i++
			g.toks = append(g.toks, globTok{kind: globLit, b: pat[i]})
		case '[':
			set, next, err := compileClass(pat, i+1)
			if err != nil {
				return nil, err
			}
			g.toks = append(g.toks, globTok{kind: globClass, class: set})
			i = next
		default:
			g.toks = append(g.toks, globTok{kind: globLit, b: c})
		}
	}
	g.all = len(g.toks) == 0 || (len(g.toks) == 1 && g.toks[0].kind == globStar)
	return g, nil
}

// compileClass compiles the class starting at pat[i] (after '['); it
// returns the set and the index of the closing ']'.
func compileClass(pat string, i int) (*[4]uint64, int, error) {
	var set [4]uint64
	neg := false
	if i < len(pat) && pat[i] == '^' {
		neg = true
		i++
	}
	// next reads one possibly escaped class byte at pat[i].
	next := func() (byte, error) {
		if pat[i] == '\\' {
			if i+1 >= len(pat) {
				return 0, fmt.Errorf("%w: match pattern ends with a backslash", ErrInvalid)
			}
			i++
		}
		c := pat[i]
		i++
		return c, nil
	}
	for {
		if i >= len(pat) {
			return nil, 0, fmt.Errorf("%w: match pattern has an unterminated '['", ErrInvalid)
		}
		if pat[i] == ']' {
			break
		}
		lo, err := next()
		if err != nil {
			return nil, 0, err
		}
		hi := lo
		if i+1 < len(pat) && pat[i] == '-' && pat[i+1] != ']' {
			i++
			if hi, err = next(); err != nil {
				return nil, 0, err
			}
			if lo > hi {
				lo, hi = hi, lo
			}
		}
		for c := int(lo); c <= int(hi); c++ {
			set[c>>6] |= 1 << (c & 63)
		}
	}
	if neg {
		for j := range set {
			set[j] = ^set[j]
		}
	}
	return &set, i, nil
}

func (t *globTok) matches(c byte) bool {
	switch t.kind {
	case globLit:
		return c == t.b
	case globAny:
		return true
	case globClass:
		return t.class[c>>6]&(1<<(c&63)) != 0
	}
	return false
}

// match reports whether s matches the whole pattern. A nil pattern
// matches everything.
func (g *globPattern) match(s string) bool {
	if g == nil || g.all {
		return true
	}
	toks := g.toks
	p, i := 0, 0
	star, starI := -1, 0
	for i < len(s) {
		if p < len(toks) {
			if toks[p].kind == globStar {
				star, starI = p, i
				p++
				continue
			}
			if toks[p].matches(s[i]) {
				p++
				i++
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Let the last star absorb one more byte and retry after it.
		starI++
		p, i = star+1, starI
	}
	for p < len(toks) && toks[p].kind == globStar {
		p++
	}
	return p == len(toks)
}
