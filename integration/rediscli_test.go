package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// TestRedisCLIAgainstRealServer drives a real `olric-raft server --dev`
// process with the stock redis-cli, as a user would: plain Redis commands,
// Olric's DM.* commands, a 1000-command pipe through `redis-cli --pipe`,
// commands fed on stdin, and a value written with redis-cli read back over
// the HTTP API. It needs redis-cli on PATH (Debian: redis-tools; .ci/run
// installs it) and skips without it.
func TestRedisCLIAgainstRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real process")
	}
	redisCLI, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not on PATH (install redis-tools, e.g. apt-get install -y redis-tools); skipping the redis-cli test")
	}
	s := startServer(t, "rediscli", "--dev")
	host, port, err := net.SplitHostPort(s.resp)
	if err != nil {
		t.Fatal(err)
	}

	// run runs redis-cli with formatted output (--no-raw: "(integer) 1",
	// "(nil)", quoted strings, "(error) ..."), as an interactive user sees it.
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, redisCLI, append([]string{"-h", host, "-p", port}, args...)...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimRight(string(out), "\n")
	}
	check := func(want string, args ...string) {
		t.Helper()
		if got := run("", append([]string{"--no-raw"}, args...)...); got != want {
			t.Errorf("redis-cli %s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
		}
	}

	// Ready once PING answers and a write succeeds (partitions assigned).
	err = testcluster.Poll(60*time.Second, func() error {
		select {
		case <-s.done:
			return fmt.Errorf("server exited early:\n%s", s.log.String())
		default:
		}
		out, err := exec.Command(redisCLI, "-h", host, "-p", port, "SET", "ready", "1").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "OK" {
			return fmt.Errorf("not ready: %v %q", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	check("PONG", "PING")
	check("OK", "SET", "greeting", "hello world")
	check(`"hello world"`, "GET", "greeting")
	check("(nil)", "GET", "missing")
	check("(integer) 1", "INCR", "counter")
	check("(integer) 2", "INCR", "counter")
	check("(error) ERR value is not an integer or out of range", "INCR", "greeting")
	check("(integer) -1", "TTL", "greeting")
	check("(integer) 1", "EXPIRE", "greeting", "100")
	if got := run("", "--no-raw", "TTL", "greeting"); got != "(integer) 100" && got != "(integer) 99" {
		t.Errorf("TTL greeting after EXPIRE 100: %q", got)
	}
	check("(integer) 0", "EXPIRE", "missing", "100")
	check("(integer) -2", "TTL", "missing")
	check("1) \"hello world\"\n2) (nil)\n3) \"2\"", "MGET", "greeting", "missing", "counter")
	check("(integer) 2", "DEL", "greeting", "counter", "missing")
	check("(nil)", "GET", "greeting")
	check("(integer) 0", "DEL", "greeting")

	// Olric's DM.* commands on a DMap of its own.
	check("OK", "DM.PUT", "users", "bob", "42")
	check(`"42"`, "DM.GET", "users", "bob")
	check("(error) KEYNOTFOUND key not found", "DM.GET", "users", "alice")
	check("(integer) 1", "DM.DEL", "users", "bob")
	check("(integer) 0", "DM.DEL", "users", "bob")
	check("(error) KEYNOTFOUND key not found", "DM.GET", "users", "bob")
	check("(nil)", "GET", "bob") // DMap "users" is not "default"

	// 1000 commands in RESP through `redis-cli --pipe`: 500 SETs, then
	// 500 INCRs of one counter.
	var pipe strings.Builder
	resp := func(args ...string) {
		fmt.Fprintf(&pipe, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&pipe, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	for i := range 500 {
		resp("SET", fmt.Sprintf("pipe:%03d", i), fmt.Sprintf("value-%d", i))
	}
	for range 500 {
		resp("INCR", "pipe:counter")
	}
	out := run(pipe.String(), "--pipe")
	if !strings.Contains(out, "errors: 0, replies: 1000") {
		t.Errorf("redis-cli --pipe: want 1000 replies and no errors, got:\n%s", out)
	}
	check(`"500"`, "GET", "pipe:counter")
	check("1) \"value-0\"\n2) \"value-250\"\n3) \"value-499\"", "MGET", "pipe:000", "pipe:250", "pipe:499")

	// Commands fed on stdin, one a line, replies in order (raw output).
	var lines strings.Builder
	var want []string
	for i := range 100 {
		fmt.Fprintf(&lines, "SET stdin:%d v%d\nGET stdin:%d\n", i, i, i)
		want = append(want, "OK", "v"+strconv.Itoa(i))
	}
	if got := run(lines.String()); got != strings.Join(want, "\n") {
		t.Errorf("commands on stdin: got %d lines, want %d; first: %.200q", strings.Count(got, "\n")+1, len(want), got)
	}

	// A value written with redis-cli, read over the HTTP API.
	check("OK", "SET", "from-cli", `{"name":"bob","n":7}`)
	check("OK", "SET", "from-cli-text", "plain text")
	var doc struct {
		Key         string         `json:"key"`
		Value       map[string]any `json:"value"`
		ValueBase64 *string        `json:"value_base64"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := getJSON(ctx, "http://"+s.http+"/v1/dmaps/default/keys/from-cli", &doc)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/dmaps/default/keys/from-cli: %d %v", code, err)
	}
	if doc.Key != "from-cli" || doc.Value["name"] != "bob" || doc.Value["n"] != float64(7) || doc.ValueBase64 != nil {
		t.Errorf("HTTP view of a JSON value written with redis-cli: %+v", doc)
	}
	var text struct {
		ValueBase64 string `json:"value_base64"`
	}
	code, err = getJSON(ctx, "http://"+s.http+"/v1/dmaps/default/keys/from-cli-text", &text)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/dmaps/default/keys/from-cli-text: %d %v", code, err)
	}
	// "plain text" is not JSON, so the API hands it back in base64.
	if text.ValueBase64 != "cGxhaW4gdGV4dA==" {
		t.Errorf("HTTP view of %q written with redis-cli: value_base64 %q", "plain text", text.ValueBase64)
	}
}
