package transport

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

// BenchmarkRPCCall measures one Call round trip over loopback with a
// 128-byte payload echoed back, one caller at a time and many in parallel
// (pipelined over the pooled connections).
func BenchmarkRPCCall(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	srv := newMux(b, Config{Logger: quiet})
	srv.ServeRPC(echoHandler())
	cli := newMux(b, Config{Logger: quiet})
	cl := newClient(b, cli, ClientOptions{})
	addr := srv.Addr().String()
	payload := bytes.Repeat([]byte{'p'}, 128)
	ctx := context.Background()
	if err := cl.Call(ctx, addr, "echo", payload, nil); err != nil {
		b.Fatal(err)
	}

	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		var got []byte
		for b.Loop() {
			if err := cl.Call(ctx, addr, "echo", payload, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			var got []byte
			for pb.Next() {
				if err := cl.Call(ctx, addr, "echo", payload, &got); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
