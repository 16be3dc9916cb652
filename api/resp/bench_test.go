package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
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
