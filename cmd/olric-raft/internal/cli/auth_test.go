package cli

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/client"
	"github.com/olric-raft/olric-raft/node"
)

const (
	readTok  = "read-token-aaaaaaaaaaaa"
	writeTok = "write-token-bbbbbbbbbbbb"
	adminTok = "admin-token-cccccccccccc"
	wrongTok = "not-a-token-dddddddddddd"
)

var allToks = []string{readTok, writeTok, adminTok, wrongTok}

func tokensFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var goodTokens = "# roles\nread " + readTok + "\nwrite " + writeTok + "\nadmin " + adminTok + "\n"

func noTokens(t *testing.T, what, s string) {
	t.Helper()
	for _, tok := range allToks {
		if strings.Contains(s, tok) {
			t.Errorf("%s contains a token:\n%s", what, s)
		}
	}
}

// TestAuthTokensSetting: --auth-tokens, OLRIC_RAFT_AUTH_TOKENS and the
// file's auth_tokens, in that order; none means no authentication.
func TestAuthTokensSetting(t *testing.T) {
	fromFlag := tokensFile(t, "admin "+adminTok+"\n")
	fromEnv := tokensFile(t, "write "+writeTok+"\n")
	fromFile := tokensFile(t, "read "+readTok+"\n")
	cfgFile := writeFile(t, "data_dir: /d\nauth_tokens: "+fromFile+"\n")
	env := map[string]string{"OLRIC_RAFT_AUTH_TOKENS": fromEnv}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		path string
		tok  string
	}{
		{"flag", env, []string{"--config", cfgFile, "--auth-tokens", fromFlag}, fromFlag, adminTok},
		{"env", env, []string{"--config", cfgFile}, fromEnv, writeTok},
		{"file", nil, []string{"--config", cfgFile}, fromFile, readTok},
	} {
		sc := mustBuild(t, tc.env, tc.args...)
		if sc.AuthTokens != tc.path || sc.Auth == nil || sc.Auth.Lookup(tc.tok) == auth.RoleNone {
			t.Errorf("%s: AuthTokens %q (Auth %v), want %q", tc.name, sc.AuthTokens, sc.Auth, tc.path)
		}
	}
	for _, args := range [][]string{{"--data-dir", "/d"}, {"--dev"}} {
		if sc := mustBuild(t, nil, args...); sc.Auth != nil || sc.AuthTokens != "" {
			t.Errorf("%v: authentication on without --auth-tokens", args)
		}
	}
	if sc := mustBuild(t, nil, "--dev", "--auth-tokens", fromFlag); sc.Auth == nil {
		t.Errorf("--dev --auth-tokens: no authentication")
	}
}

// TestAuthTokensBadFile: a bad token file is a usage error (exit 2) that
// names the file and every bad line, never a token.
func TestAuthTokensBadFile(t *testing.T) {
	bad := tokensFile(t, "# bad\nread short\nreader "+readTok+"\n"+wrongTok+" admin\nwrite\nadmin "+adminTok+"\nwrite "+adminTok+"\n")
	_, err := build(t, nil, "--data-dir", "/d", "--auth-tokens", bad)
	wantUsageError(t, err, bad+":2: token shorter than 16 bytes", bad+":3: unknown role", bad+":4: unknown role",
		bad+":5: ", bad+":7: duplicate token (the same as on line 6)")
	noTokens(t, "the error", err.Error())

	r := run(t, Deps{NewNode: func(node.Config) (Node, error) { panic("started") }}, nil,
		"server", "--data-dir", "/d", "--auth-tokens", bad)
	r.want(t, ExitUsage, nil, []string{"invalid server configuration", "auth_tokens: auth: " + bad + ":2:"})
	noTokens(t, "stderr", r.stderr)

	_, err = build(t, nil, "--data-dir", "/d", "--auth-tokens", filepath.Join(t.TempDir(), "missing"))
	wantUsageError(t, err, "auth_tokens", "missing")
	_, err = build(t, nil, "--data-dir", "/d", "--auth-tokens", tokensFile(t, "# nothing\n"))
	wantUsageError(t, err, "no tokens")
}

// TestServerRefusesToken: --token on the server is a mistake.
func TestServerRefusesToken(t *testing.T) {
	r := run(t, Deps{NewNode: func(node.Config) (Node, error) { panic("started") }}, nil,
		"server", "--dev", "--token", readTok)
	r.want(t, ExitUsage, nil, []string{"--token is for the client commands", "--auth-tokens FILE"})
}

// TestServerAuth runs the server with --auth-tokens: HTTP and RESP ask
// for tokens, refusals are logged without them, and SIGHUP reloads the
// file.
func TestServerAuth(t *testing.T) {
	noLeaks(t)
	file := tokensFile(t, goodTokens)
	s := startServer(t, httpapitest.NewCluster(1, 3, 1), nil,
		"--dev", "--http-addr", "127.0.0.1:0", "--log-format", "json", "--auth-tokens", file)
	ready := s.waitLog("olric-raft ready")
	on := s.waitLog("authentication on")
	if on["read_tokens"] != 1.0 || on["admin_tokens"] != 1.0 || on["auth_tokens"] != file {
		t.Errorf("authentication log: %v", on)
	}
	httpAddr := ready["http_addr"].(string)
	ctx := context.Background()
	newClient := func(tok string) *client.Client {
		c, err := client.New(httpAddr, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := newClient("").Status(ctx); !client.IsCode(err, client.CodeUnauthorized) {
		t.Errorf("no token: %v", err)
	}
	if _, err := newClient(wrongTok).Status(ctx); !client.IsCode(err, client.CodeUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	if err := newClient(readTok).Remove(ctx, "node-1"); !client.IsCode(err, client.CodeForbidden) {
		t.Errorf("read token on remove: %v", err)
	}
	if _, err := newClient(readTok).Status(ctx); err != nil {
		t.Errorf("read token on status: %v", err)
	}
	if ok, err := newClient("").Ready(ctx); !ok || err != nil {
		t.Errorf("readyz without a token: %v %v", ok, err)
	}

	// RESP.
	conn, err := net.Dial("tcp", ready["resp_addr"].(string))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	respDo := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(line)
	}
	if got := respDo("GET", "k"); got != "-NOAUTH Authentication required." {
		t.Errorf("RESP before AUTH: %q", got)
	}
	if got := respDo("AUTH", wrongTok); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Errorf("RESP wrong AUTH: %q", got)
	}
	if got := respDo("AUTH", writeTok); got != "+OK" {
		t.Errorf("RESP AUTH: %q", got)
	}
	if got := respDo("SET", "k", "v"); got != "+OK" {
		t.Errorf("RESP SET as write: %q", got)
	}

	// SIGHUP: the read token goes.
	if err := os.WriteFile(file, []byte("admin "+adminTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signals <- syscall.SIGHUP
	if got := s.waitLog("reloaded"); got["what"] != "auth-tokens" {
		t.Errorf("reload log: %v", got)
	}
	if _, err := newClient(readTok).Status(ctx); !client.IsCode(err, client.CodeUnauthorized) {
		t.Errorf("a removed token after SIGHUP: %v", err)
	}
	if got := respDo("GET", "k"); got != "-NOAUTH Authentication required." {
		t.Errorf("RESP with a removed token: %q", got)
	}

	logs := s.stderr.String()
	if strings.Count(logs, "request refused") < 3 {
		t.Errorf("refusals not logged:\n%s", logs)
	}
	noTokens(t, "the server's log", logs)

	s.signals <- syscall.SIGTERM
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// authAPIServer serves httpapi over fake with the good tokens.
func authAPIServer(t *testing.T, fake *httpapitest.Cluster) string {
	t.Helper()
	store, err := auth.Parse("tokens", []byte(goodTokens))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Auth: store}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestClientCommandsToken: every client command sends --token (or
// OLRIC_RAFT_TOKEN); 401 and 403 exit 1 with a hint of what to do.
func TestClientCommandsToken(t *testing.T) {
	fake := httpapitest.NewCluster(3, 3, 1)
	addr := authAPIServer(t, fake)
	d := Deps{}
	env := func(tok string) map[string]string {
		return map[string]string{"OLRIC_RAFT_ADDRESS": addr, "OLRIC_RAFT_TOKEN": tok}
	}

	// No token.
	for _, args := range [][]string{
		{"members"}, {"status"}, {"routing"}, {"kv", "get", "d", "k"}, {"kv", "put", "d", "k", "1"},
		{"join", "127.0.0.1:1"}, {"remove", "node-3"}, {"leave"}, {"partition", "force-assign", "--all-unavailable", "--yes"},
	} {
		r := run(t, d, map[string]string{"OLRIC_RAFT_ADDRESS": addr}, args...)
		r.want(t, ExitError, nil, []string{"error: unauthorized:", "hint: the member requires a token", "set --token or OLRIC_RAFT_TOKEN"})
	}
	r := run(t, d, map[string]string{"OLRIC_RAFT_ADDRESS": addr}, "bench", "--requests", "4", "--concurrency", "1", "-o", "json")
	r.want(t, ExitError, nil, []string{"most of them unauthorized", "set --token or OLRIC_RAFT_TOKEN"})

	// A wrong token.
	r = run(t, d, env(wrongTok), "members")
	r.want(t, ExitError, nil, []string{"error: unauthorized:", "mistyped, or rotated out"})
	noTokens(t, "stderr", r.stderr)

	// read: reads; a write or an admin action is forbidden, with the role.
	run(t, d, env(readTok), "members").want(t, ExitOK, []string{"node-1"}, nil)
	run(t, d, nil, "status", "--address", addr, "--token", readTok).want(t, ExitOK, nil, nil)
	r = run(t, d, env(readTok), "kv", "put", "d", "k", "1")
	r.want(t, ExitError, nil, []string{"error: forbidden: this token's role is read", "needs write", "hint: this token's role is too weak"})
	r = run(t, d, env(readTok), "remove", "node-3")
	r.want(t, ExitError, nil, []string{"this token's role is read", "needs admin"})
	noTokens(t, "stderr", r.stderr)

	// write: writes; remove is forbidden; the flag wins over the env.
	run(t, d, env(readTok), "kv", "put", "d", "k", "1", "--token", writeTok).want(t, ExitOK, nil, nil)
	run(t, d, env(readTok), "kv", "get", "d", "k").want(t, ExitOK, []string{"1"}, nil)
	run(t, d, env(writeTok), "remove", "node-3").want(t, ExitError, nil, []string{"this token's role is write", "needs admin"})
	run(t, d, env(writeTok), "bench", "--requests", "4", "--concurrency", "1", "-o", "json").want(t, ExitOK, nil, nil)

	// admin.
	run(t, d, env(adminTok), "remove", "node-3").want(t, ExitOK, nil, nil)
	if got := fake.Calls().Removed; len(got) != 1 {
		t.Errorf("removed: %v", got)
	}
}
