package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
	adminTok = "admin-token-0123456789"
)

const goodFile = "# tokens of the test cluster\n" +
	"\n" +
	"read " + readTok + "\n" +
	"   # an indented comment\n" +
	"write\t" + writeTok + "\r\n" +
	"  admin   " + adminTok + "  \n"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseGood(t *testing.T) {
	s, err := Parse("tokens", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]Role{
		readTok:                  RoleRead,
		writeTok:                 RoleWrite,
		adminTok:                 RoleAdmin,
		"":                       RoleNone,
		"read-token-012345678":   RoleNone, // a prefix
		"read-token-01234567890": RoleNone, // longer
		"READ-TOKEN-0123456789":  RoleNone, // case matters
		"write":                  RoleNone,
	} {
		if got := s.Lookup(tok); got != want {
			t.Errorf("Lookup(%q) = %v, want %v", tok, got, want)
		}
	}
	if got := s.LookupCredential(NewCredential(writeTok)); got != RoleWrite {
		t.Errorf("LookupCredential = %v", got)
	}
	if r, w, a := s.Counts(); r != 1 || w != 1 || a != 1 {
		t.Errorf("Counts = %d %d %d", r, w, a)
	}
	if s.Path() != "" {
		t.Errorf("Path = %q", s.Path())
	}
	if err := s.Reload(); !errors.Is(err, ErrNoFile) {
		t.Errorf("Reload of a parsed store: %v", err)
	}
	var zero Store
	if got := zero.Lookup(readTok); got != RoleNone {
		t.Errorf("zero Store: %v", got)
	}
}

func TestParseBad(t *testing.T) {
	secret := "s3cret-token-abcdefghij"
	long := strings.Repeat("x", MaxTokenLen+1)
	tests := []struct {
		name, content string
		line          int
		reason        string
	}{
		{"unknown role", "reader " + secret, 1, "unknown role"},
		{"swapped fields", secret + " read", 1, "unknown role"},
		{"upper-case role", "READ " + secret, 1, "unknown role"},
		{"missing token", "# c\nadmin\n", 2, "single field"},
		{"short token", "read 0123456789abcde", 1, "shorter than 16 bytes"},
		{"long token", "read " + long, 1, "longer than 4096 bytes"},
		{"trailing comment", "read " + secret + " # trailing comment", 1, "5 fields"},
		{"space in token", "write " + secret[:8] + " " + secret[8:], 1, "3 fields"},
		{"non-ASCII token", "read " + secret + "é", 1, "visible ASCII"},
		{"control character", "read " + secret + "\x01", 1, "visible ASCII"},
		{"duplicate", "read " + secret + "\n\nadmin " + secret + "\n", 3, "duplicate token (the same as on line 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("tok.txt", []byte(tc.content))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadFile) {
				t.Errorf("not ErrBadFile: %v", err)
			}
			var le *LineError
			if !errors.As(err, &le) || le.File != "tok.txt" || le.Line != tc.line {
				t.Errorf("LineError = %+v, want tok.txt line %d", le, tc.line)
			}
			msg := err.Error()
			if want := fmt.Sprintf("tok.txt:%d:", tc.line); !strings.Contains(msg, want) || !strings.Contains(msg, tc.reason) {
				t.Errorf("error %q, want %q and %q", msg, want, tc.reason)
			}
			for _, leak := range []string{secret, secret[:8], secret[8:], long[:100], "0123456789abcde"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q contains (part of) the token", msg)
				}
			}
		})
	}
}

func TestParseEveryProblemAtOnce(t *testing.T) {
	content := "read short\nbogus aaaaaaaaaaaaaaaaaaaa\nwrite " + writeTok + "\nadmin\n"
	_, err := Parse("f", []byte(content))
	msg := fmt.Sprint(err)
	for _, want := range []string{"f:1: token shorter", "f:2: unknown role", "f:4: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "f:3:") {
		t.Errorf("good line reported: %q", msg)
	}
	// Many bad lines: a bounded report.
	_, err = Parse("f", []byte(strings.Repeat("nope\n", 100)))
	if n := strings.Count(err.Error(), "\n"); n > maxReported+1 || !strings.Contains(err.Error(), "and 80 more") {
		t.Errorf("%d lines: %v", n, err)
	}
}

func TestParseNoTokens(t *testing.T) {
	for _, content := range []string{"", "\n\n", "# only a comment\n"} {
		_, err := Parse("empty", []byte(content))
		if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), "no tokens") {
			t.Errorf("%q: %v", content, err)
		}
	}
}

func TestLoadAndReload(t *testing.T) {
	p := writeFile(t, goodFile)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != p || s.Lookup(adminTok) != RoleAdmin {
		t.Fatalf("Load: path %q, admin %v", s.Path(), s.Lookup(adminTok))
	}
	// Rotate: the admin token goes, a new one comes, read becomes write.
	newTok := "rotated-admin-token-42"
	if err := os.WriteFile(p, []byte("admin "+newTok+"\nwrite "+readTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]Role{adminTok: RoleNone, newTok: RoleAdmin, readTok: RoleWrite, writeTok: RoleNone} {
		if got := s.Lookup(tok); got != want {
			t.Errorf("after reload: Lookup(%q) = %v, want %v", tok, got, want)
		}
	}
	// A bad file is refused and the tokens in force stay.
	if err := os.WriteFile(p, []byte("admin "+newTok+"\nwrite short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, ErrBadFile) || strings.Contains(err.Error(), newTok) {
		t.Errorf("bad reload: %v", err)
	}
	if s.Lookup(newTok) != RoleAdmin || s.Lookup(readTok) != RoleWrite {
		t.Errorf("a failed reload changed the tokens")
	}
	// A missing file too.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reload of a missing file: %v", err)
	}
	if s.Lookup(newTok) != RoleAdmin {
		t.Errorf("a failed reload changed the tokens")
	}
	if _, err := Load(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := writeFile(t, "admin "+adminTok+"\n"+strings.Repeat("#", maxFileSize))
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a huge file: %v", err)
	}
}

// TestReloadConcurrent: lookups during reloads see the old set or the new
// one (run with -race).
func TestReloadConcurrent(t *testing.T) {
	a := "read " + readTok + "\n"
	b := "admin " + readTok + "\n"
	p := writeFile(t, a)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := s.Lookup(readTok); r != RoleRead && r != RoleAdmin {
					t.Errorf("Lookup during reload = %v", r)
					return
				}
			}
		})
	}
	for i := range 50 {
		content := a
		if i%2 == 0 {
			content = b
		}
		if err := os.WriteFile(p+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestRole(t *testing.T) {
	for _, r := range []Role{RoleRead, RoleWrite, RoleAdmin} {
		back, ok := ParseRole(r.String())
		if !ok || back != r {
			t.Errorf("ParseRole(%q) = %v %v", r, back, ok)
		}
	}
	if _, ok := ParseRole("none"); ok {
		t.Error("none parsed")
	}
	if RoleNone.String() != "none" || Role(9).String() != "role(9)" {
		t.Error(RoleNone.String(), Role(9).String())
	}
	for _, c := range []struct {
		have, need Role
		ok         bool
	}{
		{RoleAdmin, RoleWrite, true}, {RoleAdmin, RoleRead, true}, {RoleWrite, RoleRead, true},
		{RoleRead, RoleRead, true}, {RoleRead, RoleWrite, false}, {RoleWrite, RoleAdmin, false},
		{RoleNone, RoleRead, false}, {RoleNone, RoleNone, true},
	} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%v.Allows(%v) = %v", c.have, c.need, got)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	var sb strings.Builder
	for i := range 32 {
		fmt.Fprintf(&sb, "read token-%032d\n", i)
	}
	s, err := Parse("bench", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s.Lookup("token-00000000000000000000000000000017")
	}
}

// FuzzParse: the parser never panics; what it accepts looks up to the
// roles written; what it refuses is never echoed (no field of a token's
// length appears in the error).
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte("read short\nbogus " + adminTok + "\n" + adminTok + " admin\nwrite\n"))
	f.Add([]byte("admin " + adminTok + "\nread " + adminTok + "\n"))
	f.Add([]byte("read \xff\xfe" + readTok + "\r\n#\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f", data)
		if err != nil {
			if s != nil {
				t.Fatal("a Store with an error")
			}
			msg := err.Error()
			for _, field := range strings.Fields(string(data)) {
				if len(field) >= MinTokenLen && strings.Contains(msg, field) {
					t.Fatalf("error %q echoes %q", msg, field)
				}
			}
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 2 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			want, _ := ParseRole(fields[0])
			if got := s.Lookup(fields[1]); got != want {
				t.Fatalf("Lookup(%q) = %v, want %v", fields[1], got, want)
			}
		}
	})
}
