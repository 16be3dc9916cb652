package dataplane

import (
	"errors"
	"path"
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
