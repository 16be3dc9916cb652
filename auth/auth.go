package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Sentinel errors of package auth; test with errors.Is.
var (
	// ErrBadFile: the token file has bad lines, or no token (wrapped by
	// the *LineError of each problem, or returned alone for a file
	// without tokens).
	ErrBadFile = errors.New("auth: bad token file")
	// ErrNoFile: Reload of a Store that was not loaded from a file.
	ErrNoFile = errors.New("auth: no token file to reload")
)

// Limits of a token.
const (
	// MinTokenLen is the shortest token accepted: 16 bytes.
	MinTokenLen = 16
	// MaxTokenLen is the longest token accepted: 4096 bytes.
	MaxTokenLen = 4096
)

// maxFileSize bounds a token file (a safeguard against pointing
// --auth-tokens at the wrong file).
const maxFileSize = 4 << 20

// maxReported bounds the bad lines one error lists.
const maxReported = 20

// Role is what a token may do. Each role includes the ones below it.
type Role uint8

// The roles, weakest first. The zero value, RoleNone, is "no role": an
// unknown token (or, in a front end's table, a route that needs none).
const (
	RoleNone Role = iota
	RoleRead
	RoleWrite
	RoleAdmin
)

// String returns the role's name as written in the token file ("none"
// for RoleNone).
func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	case RoleAdmin:
		return "admin"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Allows reports whether a token with role r may do what needs role need.
// RoleNone allows only what needs RoleNone.
func (r Role) Allows(need Role) bool { return r >= need }

// ParseRole returns the role called s (read, write or admin).
func ParseRole(s string) (Role, bool) {
	switch s {
	case "read":
		return RoleRead, true
	case "write":
		return RoleWrite, true
	case "admin":
		return RoleAdmin, true
	}
	return RoleNone, false
}

// Credential is the SHA-256 digest of a presented token: what a
// long-lived connection keeps (instead of the token) to check its role
// again after a Reload.
type Credential [sha256.Size]byte

// NewCredential returns the credential of token.
func NewCredential(token string) Credential { return sha256.Sum256([]byte(token)) }

// LineError is a problem on one line of a token file. Its message names
// the file and the line, never the line's text.
type LineError struct {
	File   string
	Line   int
	Reason string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("auth: %s:%d: %s", e.File, e.Line, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBadFile) true.
func (e *LineError) Unwrap() error { return ErrBadFile }

// entry is one token of a set: its digest and role.
type entry struct {
	digest Credential
	role   Role
}

// tokenSet is an immutable, parsed token file.
type tokenSet struct {
	entries []entry
	counts  [RoleAdmin + 1]int // tokens per role
}

// Store holds a token set and answers lookups. Build it with Load or
// Parse; the zero value has no tokens (every lookup is RoleNone).
type Store struct {
	path string // "" when made by Parse
	set  atomic.Pointer[tokenSet]
}

// Load reads and parses the token file at path. Reload reads it again.
func Load(path string) (*Store, error) {
	ts, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path}
	s.set.Store(ts)
	return s, nil
}

// Parse parses the contents of a token file; name is used in errors. The
// Store cannot Reload.
func Parse(name string, data []byte) (*Store, error) {
	ts, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	s := &Store{}
	s.set.Store(ts)
	return s, nil
}

// Path returns the file the Store was loaded from ("" for Parse).
func (s *Store) Path() string { return s.path }

// Reload reads the Store's file again and, if it parses, replaces the
// token set at once: lookups from then on use the new tokens (a token
// that was removed no longer works; long-lived connections check their
// credential on every command). On error the old tokens stay in force.
func (s *Store) Reload() error {
	if s.path == "" {
		return ErrNoFile
	}
	ts, err := readFile(s.path)
	if err != nil {
		return err
	}
	s.set.Store(ts)
	return nil
}

// Counts returns how many tokens each role has (for logs).
func (s *Store) Counts() (read, write, admin int) {
	ts := s.set.Load()
	if ts == nil {
		return 0, 0, 0
	}
	return ts.counts[RoleRead], ts.counts[RoleWrite], ts.counts[RoleAdmin]
}

// Lookup returns the role of token, RoleNone if it is unknown. Its time
// does not depend on which entry matched, or on how much of it.
func (s *Store) Lookup(token string) Role {
	return s.LookupCredential(NewCredential(token))
}

// LookupCredential returns the role of the token whose credential c is,
// RoleNone if it is unknown; in constant time, like Lookup.
func (s *Store) LookupCredential(c Credential) Role {
	ts := s.set.Load()
	if ts == nil {
		return RoleNone
	}
	role := int(RoleNone)
	for i := range ts.entries {
		e := &ts.entries[i]
		eq := subtle.ConstantTimeCompare(c[:], e.digest[:])
		role = subtle.ConstantTimeSelect(eq, int(e.role), role)
	}
	return Role(role)
}

func readFile(path string) (*tokenSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: token file: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("auth: token file %s: %w", path, err)
	}
	return parse(path, data)
}

func readLimited(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// parse parses a token file's contents. Every bad line is reported (up to
// maxReported), none echoed.
func parse(name string, data []byte) (*tokenSet, error) {
	ts := &tokenSet{}
	var problems []error
	bad := func(line int, format string, args ...any) {
		problems = append(problems, &LineError{File: name, Line: line, Reason: fmt.Sprintf(format, args...)})
	}
	seen := map[Credential]int{} // digest -> first line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxFileSize+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 2 {
			bad(line, `want "ROLE TOKEN", found a single field (missing token?)`)
			continue
		}
		if len(fields) > 2 {
			bad(line, `want "ROLE TOKEN", found %d fields (a token cannot contain spaces; '#' comments must start the line)`, len(fields))
			continue
		}
		role, ok := ParseRole(fields[0])
		if !ok {
			// Not echoed: with the fields swapped, this would be the token.
			bad(line, `unknown role (want read, write or admin, as "ROLE TOKEN")`)
			continue
		}
		tok := fields[1]
		switch {
		case len(tok) < MinTokenLen:
			bad(line, "token shorter than %d bytes", MinTokenLen)
			continue
		case len(tok) > MaxTokenLen:
			bad(line, "token longer than %d bytes", MaxTokenLen)
			continue
		case !visibleASCII(tok):
			bad(line, "token has a character outside visible ASCII (0x21 to 0x7e)")
			continue
		}
		d := NewCredential(tok)
		if first, dup := seen[d]; dup {
			bad(line, "duplicate token (the same as on line %d)", first)
			continue
		}
		seen[d] = line
		ts.entries = append(ts.entries, entry{digest: d, role: role})
		ts.counts[role]++
	}
	if sc.Err() != nil { // cannot happen: the buffer holds the whole file
		bad(line+1, "unreadable line")
	}
	if len(problems) > 0 {
		if len(problems) > maxReported {
			n := len(problems) - maxReported
			problems = append(problems[:maxReported], fmt.Errorf("auth: %s: and %d more bad lines", name, n))
		}
		return nil, errors.Join(problems...)
	}
	if len(ts.entries) == 0 {
		return nil, fmt.Errorf("%w: %s: no tokens (want one \"ROLE TOKEN\" per line)", ErrBadFile, name)
	}
	return ts, nil
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
