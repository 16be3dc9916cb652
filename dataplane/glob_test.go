package dataplane

import (
	"errors"
	"path"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"", "anything", true},
		{"", "", true},
		{"*", "", true},
		{"*", "abc", true},
		{"**", "abc", true},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"abc", "ab", false},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"*c", "abcd", false},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbcd", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"*a*a*a*", "aaa", true},
		{"*a*a*a*", "aa", false},
		{"?", "a", true},
		{"?", "", false},
		{"?", "ab", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[a-b]llo", "hcllo", false},
		{"h[b-a]llo", "hallo", true}, // reversed range
		{"[-a]", "-", true},
		{"[a-]", "-", true},
		{"[a-]", "b", false},
		{`[\]]`, "]", true},
		{`[\-]`, "-", true},
		{`[a\-z]`, "b", false},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`\?x`, "?x", true},
		{`a\\b`, `a\b`, true},
		{"[]", "a", false},
		{"[^]", "a", true},
		{"[*]", "*", true},
		{"[*]", "a", false},
		{"user:[0-9]*", "user:7abc", true},
		{"user:[0-9]*", "user:abc", false},
		{"\xff*", "\xff\x00", true},
		{"[\x00-\xff]", "\x80", true},
		{"*x", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy", false},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pat)
		if err != nil {
			t.Fatalf("compile %q: %v", tt.pat, err)
		}
		if got := g.match(tt.s); got != tt.want {
			t.Errorf("%q matching %q: %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func TestGlobMalformed(t *testing.T) {
	for _, pat := range []string{"[", "[abc", "abc[", `\`, `abc\`, `[\`, `[a\`, "[a-", "[^"} {
		if _, err := compileGlob(pat); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", pat, err)
		}
	}
}

// TestGlobAgreesWithPathMatch compares against path.Match on patterns and
// names where the two syntaxes agree (no '/', no classes).
func TestGlobAgreesWithPathMatch(t *testing.T) {
	alpha := rapid.SampledFrom([]rune{'a', 'b', '*', '?'})
	rapid.Check(t, func(rt *rapid.T) {
		pat := rapid.StringOfN(alpha, 0, 8, -1).Draw(rt, "pat")
		s := rapid.StringOfN(rapid.SampledFrom([]rune{'a', 'b'}), 0, 10, -1).Draw(rt, "s")
		want, err := path.Match(pat, s)
		if err != nil {
			rt.Skip()
		}
		if pat == "" {
			want = true // ours: "" matches everything
		}
		g, err := compileGlob(pat)
		if err != nil {
			rt.Fatal(err)
		}
		if got := g.match(s); got != want {
			rt.Fatalf("%q matching %q: %v, path.Match says %v", pat, s, got, want)
		}
	})
}

// etGlobTok is one token of a generated pattern, for the differential test.
type etGlobTok struct {
	kind byte   // 'l' literal, '?' any, '*' star, '[' class
	b    byte   // literal
	set  string // class members
	neg  bool
}

// etNaiveMatch is a plain recursive matcher over tokens (exponential, for
// tiny inputs only): the reference for globPattern.
func etNaiveMatch(toks []etGlobTok, s string) bool {
	if len(toks) == 0 {
		return s == ""
	}
	t := toks[0]
	if t.kind == '*' {
		return etNaiveMatch(toks[1:], s) || (s != "" && etNaiveMatch(toks, s[1:]))
	}
	if s == "" {
		return false
	}
	ok := false
	switch t.kind {
	case 'l':
		ok = s[0] == t.b
	case '?':
		ok = true
	case '[':
		ok = strings.IndexByte(t.set, s[0]) >= 0 != t.neg
	}
	return ok && etNaiveMatch(toks[1:], s[1:])
}

// TestGlobDifferential renders random token lists as patterns (escaping
// the special bytes) and compares globPattern with etNaiveMatch.
func TestGlobDifferential(t *testing.T) {
	bytesGen := rapid.SampledFrom([]byte("ab*?[]\\-^"))
	tokGen := rapid.Custom(func(rt *rapid.T) etGlobTok {
		switch rapid.IntRange(0, 4).Draw(rt, "kind") {
		case 0, 1:
			return etGlobTok{kind: 'l', b: bytesGen.Draw(rt, "b")}
		case 2:
			return etGlobTok{kind: '?'}
		case 3:
			return etGlobTok{kind: '*'}
		}
		set := rapid.SliceOfNDistinct(bytesGen, 0, 4, rapid.ID[byte]).Draw(rt, "set")
		return etGlobTok{kind: '[', set: string(set), neg: rapid.Bool().Draw(rt, "neg")}
	})
	rapid.Check(t, func(rt *rapid.T) {
		toks := rapid.SliceOfN(tokGen, 0, 6).Draw(rt, "toks")
		var pat strings.Builder
		esc := func(b byte) {
			if strings.IndexByte("*?[]\\-^", b) >= 0 {
				pat.WriteByte('\\')
			}
			pat.WriteByte(b)
		}
		for _, tk := range toks {
			switch tk.kind {
			case 'l':
				esc(tk.b)
			case '?', '*':
				pat.WriteByte(tk.kind)
			case '[':
				pat.WriteByte('[')
				if tk.neg {
					pat.WriteByte('^')
				}
				for i := 0; i < len(tk.set); i++ {
					esc(tk.set[i])
				}
				pat.WriteByte(']')
			}
		}
		s := string(rapid.SliceOfN(bytesGen, 0, 8).Draw(rt, "s"))
		g, err := compileGlob(pat.String())
		if err != nil {
			rt.Fatalf("compile %q: %v", pat.String(), err)
		}
		want := etNaiveMatch(toks, s)
		if len(toks) == 0 {
			want = true // the empty pattern matches everything
		}
		if got := g.match(s); got != want {
			rt.Fatalf("%q matching %q: %v, want %v", pat.String(), s, got, want)
		}
	})
}

func FuzzGlob(f *testing.F) {
	f.Add("a*b?[c-e]\\*", "axxbyd*")
	f.Add("[^]", "")
	f.Fuzz(func(t *testing.T, pat, s string) {
		g, err := compileGlob(pat)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
			return
		}
		g.match(s)
	})
}
