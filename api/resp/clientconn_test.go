package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
)

// encodeCommand encodes args as a RESP multi-bulk request.
func encodeCommand(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// dialStream opens a plain connection to s with a deadline.
func dialStream(t testing.TB, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// TestConnStreamSplitAnywhere: the server frames commands the same
// whatever way the client's bytes are split into writes (a value cut in
// the middle of its length, of its CRLF, a pipeline bigger than the read
// buffer, values holding CRLF and binary bytes): the replies are exactly
// those of a map model, in order.
func TestConnStreamSplitAnywhere(t *testing.T) {
	s, _ := start(t, httpapitest.NewCluster(1, 3, 1))
	rapid.Check(t, func(rt *rapid.T) {
		c := dialStream(t, s)
		defer c.Close()
		model := map[string]string{}
		var in, want strings.Builder
		// A fresh key space per check: the server keeps what earlier
		// checks stored.
		prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
		for range rapid.IntRange(1, 60).Draw(rt, "commands") {
			key := prefix + rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "key")
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				n := rapid.SampledFrom([]int{0, 1, 100, 20 << 10, 300 << 10}).Draw(rt, "size")
				v := strings.Repeat(rapid.SampledFrom([]string{"x", "\r\n", "\x00\xff"}).Draw(rt, "fill"), n)
				v = v[:n]
				in.WriteString(encodeCommand("SET", key, v))
				want.WriteString("+OK\r\n")
				model[key] = v
			case 2:
				in.WriteString(encodeCommand("GET", key))
				if v, ok := model[key]; ok {
					fmt.Fprintf(&want, "$%d\r\n%s\r\n", len(v), v)
				} else {
					want.WriteString("$-1\r\n")
				}
			case 3:
				in.WriteString("PING\r\n") // inline
				want.WriteString("+PONG\r\n")
			}
		}
		// Write in random pieces while reading the replies.
		var pieces []string
		for data := in.String(); len(data) > 0; {
			n := min(len(data), rapid.IntRange(1, 70000).Draw(rt, "piece"))
			pieces, data = append(pieces, data[:n]), data[n:]
		}
		go func() {
			for _, p := range pieces {
				if _, err := c.Write([]byte(p)); err != nil {
					return
				}
			}
		}()
		got := make([]byte, want.Len())
		if _, err := io.ReadFull(c, got); err != nil {
			rt.Fatalf("reading %d bytes of replies: %v", want.Len(), err)
		}
		if string(got) != want.String() {
			rt.Fatalf("replies differ from the model at byte %d", firstDiff(string(got), want.String()))
		}
	})
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestConnQuitAndBadRequests: QUIT answers +OK and ends the connection
// without running what was pipelined after it; a request line starting
// with '$' (not RESP2) gets a protocol error and the connection ends; a
// pipeline's empty inline lines are skipped.
func TestConnQuitAndBadRequests(t *testing.T) {
	s, _ := start(t, httpapitest.NewCluster(1, 3, 1))
	for _, tc := range []struct{ in, want string }{
		{"PING\r\n\r\n\r\nQUIT\r\nSET k v\r\nPING\r\n", "+PONG\r\n+OK\r\n"},
		{encodeCommand("PING") + "$5 hello\r\n" + encodeCommand("PING"), "+PONG\r\n-ERR Protocol error: expected '*', got '$'\r\n"},
		{"SET \"a b\" 'c'\r\nGET \"a b\"\r\nQUIT\r\n", "+OK\r\n$1\r\nc\r\n+OK\r\n"},
		{"GET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	} {
		c := dialStream(t, s)
		if _, err := c.Write([]byte(tc.in)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(bufio.NewReader(c)) // until the server closes
		c.Close()
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestConnCloseEndsIdleConnections: Server.Close ends connections that
// are waiting for a request, whether they wait through the runtime's
// poller or the ready queue; and a connection the client closes ends on
// the server.
func TestConnCloseEndsIdleConnections(t *testing.T) {
	for _, queue := range []bool{false, true} {
		t.Run(fmt.Sprintf("ready queue %v", queue), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := New(httpapitest.NewCluster(1, 3, 1), Options{Logger: quiet()})
			s.useReadyQueue = queue
			done := make(chan error, 1)
			go func() { done <- s.Serve(ln) }()
			ping := func(c net.Conn) {
				t.Helper()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("PING\r\n")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 7)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
					t.Fatalf("%q %v", buf, err)
				}
			}
			var conns []net.Conn
			for range 4 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ping(c)
				conns = append(conns, c)
			}
			// The client leaves: the server ends the connection.
			conns[0].Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				s.mu.Lock()
				n := len(s.clients)
				s.mu.Unlock()
				if n == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d connections served after one of 4 closed", n)
				}
				time.Sleep(time.Millisecond)
			}
			ping(conns[1]) // the others still work
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != ErrServerClosed {
				t.Fatalf("Serve returned %v", err)
			}
			buf := make([]byte, 7)
			for _, c := range conns[1:] {
				if n, err := c.Read(buf); err == nil {
					t.Fatalf("read %q after Close", buf[:n])
				}
			}
		})
	}
}
