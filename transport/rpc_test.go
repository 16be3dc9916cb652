package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// echoHandler answers "echo" with its request body and anything else with
// RemoteError{unknown_method}.
func echoHandler() Handler {
	return HandlerFunc(func(_ context.Context, method string, body []byte) ([]byte, error) {
		if method != "echo" {
			return nil, RemoteError{Code: "unknown_method", Message: method}
		}
		return body, nil
	})
}

// rpcPair starts a server Mux serving h and a client Mux with a Client.
func rpcPair(t testing.TB, h Handler, srvCfg Config, opts ClientOptions) (*Mux, *Client) {
	t.Helper()
	srv := newMux(t, srvCfg)
	srv.ServeRPC(h)
	cli := newMux(t, Config{})
	return srv, newClient(t, cli, opts)
}

type addReq struct {
	A, B int
	Tag  string
}

type addResp struct {
	Sum int
	Tag string
}

func TestRPCRoundTrip(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, method string, body []byte) ([]byte, error) {
		var req addReq
		if err := msgpack.Unmarshal(body, &req); err != nil {
			return nil, RemoteError{Code: "bad_request", Message: err.Error()}
		}
		return msgpack.Marshal(addResp{Sum: req.A + req.B, Tag: method + ":" + req.Tag})
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{})
	ctx := ctxTimeout(t, 5*time.Second)
	var got addResp
	if err := cl.Call(ctx, srv.Addr().String(), "add", addReq{A: 2, B: 40, Tag: "x"}, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if want := (addResp{Sum: 42, Tag: "add:x"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// nil request and nil response are allowed.
	if err := cl.Call(ctx, srv.Addr().String(), "add", nil, nil); err == nil {
		t.Fatal("want bad_request for an empty body")
	}
	if err := cl.Call(ctx, srv.Addr().String(), "add", addReq{}, nil); err != nil {
		t.Fatalf("Call with nil resp: %v", err)
	}
}

func TestRPCPipelinedOutOfOrder(t *testing.T) {
	const n = 64
	var (
		mu       sync.Mutex
		release  = make(map[int]chan struct{})
		inflight atomic.Int32
	)
	for i := range n {
		release[i] = make(chan struct{})
	}
	h := HandlerFunc(func(ctx context.Context, _ string, body []byte) ([]byte, error) {
		var i int
		if err := msgpack.Unmarshal(body, &i); err != nil {
			return nil, err
		}
		mu.Lock()
		ch := release[i]
		mu.Unlock()
		inflight.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return msgpack.Marshal(i * 10)
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{MaxConnsPerAddr: 1})
	ctx := ctxTimeout(t, 10*time.Second)

	var (
		wg    sync.WaitGroup
		order = make(chan int, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			if err := cl.Call(ctx, srv.Addr().String(), "wait", i, &got); err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if got != i*10 {
				t.Errorf("call %d got %d, want %d", i, got, i*10)
			}
			order <- i
		}()
	}
	// All n run at once on the server, over one connection.
	waitFor(t, 10*time.Second, "all calls in flight", func() bool { return inflight.Load() == n })
	if got := srv.Stats().Accepted; got != 1 {
		t.Fatalf("server accepted %d conns, want 1", got)
	}
	// Complete them in reverse order, one at a time.
	for i := n - 1; i >= 0; i-- {
		close(release[i])
		select {
		case got := <-order:
			if got != i {
				t.Fatalf("completion %d arrived when %d was released", got, i)
			}
		case <-ctx.Done():
			t.Fatalf("call %d never completed", i)
		}
	}
	wg.Wait()
}

func TestRPCDeadlinePropagation(t *testing.T) {
	seen := make(chan time.Time, 1)
	h := HandlerFunc(func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return nil, errors.New("no deadline")
		}
		seen <- dl
		<-ctx.Done()
		return nil, ctx.Err()
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	err := cl.Call(ctx, srv.Addr().String(), "slow", nil, nil)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	if got := <-seen; !got.Equal(want) {
		t.Fatalf("handler saw deadline %v, want %v", got, want)
	}

	// A request whose deadline passed on the way is answered without
	// running the handler.
	if err := cl.Call(ctxTimeout(t, time.Nanosecond), srv.Addr().String(), "slow", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("expired call: got %v, want ErrTimeout", err)
	}
}

func TestRPCRemoteErrorCodes(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, method string, _ []byte) ([]byte, error) {
		switch method {
		case "value":
			return nil, RemoteError{Code: "not_found", Message: "no such key"}
		case "pointer-wrapped":
			return nil, fmt.Errorf("lookup: %w", &RemoteError{Code: "stale_routing", Message: "v7"})
		case "no-code":
			return nil, RemoteError{Message: "forgot the code"}
		case "plain":
			return nil, errors.New("boom")
		case "deadline":
			return nil, context.DeadlineExceeded
		}
		return nil, nil
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{})
	for _, tc := range []struct {
		method string
		want   RemoteError
	}{
		{"value", RemoteError{"not_found", "no such key"}},
		{"pointer-wrapped", RemoteError{"stale_routing", "v7"}},
		{"no-code", RemoteError{CodeInternal, "forgot the code"}},
		{"plain", RemoteError{CodeInternal, "boom"}},
		{"deadline", RemoteError{CodeDeadlineExceeded, context.DeadlineExceeded.Error()}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), tc.method, nil, nil)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v (%T), want *RemoteError", err, err)
			}
			if *re != tc.want {
				t.Fatalf("got %+v, want %+v", *re, tc.want)
			}
			if got := errors.Is(err, ErrTimeout); got != (tc.want.Code == CodeDeadlineExceeded) {
				t.Fatalf("errors.Is(err, ErrTimeout) = %v", got)
			}
		})
	}
}

func TestRPCFrameTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 4096)

	t.Run("client refuses to send", func(t *testing.T) {
		srv, cl := rpcPair(t, echoHandler(), Config{}, ClientOptions{MaxFrameSize: 1024})
		err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", big, nil)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v, want ErrFrameTooLarge", err)
		}
		if got := srv.Stats().Accepted; got > 1 {
			t.Fatalf("accepted %d conns", got)
		}
	})
	t.Run("server closes the conn announcing it", func(t *testing.T) {
		srv, cl := rpcPair(t, echoHandler(), Config{MaxFrameSize: 1024}, ClientOptions{})
		err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", big, nil)
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("got %v, want ErrConnLost", err)
		}
		// Small calls still work, over a new conn.
		var got []byte
		if err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", []byte("hi"), &got); err != nil || string(got) != "hi" {
			t.Fatalf("small call after: %q, %v", got, err)
		}
	})
	t.Run("response too large", func(t *testing.T) {
		h := HandlerFunc(func(context.Context, string, []byte) ([]byte, error) { return big, nil })
		srv, cl := rpcPair(t, h, Config{MaxFrameSize: 1024}, ClientOptions{})
		err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "get", nil, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeFrameTooLarge {
			t.Fatalf("got %v, want RemoteError %s", err, CodeFrameTooLarge)
		}
	})
	t.Run("readFrame", func(t *testing.T) {
		var buf bytes.Buffer
		_ = binary.Write(&buf, binary.BigEndian, uint32(1025))
		if _, err := readFrame(&buf, 1024); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v, want ErrFrameTooLarge", err)
		}
	})
}

func TestRPCMalformedFrameClosesOnlyThatConn(t *testing.T) {
	srv, cl := rpcPair(t, echoHandler(), Config{}, ClientOptions{MaxConnsPerAddr: 1})
	addr := srv.Addr().String()
	var got string
	if err := cl.Call(ctxTimeout(t, 5*time.Second), addr, "echo", "one", &got); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"garbage envelope", []byte{0, 0, 0, 3, 0xc1, 0xc1, 0xc1}},
		{"empty frame", []byte{0, 0, 0, 0}},
		{"truncated string", []byte{0, 0, 0, 4, 0x94, 0x01, 0xa9, 'x'}},
		{"too few fields", []byte{0, 0, 0, 3, 0x92, 0x01, 0xa0}},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Write(append([]byte{KindRPC}, tc.frame...)); err != nil {
				t.Fatal(err)
			}
			expectClosedByPeer(t, raw)
		})
	}
	// The client's conn survived: same conn, no redial.
	before := srv.Stats().Accepted
	if err := cl.Call(ctxTimeout(t, 5*time.Second), addr, "echo", "two", &got); err != nil || got != "two" {
		t.Fatalf("call after malformed frames: %q, %v", got, err)
	}
	if after := srv.Stats().Accepted; after != before {
		t.Fatalf("client redialed (%d -> %d accepted)", before, after)
	}
}

// poolConns returns how many pooled conns c has to addr.
func poolConns(c *Client, addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.mu.pools[addr]; p != nil {
		return len(p.conns)
	}
	return 0
}

func TestRPCPoolReuseAndRedial(t *testing.T) {
	started := make(chan struct{}, 1)
	h := HandlerFunc(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "block" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return body, nil
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{MaxConnsPerAddr: 2})
	addr := srv.Addr().String()
	ctx := ctxTimeout(t, 10*time.Second)
	for i := range 20 {
		var got int
		if err := cl.Call(ctx, addr, "echo", i, &got); err != nil || got != i {
			t.Fatalf("call %d: %d, %v", i, got, err)
		}
	}
	if got := srv.Stats().Accepted; got != 1 {
		t.Fatalf("sequential calls used %d conns, want 1", got)
	}

	// A call in flight when the server goes away fails with ErrConnLost.
	blocked := make(chan error, 1)
	go func() { blocked <- cl.Call(ctx, addr, "block", nil, nil) }()
	<-started
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, ErrConnLost) {
		t.Fatalf("in-flight call: got %v, want ErrConnLost", err)
	}
	waitFor(t, 5*time.Second, "the broken conn to leave the pool", func() bool { return poolConns(cl, addr) == 0 })
	if err := cl.Call(ctx, addr, "echo", 1, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call with the server down: got %v, want ErrUnreachable", err)
	}

	// Restart on the same address: the next call redials.
	srv2 := newMux(t, Config{BindAddr: addr})
	srv2.ServeRPC(h)
	var got int
	if err := cl.Call(ctx, addr, "echo", 7, &got); err != nil || got != 7 {
		t.Fatalf("call after restart: %d, %v", got, err)
	}
	if got := srv2.Stats().Accepted; got != 1 {
		t.Fatalf("restarted server accepted %d conns, want 1", got)
	}
}

func TestRPCPoolBounded(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int32
	h := HandlerFunc(func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		inflight.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	srv, cl := rpcPair(t, h, Config{}, ClientOptions{MaxConnsPerAddr: 2})
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cl.Call(ctx, srv.Addr().String(), "x", nil, nil); err != nil {
				t.Errorf("Call: %v", err)
			}
		}()
	}
	waitFor(t, 10*time.Second, "20 calls in flight", func() bool { return inflight.Load() == 20 })
	close(release)
	wg.Wait()
	if got := srv.Stats().Accepted; got < 1 || got > 2 {
		t.Fatalf("server accepted %d conns, want 1 or 2", got)
	}
}

func TestRPCBackpressure(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int32
	h := HandlerFunc(func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		inflight.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	srv, cl := rpcPair(t, h, Config{MaxInflight: 4}, ClientOptions{MaxConnsPerAddr: 1})
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cl.Call(ctx, srv.Addr().String(), "x", nil, nil); err != nil {
				t.Errorf("Call: %v", err)
			}
		}()
	}
	waitFor(t, 10*time.Second, "4 calls in flight", func() bool { return inflight.Load() == 4 })
	// The server stops reading at MaxInflight; give it a chance to
	// (wrongly) start more before checking it did not.
	for range 20 {
		if got := inflight.Load(); got != 4 {
			t.Fatalf("%d handlers running, MaxInflight is 4", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := inflight.Load(); got != 10 {
		t.Fatalf("%d handlers ran, want 10", got)
	}
}

func TestClientClose(t *testing.T) {
	srv, cl := rpcPair(t, echoHandler(), Config{}, ClientOptions{})
	if err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: got %v, want ErrClosed", err)
	}
}

func TestServeRPCTwiceIgnored(t *testing.T) {
	srv, cl := rpcPair(t, echoHandler(), Config{}, ClientOptions{})
	srv.ServeRPC(HandlerFunc(func(context.Context, string, []byte) ([]byte, error) {
		return nil, errors.New("second handler")
	}))
	var got string
	if err := cl.Call(ctxTimeout(t, 5*time.Second), srv.Addr().String(), "echo", "a", &got); err != nil || got != "a" {
		t.Fatalf("got %q, %v", got, err)
	}
}
