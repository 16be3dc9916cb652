package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/auth"
)

const (
	readToken  = "read-token-aaaaaaaaaaaa"
	writeToken = "write-token-bbbbbbbbbbbb"
	adminToken = "admin-token-cccccccccccc"
	wrongToken = "not-a-token-dddddddddddd"
)

var tokenFile = "read " + readToken + "\nwrite " + writeToken + "\nadmin " + adminToken + "\n"

// startAuth serves a fake cluster with authentication from the token file
// at path; it returns the address.
func startAuth(t *testing.T, store *auth.Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(httpapitest.NewCluster(1, 3, 1), Options{Logger: quiet(), RequestTimeout: 5 * time.Second, Auth: store})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

func parsedStore(t *testing.T) *auth.Store {
	t.Helper()
	s, err := auth.Parse("tokens", []byte(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawConn is a RESP connection that sends commands and reads replies as
// text, one reply per command.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, rd: bufio.NewReader(c)}
}

// do sends args and returns the reply: "+OK", "-ERR ...", ":1", the
// bulk's text ("(nil)" for a null bulk), or "*n" followed by the
// elements, space-separated.
func (r *rawConn) do(args ...string) string {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		r.t.Fatal(err)
	}
	return r.reply()
}

func (r *rawConn) reply() string {
	r.t.Helper()
	line, err := r.rd.ReadString('\n')
	if err != nil {
		r.t.Fatalf("reading a reply: %v", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "(nil)"
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r.rd, buf); err != nil {
			r.t.Fatal(err)
		}
		return string(buf[:n])
	case '*':
		n, _ := strconv.Atoi(line[1:])
		parts := []string{line}
		for range n {
			parts = append(parts, r.reply())
		}
		return strings.Join(parts, " ")
	}
	return line
}

func ioReadFull(rd *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := rd.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func wantReply(t *testing.T, got, want string) {
	t.Helper()
	if !strings.HasPrefix(got, want) {
		t.Errorf("reply %q, want prefix %q", got, want)
	}
	for _, tok := range []string{readToken, writeToken, adminToken, wrongToken} {
		if strings.Contains(got, tok) {
			t.Errorf("reply %q contains a token", got)
		}
	}
}

// TestAuthRESP: NOAUTH before AUTH (PING too, as redis-server), WRONGPASS,
// NOPERM for a role too weak, and the commands of the role after AUTH.
func TestAuthRESP(t *testing.T) {
	addr := startAuth(t, parsedStore(t))
	c := dialRaw(t, addr)
	for _, cmd := range [][]string{{"GET", "k"}, {"PING"}, {"SET", "k", "v"}, {"DM.GET", "d", "k"}, {"CLUSTER.MEMBERS"}, {"NOSUCH", "x"}, {"CLIENT", "SETNAME", "x"}} {
		wantReply(t, c.do(cmd...), "-NOAUTH Authentication required.")
	}
	wantReply(t, c.do("AUTH", wrongToken), "-WRONGPASS invalid username-password pair or user is disabled.")
	wantReply(t, c.do("AUTH", "default", wrongToken), "-WRONGPASS")
	wantReply(t, c.do("AUTH"), "-ERR wrong number of arguments for 'auth' command")
	wantReply(t, c.do("AUTH", "a", "b", "c"), "-ERR wrong number of arguments for 'auth' command")
	wantReply(t, c.do("HELLO", "2", "AUTH", "default", wrongToken), "-WRONGPASS")
	wantReply(t, c.do("HELLO"), "-NOPROTO") // allowed before AUTH
	wantReply(t, c.do("GET", "k"), "-NOAUTH")

	// read: reads, no writes.
	wantReply(t, c.do("AUTH", readToken), "+OK")
	wantReply(t, c.do("PING"), "+PONG")
	wantReply(t, c.do("GET", "k"), "(nil)")
	wantReply(t, c.do("CLUSTER.MEMBERS"), "*1")
	wantReply(t, c.do("SET", "k", "v"), "-NOPERM this user has no permissions to run the 'set' command (this token's role is read; 'set' needs write)")
	wantReply(t, c.do("DM.PUT", "d", "k", "v"), "-NOPERM this user has no permissions to run the 'dm.put' command")
	wantReply(t, c.do("DM.LOCK", "d", "k", "1"), "-NOPERM")
	wantReply(t, c.do("NOSUCH", "x"), "-ERR unknown command 'NOSUCH'")
	// A wrong AUTH leaves the connection as it was.
	wantReply(t, c.do("AUTH", wrongToken), "-WRONGPASS")
	wantReply(t, c.do("GET", "k"), "(nil)")

	// write (Redis 6's AUTH username password; the username is ignored).
	wantReply(t, c.do("AUTH", "anyone", writeToken), "+OK")
	wantReply(t, c.do("SET", "k", "v"), "+OK")
	wantReply(t, c.do("GET", "k"), "v")
	wantReply(t, c.do("DM.PUT", "d", "k", "v"), "+OK")
	wantReply(t, c.do("DM.DESTROY", "d"), "-NOPERM this user has no permissions to run the 'dm.destroy' command (this token's role is write; 'dm.destroy' needs admin)")
	wantReply(t, c.do("DM.GET", "d", "k"), "v")

	// admin; HELLO with AUTH logs in too.
	c2 := dialRaw(t, addr)
	wantReply(t, c2.do("HELLO", "2", "AUTH", "default", adminToken), "-NOPROTO")
	wantReply(t, c2.do("DM.DESTROY", "d"), "+OK")
	wantReply(t, c.do("DM.GET", "d", "k"), "-KEYNOTFOUND")
	wantReply(t, c2.do("QUIT"), "+OK")

	// QUIT works before AUTH.
	c3 := dialRaw(t, addr)
	wantReply(t, c3.do("QUIT"), "+OK")
}

// TestAuthGoRedis: go-redis's Password (and Username) options work; a
// client without one gets NOAUTH, a wrong one fails to connect.
func TestAuthGoRedis(t *testing.T) {
	addr := startAuth(t, parsedStore(t))
	ctx := context.Background()
	client := func(user, pass string) *redis.Client {
		rc := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: pass, MaxRetries: -1})
		t.Cleanup(func() { rc.Close() })
		return rc
	}
	// Default options otherwise (RESP3 asked, identity sent): the client
	// falls back to AUTH and RESP2.
	w := client("", writeToken)
	if err := w.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET with a write token: %v", err)
	}
	r := client("", readToken)
	if got, err := r.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET with a read token: %q %v", got, err)
	}
	wantErr(t, r.Set(ctx, "k", "w", 0).Err(), "NOPERM this user has no permissions to run the 'set' command")
	a := client("admin", adminToken)
	if err := a.Do(ctx, "DM.DESTROY", "default").Err(); err != nil {
		t.Fatalf("DM.DESTROY with an admin token: %v", err)
	}
	wantErr(t, client("", "").Get(ctx, "k").Err(), "NOAUTH Authentication required.")
	err := client("", wrongToken).Get(ctx, "k").Err()
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), wrongToken) {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestAuthRevokedOnReload: a connection logged in with a token that a
// reload removed is asked to authenticate again.
func TestAuthRevokedOnReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, startAuth(t, store))
	wantReply(t, c.do("AUTH", writeToken), "+OK")
	wantReply(t, c.do("SET", "k", "v"), "+OK")
	// The write token becomes a read token, then goes.
	if err := os.WriteFile(p, []byte("read "+writeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c.do("SET", "k", "v"), "-NOPERM")
	wantReply(t, c.do("GET", "k"), "v")
	if err := os.WriteFile(p, []byte("admin "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c.do("GET", "k"), "-NOAUTH")
	wantReply(t, c.do("AUTH", writeToken), "-WRONGPASS")
}

// TestAuthEveryCommandByRole runs every command of the table with every
// role through gate: refused exactly when the role is too weak.
func TestAuthEveryCommandByRole(t *testing.T) {
	s := New(httpapitest.NewCluster(1, 3, 1), Options{Logger: quiet(), Auth: parsedStore(t)})
	defer s.Close()
	for name, need := range commandRoles {
		for _, tc := range []struct {
			token string
			role  auth.Role
		}{{"", auth.RoleNone}, {readToken, auth.RoleRead}, {writeToken, auth.RoleWrite}, {adminToken, auth.RoleAdmin}} {
			c := &fakeConn{}
			if tc.token != "" {
				if !s.login(c, []byte(tc.token)) {
					t.Fatal("login failed")
				}
			}
			answered := s.gate(c, [][]byte{[]byte(strings.ToUpper(name)), []byte("x")})
			if name == "auth" {
				continue // answered by gate itself
			}
			refused := answered && (strings.HasPrefix(c.err, "NOAUTH") || strings.HasPrefix(c.err, "NOPERM"))
			if want := !tc.role.Allows(need); refused != want {
				t.Errorf("%s as %s: refused %v (%q), want %v", name, tc.role, refused, c.err, want)
			}
		}
	}
}

// TestCommandRolesCoverDispatcher fails when a command is added to exec's
// switch without a role in commandRoles (or a role names no command): no
// command is ever silently open.
func TestCommandRolesCoverDispatcher(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "commands.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if ok && fd.Name.Name != "exec" {
			return false
		}
		sw, ok := n.(*ast.SwitchStmt)
		if !ok {
			return true
		}
		if id, ok := sw.Tag.(*ast.Ident); !ok || id.Name != "name" {
			return true
		}
		for _, st := range sw.Body.List {
			for _, e := range st.(*ast.CaseClause).List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					names = append(names, s)
				}
			}
		}
		return false
	})
	if len(names) < 30 {
		t.Fatalf("found %d commands in exec's switch on name: did the dispatcher move? Update this test to find them", len(names))
	}
	for _, n := range names {
		if _, ok := commandRoles[n]; !ok {
			t.Errorf("command %q is dispatched by exec but has no role in commandRoles (auth.go)", n)
		}
	}
	for n := range commandRoles {
		if !slices.Contains(names, n) {
			t.Errorf("commandRoles names %q, which exec does not dispatch", n)
		}
	}
}

// fakeConn records gate's answer (gate writes only errors and +OK; the
// other methods of replier are nil and would panic).
type fakeConn struct {
	replier
	ctx any
	err string
	out []string
}

func (c *fakeConn) WriteString(s string) { c.out = append(c.out, s) }
func (c *fakeConn) WriteError(s string)  { c.err = s }
func (c *fakeConn) Context() any         { return c.ctx }
func (c *fakeConn) SetContext(v any)     { c.ctx = v }
