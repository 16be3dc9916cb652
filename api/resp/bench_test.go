package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/olric-raft/olric-raft/metrics"
)

// BenchmarkPipelined drives a real single-member node's RESP server with
// one connection sending batches of 16 pipelined commands (like
// redis-benchmark -P 16), over loopback; allocs/op include the server's
// whole path (the client allocates nothing per command).
//
//	go test -run '^$' -bench Pipelined -benchmem ./api/resp
func BenchmarkPipelined(b *testing.B) {
	n := startRealNode(b, "bench")
	// As the server runs it: with command metrics.
	opts := Options{Logger: quiet(), Metrics: metrics.NewRegistry().RESP(CommandNames())}
	if os.Getenv("OLRIC_RAFT_BENCH_NO_METRICS") != "" {
		opts.Metrics = nil
	}
	s := New(n, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReaderSize(conn, 64<<10)
	const depth, keys = 16, 10000
	value := make([]byte, 100)
	for i := range value {
		value[i] = 'x'
	}
	batch := func(cmd string, start int) []byte {
		var out []byte
		for i := range depth {
			key := fmt.Sprintf("key:%012d", (start+i*7919)%keys)
			if cmd == "SET" {
				out = fmt.Appendf(out, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
			} else {
				out = fmt.Appendf(out, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
			}
		}
		return out
	}
	// Replies: SET answers +OK (5 bytes); GET a 100-byte bulk (107).
	run := func(b *testing.B, cmd string, replyLen int) {
		batches := make([][]byte, 64)
		for i := range batches {
			batches[i] = batch(cmd, i*depth)
		}
		buf := make([]byte, depth*replyLen)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += depth {
			if _, err := conn.Write(batches[(i/depth)%len(batches)]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(rd, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Every key exists before any GET (so each reply has its length).
	for start := 0; start < keys; start += depth {
		if _, err := conn.Write(batch("SET", start)); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rd, make([]byte, depth*len("+OK\r\n"))); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("set", func(b *testing.B) { run(b, "SET", len("+OK\r\n")) })
	b.Run("get", func(b *testing.B) { run(b, "GET", len("$100\r\n")+100+2) })
}

// memConn is a net.Conn whose reads return prepared batches of commands,
// one batch per Read, n in all, and whose writes are counted and dropped:
// serving it measures the server's own work per command, without the
// kernel's.
type memConn struct {
	net.Conn // nil: only Read, Write and Close are called
	batches  [][]byte
	left     int
	next     int
	written  int64
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	c.left--
	b := c.batches[c.next%len(c.batches)]
	c.next++
	return copy(p, b), nil
}

func (c *memConn) Write(p []byte) (int, error) { c.written += int64(len(p)); return len(p), nil }
func (c *memConn) Close() error                { return nil }

// BenchmarkServeConn runs a real single-member node's RESP command path
// (parse, dispatch, data plane, reply) on batches of 16 pipelined SET or
// GET commands of 100-byte values over 100k keys (redis-benchmark -P 16
// -r 100000 -d 100), read from memory: ns/op is the server's CPU per
// command without the kernel's read and write.
//
//	go test -run '^$' -bench ServeConn -benchmem ./api/resp
func BenchmarkServeConn(b *testing.B) {
	n := startRealNode(b, "bench")
	opts := Options{Logger: quiet(), Metrics: metrics.NewRegistry().RESP(CommandNames())}
	s := New(n, opts)
	defer s.Close()
	stopClock := make(chan struct{}) // as Serve runs it
	defer close(stopClock)
	go s.runClock(stopClock)
	for s.clock.Load() == 0 {
		runtime.Gosched()
	}
	depth, keys := 16, 100000
	if v, err := strconv.Atoi(os.Getenv("OLRIC_RAFT_BENCH_DEPTH")); err == nil && v > 0 {
		depth = v
	}
	if v, err := strconv.Atoi(os.Getenv("OLRIC_RAFT_BENCH_KEYS")); err == nil && v > 0 {
		keys = v
	}
	value := strings.Repeat("x", 100)
	batch := func(cmd string, start int) []byte {
		var out []byte
		for i := range depth {
			key := fmt.Sprintf("key:%012d", (start+i)*7919%keys)
			if cmd == "SET" {
				out = fmt.Appendf(out, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
			} else {
				out = fmt.Appendf(out, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
			}
		}
		return out
	}
	serve := func(cmd string, batches int) *memConn {
		all := make([][]byte, keys/depth)
		for i := range all {
			all[i] = batch(cmd, i*depth)
		}
		mc := &memConn{batches: all, left: batches}
		s.serveConn(newClientConn(mc))
		return mc
	}
	serve("SET", keys/depth) // every key exists before any GET
	for _, cmd := range []string{"SET", "GET"} {
		b.Run(strings.ToLower(cmd), func(b *testing.B) {
			b.ReportAllocs()
			mc := serve(cmd, (b.N+depth-1)/depth)
			if mc.written == 0 {
				b.Fatal("no replies")
			}
		})
	}
}
