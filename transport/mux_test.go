package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// acceptOne accepts from l in the background.
func acceptOne(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// exchange writes msg on a and reads it back on b.
func exchange(t *testing.T, a, b net.Conn, msg string) {
	t.Helper()
	if _, err := a.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

// expectClosedByPeer reads from c until the peer closes it.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("want the peer to close the conn, got %v", err)
	}
	// nil (EOF) or a reset (the peer closed with our bytes unread).
}

func TestMuxRoutesKinds(t *testing.T) {
	m := newMux(t, Config{})
	ctx := ctxTimeout(t, 5*time.Second)
	for _, tc := range []struct {
		name string
		kind byte
		l    net.Listener
	}{
		{"raft", KindRaft, m.RaftLayer()},
		{"rpc", KindRPC, m.rpc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accepted := acceptOne(tc.l)
			c, err := m.Dial(ctx, m.Addr().String(), tc.kind)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			s, ok := <-accepted
			if !ok {
				t.Fatal("Accept failed")
			}
			defer s.Close()
			exchange(t, c, s, "hello "+tc.name)
			exchange(t, s, c, "back "+tc.name)
		})
	}
	// The handshake goroutine counts after handing the conn over.
	waitFor(t, 5*time.Second, "2 routed conns", func() bool { return m.Stats().Routed == 2 })
	if got := m.Stats(); got.Rejected != 0 || got.Dropped != 0 {
		t.Fatalf("Stats = %+v, want nothing rejected or dropped", got)
	}
}

func TestMuxRaftLayerDial(t *testing.T) {
	m := newMux(t, Config{})
	accepted := acceptOne(m.RaftLayer())
	if _, err := m.RaftLayer().Dial("127.0.0.1:1", time.Second); !errors.Is(err, ErrUnreachable) { // nothing listens on port 1
		t.Fatalf("Dial to a dead port: got %v, want ErrUnreachable", err)
	}
	c, err := m.RaftLayer().Dial(raft.ServerAddress(m.RaftLayer().Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	exchange(t, c, s, "x")
}

func TestMuxRejectsUnknownKind(t *testing.T) {
	m := newMux(t, Config{})
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectClosedByPeer(t, raw)
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool { return m.Stats().Rejected == 1 })

	// The Mux keeps serving.
	accepted := acceptOne(m.RaftLayer())
	c, err := m.Dial(ctxTimeout(t, 5*time.Second), m.Addr().String(), KindRaft)
	if err != nil {
		t.Fatalf("Dial after garbage: %v", err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	exchange(t, c, s, "still here")
}

func TestMuxHandshakeTimeout(t *testing.T) {
	m := newMux(t, Config{HandshakeTimeout: 100 * time.Millisecond})
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	expectClosedByPeer(t, raw) // sends nothing: closed after the timeout
	waitFor(t, 5*time.Second, "the timeout to be counted", func() bool { return m.Stats().Rejected == 1 })

	accepted := acceptOne(m.RaftLayer())
	c, err := m.Dial(ctxTimeout(t, 5*time.Second), m.Addr().String(), KindRaft)
	if err != nil {
		t.Fatalf("Dial after a timed-out handshake: %v", err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	exchange(t, c, s, "ok")
}

func TestMuxAcceptQueueFullDrops(t *testing.T) {
	m := newMux(t, Config{AcceptQueue: 2})
	ctx := ctxTimeout(t, 5*time.Second)
	// Nobody accepts KindRaft: two conns queue, the rest are dropped.
	var conns []net.Conn
	for range 5 {
		c, err := m.Dial(ctx, m.Addr().String(), KindRaft)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		conns = append(conns, c)
	}
	waitFor(t, 5*time.Second, "2 routed and 3 dropped", func() bool {
		s := m.Stats()
		return s.Routed == 2 && s.Dropped == 3
	})
	for _, c := range conns {
		_ = c.Close()
	}
	// The queued ones are still served.
	for range 2 {
		c, err := m.RaftLayer().Accept()
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		_ = c.Close()
	}
}

func TestMuxCloseIdempotent(t *testing.T) {
	m := newMux(t, Config{})
	started := make(chan struct{})
	m.ServeRPC(HandlerFunc(func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	ctx := ctxTimeout(t, 5*time.Second)
	accepted := acceptOne(m.RaftLayer())
	dialed, err := m.Dial(ctx, m.Addr().String(), KindRaft)
	if err != nil {
		t.Fatal(err)
	}
	served := <-accepted
	// A raw RPC conn with a request stuck in its handler.
	cl := newClient(t, m, ClientOptions{})
	callErr := make(chan error, 1)
	go func() { callErr <- cl.Call(context.Background(), m.Addr().String(), "block", nil, nil) }()
	// A conn that never finishes its handshake.
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	<-started
	waitFor(t, 5*time.Second, "3 accepted conns", func() bool { return m.Stats().Accepted >= 3 })

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	if _, err := m.Dial(ctx, m.Addr().String(), KindRaft); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: got %v, want ErrClosed", err)
	}
	if _, err := m.RaftLayer().Accept(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: got %v, want ErrClosed and net.ErrClosed", err)
	}
	for name, c := range map[string]net.Conn{"dialed": dialed, "accepted": served} {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s conn still open after Close", name)
		}
	}
	if err := <-callErr; !errors.Is(err, ErrConnLost) {
		t.Fatalf("call in flight at Close: got %v, want ErrConnLost", err)
	}
	expectClosedByPeer(t, raw)
	if _, err := net.DialTimeout("tcp", m.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepting after Close")
	}
}

func TestRaftLayerCloseLeavesMuxRunning(t *testing.T) {
	m := newMux(t, Config{})
	m.ServeRPC(echoHandler())
	if err := m.RaftLayer().Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.RaftLayer().Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	cl := newClient(t, m, ClientOptions{})
	var got string
	if err := cl.Call(ctxTimeout(t, 5*time.Second), m.Addr().String(), "echo", "hi", &got); err != nil || got != "hi" {
		t.Fatalf("Call after RaftLayer.Close = %q, %v", got, err)
	}
}

func TestMuxDialUnknownKind(t *testing.T) {
	m := newMux(t, Config{})
	if _, err := m.Dial(context.Background(), m.Addr().String(), 'Z'); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("got %v, want ErrUnknownKind", err)
	}
}

func TestMuxAdvertiseAddr(t *testing.T) {
	m := newMux(t, Config{AdvertiseAddr: "node1.example:3321"})
	if got := m.Addr().String(); got != "node1.example:3321" {
		t.Fatalf("Addr = %q", got)
	}
	if got := m.RaftLayer().Addr().String(); got != "node1.example:3321" {
		t.Fatalf("RaftLayer().Addr = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr int // number of problems reported
	}{
		{"default", DefaultConfig(), 0},
		{"zero fields defaulted", Config{BindAddr: "127.0.0.1:0"}, 0},
		{"missing bind", Config{}, 1},
		{"bad port", Config{BindAddr: "127.0.0.1:http"}, 1},
		{"unspecified bind needs advertise", Config{BindAddr: "0.0.0.0:3321"}, 1},
		{"unspecified bind with advertise", Config{BindAddr: ":3321", AdvertiseAddr: "10.0.0.1:3321"}, 0},
		{"advertise port 0", Config{BindAddr: "127.0.0.1:0", AdvertiseAddr: "10.0.0.1:0"}, 1},
		{"everything wrong", Config{
			BindAddr: "nope", AdvertiseAddr: "0.0.0.0:0",
			HandshakeTimeout: -1, AcceptQueue: -1, MaxFrameSize: -1, MaxInflight: -1,
		}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			got := 0
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
				}
				if j, ok := err.(interface{ Unwrap() []error }); ok {
					got = len(j.Unwrap())
				}
			}
			if got != tc.wantErr {
				t.Fatalf("Validate() = %v: %d problems, want %d", err, got, tc.wantErr)
			}
		})
	}
	if _, err := Listen(Config{BindAddr: "0.0.0.0:0"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Listen with an invalid config: got %v", err)
	}
}

// TestMuxWaitRaftConns: after Close, WaitRaftConns waits for the Raft
// connections the Raft layer accepted until their user (Raft's transport,
// once the connection's handler returns) closes them; those still queued
// when the Mux closed count out by themselves.
func TestMuxWaitRaftConns(t *testing.T) {
	m := newMux(t, Config{})
	accepted := acceptOne(m.RaftLayer())
	ctx := ctxTimeout(t, 5*time.Second)
	c1, err := m.Dial(ctx, m.Addr().String(), KindRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	held, ok := <-accepted
	if !ok {
		t.Fatal("raft Accept failed")
	}
	// A second one stays queued: nobody accepts it.
	c2, err := m.Dial(ctx, m.Addr().String(), KindRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFor(t, 5*time.Second, "2 routed conns", func() bool { return m.Stats().Routed >= 2 })

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.WaitRaftConns(short); err == nil {
		t.Fatal("WaitRaftConns returned while an accepted Raft connection is open")
	}
	// Its handler ends (the Mux closed the connection underneath) and
	// closes it.
	if _, err := held.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a connection of a closed Mux succeeded")
	}
	if err := held.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if err := m.WaitRaftConns(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}
