package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// TestAuthTokensProcess runs a real `olric-raft server --dev
// --auth-tokens FILE` and uses it as an operator and an application
// would: the CLI with --token (or OLRIC_RAFT_TOKEN) reads and writes, and
// without a token exits 1 saying what to do; redis-cli -a TOKEN works,
// without it gets NOAUTH; no token ever shows in the server's log.
func TestAuthTokensProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real process")
	}
	const (
		readTok  = "it-read-token-0123456789"
		writeTok = "it-write-token-0123456789"
		adminTok = "it-admin-token-0123456789"
	)
	file := filepath.Join(t.TempDir(), "tokens")
	content := "# integration test\nread " + readTok + "\nwrite " + writeTok + "\nadmin " + adminTok + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "auth", "--dev", "--auth-tokens", file)

	// olric runs the CLI against s with the token in OLRIC_RAFT_TOKEN
	// ("": none); it returns the output and the exit code.
	olric := func(token string, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, olricRaftBinary(t), append(args, "--address", "http://"+s.http)...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "OLRIC_RAFT_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if token != "" {
			cmd.Env = append(cmd.Env, "OLRIC_RAFT_TOKEN="+token)
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("olric-raft %v: %v", args, err)
		return "", -1
	}

	// Ready once a write with the write token succeeds.
	err := testcluster.Poll(60*time.Second, func() error {
		select {
		case <-s.done:
			return fmt.Errorf("server exited early:\n%s", s.log.String())
		default:
		}
		if out, code := olric(writeTok, "kv", "put", "default", "greeting", `"hello"`); code != 0 {
			return fmt.Errorf("not ready: %d %s", code, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The CLI: --token and OLRIC_RAFT_TOKEN.
	if out, code := olric("", "kv", "get", "default", "greeting", "--token", readTok); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("kv get --token read: %d %s", code, out)
	}
	if out, code := olric(readTok, "members"); code != 0 || !strings.Contains(out, "auth") {
		t.Errorf("members with a read token: %d %s", code, out)
	}
	out, code := olric("", "members")
	if code != 1 || !strings.Contains(out, "error: unauthorized") || !strings.Contains(out, "set --token or OLRIC_RAFT_TOKEN") {
		t.Errorf("members without a token: exit %d, want 1 and a hint:\n%s", code, out)
	}
	out, code = olric(readTok, "kv", "put", "default", "greeting", `"bye"`)
	if code != 1 || !strings.Contains(out, "this token's role is read") || !strings.Contains(out, "needs write") {
		t.Errorf("kv put with a read token: exit %d, want 1 and the roles:\n%s", code, out)
	}
	out, code = olric(writeTok, "kv", "destroy", "default")
	if code != 1 || !strings.Contains(out, "needs admin") {
		t.Errorf("kv destroy with a write token: exit %d:\n%s", code, out)
	}

	// redis-cli.
	if redisCLI, err := exec.LookPath("redis-cli"); err != nil {
		t.Log("redis-cli is not on PATH; skipping its part")
	} else {
		host, port, err := net.SplitHostPort(s.resp)
		if err != nil {
			t.Fatal(err)
		}
		rcli := func(args ...string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, redisCLI, append([]string{"-h", host, "-p", port, "--no-auth-warning", "--no-raw"}, args...)...)
			out, _ := cmd.CombinedOutput() // an error reply may exit non-zero: the output tells
			return strings.TrimSpace(string(out))
		}
		if got := rcli("GET", "greeting"); !strings.Contains(got, "NOAUTH Authentication required.") {
			t.Errorf("redis-cli without -a: %q", got)
		}
		if got := rcli("-a", "wrong-token-0123456789", "GET", "greeting"); !strings.Contains(got, "WRONGPASS") {
			t.Errorf("redis-cli -a wrong: %q", got)
		}
		if got := rcli("-a", readTok, "GET", "greeting"); got != `"\"hello\""` {
			t.Errorf("redis-cli -a read GET: %q", got)
		}
		if got := rcli("-a", readTok, "SET", "k", "v"); !strings.Contains(got, "NOPERM") || !strings.Contains(got, "needs write") {
			t.Errorf("redis-cli -a read SET: %q", got)
		}
		if got := rcli("--user", "app", "--pass", writeTok, "SET", "k", "v"); got != "OK" {
			t.Errorf("redis-cli --user --pass write SET: %q", got)
		}
		if got := rcli("-a", writeTok, "DM.DESTROY", "default"); !strings.Contains(got, "NOPERM") {
			t.Errorf("redis-cli -a write DM.DESTROY: %q", got)
		}
		if got := rcli("-a", adminTok, "DM.DESTROY", "other"); got != "OK" {
			t.Errorf("redis-cli -a admin DM.DESTROY: %q", got)
		}
	}

	// Stop the server before reading its log: the log buffer is written
	// by os/exec's copier until the process ends.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("server still running 30s after SIGTERM")
	}
	logs := s.log.String()
	if !strings.Contains(logs, "request refused") {
		t.Errorf("no refusal logged:\n%s", logs)
	}
	for _, tok := range []string{readTok, writeTok, adminTok} {
		if strings.Contains(logs, tok) {
			t.Errorf("the server's log contains a token:\n%s", logs)
		}
	}
}
