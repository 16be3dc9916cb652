package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFaultNetworkLink(t *testing.T) {
	type link struct {
		from, to string
		deliver  bool
		delay    time.Duration
	}
	// Nodes a, b, c with two addresses each (cluster and gossip).
	addr := func(node string, port int) string {
		return map[string]string{"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}[node] + ":" + string(rune('0'+port))
	}
	for _, tc := range []struct {
		name  string
		setup func(n *FaultNetwork)
		links []link
	}{
		{"all up", func(*FaultNetwork) {}, []link{{"a", "b", true, 0}, {"b", "a", true, 0}, {"a", "c", true, 0}}},
		{"cut", func(n *FaultNetwork) { n.Cut("a", "b") }, []link{
			{"a", "b", false, 0}, {"b", "a", false, 0}, {"a", "c", true, 0}, {"c", "b", true, 0},
		}},
		{"one way", func(n *FaultNetwork) { n.CutOneWay("a", "b") }, []link{{"a", "b", false, 0}, {"b", "a", true, 0}}},
		{"isolate", func(n *FaultNetwork) { n.Isolate("c") }, []link{
			{"a", "b", true, 0}, {"a", "c", false, 0}, {"c", "a", false, 0}, {"c", "b", false, 0},
		}},
		{"partition", func(n *FaultNetwork) { n.Partition([]string{"a", "b"}, []string{"c"}) }, []link{
			{"a", "b", true, 0}, {"b", "a", true, 0}, {"a", "c", false, 0}, {"c", "b", false, 0},
		}},
		{"unnamed node isolated by partition", func(n *FaultNetwork) { n.Partition([]string{"a", "b"}) }, []link{
			{"a", "b", true, 0}, {"a", "c", false, 0}, {"c", "a", false, 0},
		}},
		{"later partition replaces earlier", func(n *FaultNetwork) {
			n.Partition([]string{"a"}, []string{"b", "c"})
			n.Partition([]string{"a", "b"}, []string{"c"})
		}, []link{{"a", "b", true, 0}, {"b", "c", false, 0}}},
		{"heal", func(n *FaultNetwork) {
			n.Partition([]string{"a"}, []string{"b", "c"})
			n.Cut("a", "b")
			n.Isolate("c")
			n.SetDelay("", "", time.Second)
			n.Heal()
		}, []link{{"a", "b", true, 0}, {"b", "c", true, 0}, {"c", "a", true, 0}}},
		{"delay precedence", func(n *FaultNetwork) {
			n.SetDelay("", "", 1*time.Millisecond)
			n.SetDelay("", "b", 2*time.Millisecond)
			n.SetDelay("a", "", 3*time.Millisecond)
			n.SetDelay("a", "b", 4*time.Millisecond)
		}, []link{
			{"a", "b", true, 4 * time.Millisecond}, {"a", "c", true, 3 * time.Millisecond},
			{"c", "b", true, 2 * time.Millisecond}, {"c", "a", true, 1 * time.Millisecond},
		}},
		{"delay removed", func(n *FaultNetwork) {
			n.SetDelay("a", "b", time.Second)
			n.SetDelay("a", "b", 0)
		}, []link{{"a", "b", true, 0}}},
		{"drop does not affect Link", func(n *FaultNetwork) { n.SetDrop("", "", 1) }, []link{{"a", "b", true, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewFaultNetwork()
			for _, node := range []string{"a", "b", "c"} {
				n.Register(node, addr(node, 1), addr(node, 2))
			}
			tc.setup(n)
			for _, l := range tc.links {
				for _, ports := range [][2]int{{1, 1}, {2, 2}, {1, 2}} {
					deliver, delay := n.Link(addr(l.from, ports[0]), addr(l.to, ports[1]))
					if deliver != l.deliver || delay != l.delay {
						t.Errorf("Link(%s, %s) = %v, %v; want %v, %v", l.from, l.to, deliver, delay, l.deliver, l.delay)
					}
				}
			}
		})
	}

	t.Run("unknown and self", func(t *testing.T) {
		n := NewFaultNetwork()
		n.Register("a", "127.0.0.1:1", "127.0.0.1:2")
		n.SetDelay("", "", time.Second)
		n.Isolate("a")
		for _, pair := range [][2]string{{"127.0.0.1:1", "127.0.0.1:9"}, {"127.0.0.1:9", "127.0.0.1:1"}, {"127.0.0.1:1", "127.0.0.1:2"}} {
			if deliver, delay := n.Link(pair[0], pair[1]); !deliver || delay != 0 {
				t.Errorf("Link(%s, %s) = %v, %v; want delivered at once", pair[0], pair[1], deliver, delay)
			}
		}
	})
	t.Run("address spellings", func(t *testing.T) {
		n := NewFaultNetwork()
		n.Register("a", "127.0.0.1:1")
		n.Register("b", "[::ffff:127.0.0.2]:1")
		n.Cut("a", "b")
		if deliver, _ := n.Link("[::ffff:127.0.0.1]:1", "127.0.0.2:1"); deliver {
			t.Error("the cut did not apply to an IPv4-mapped spelling")
		}
	})
}

func TestFaultNetworkPacketDrop(t *testing.T) {
	n := NewFaultNetwork()
	n.Register("a", "10.0.0.1:1")
	n.Register("b", "10.0.0.2:1")
	n.SetDrop("a", "b", 1)
	for range 100 {
		if deliver, _ := n.PacketLink("10.0.0.1:1", "10.0.0.2:1"); deliver {
			t.Fatal("a packet got through a drop probability of 1")
		}
		if deliver, _ := n.PacketLink("10.0.0.2:1", "10.0.0.1:1"); !deliver {
			t.Fatal("the reverse direction dropped a packet")
		}
	}
	n.SetDrop("a", "b", 0.5)
	delivered := 0
	for range 1000 {
		if deliver, _ := n.PacketLink("10.0.0.1:1", "10.0.0.2:1"); deliver {
			delivered++
		}
	}
	if delivered == 0 || delivered == 1000 {
		t.Fatalf("%d of 1000 packets delivered at p=0.5", delivered)
	}
}

// faultPair is two Muxes on one FaultNetwork, nodes "a" (client) and "b"
// (server, echoing).
func faultPair(t *testing.T) (*FaultNetwork, *Mux, *Client) {
	t.Helper()
	n := NewFaultNetwork()
	srv := newMux(t, Config{Faults: n})
	srv.ServeRPC(echoHandler())
	cli := newMux(t, Config{Faults: n})
	n.Register("a", cli.Addr().String())
	n.Register("b", srv.Addr().String())
	return n, srv, newClient(t, cli, ClientOptions{})
}

func TestFaultNetworkBreaksStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(n *FaultNetwork)
	}{
		{"cut", func(n *FaultNetwork) { n.Cut("a", "b") }},
		{"one way toward the dialer", func(n *FaultNetwork) { n.CutOneWay("b", "a") }},
		{"one way from the dialer", func(n *FaultNetwork) { n.CutOneWay("a", "b") }},
		{"isolate server", func(n *FaultNetwork) { n.Isolate("b") }},
		{"partition", func(n *FaultNetwork) { n.Partition([]string{"a"}, []string{"b"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv, cl := faultPair(t)
			addr := srv.Addr().String()
			ctx := ctxTimeout(t, 10*time.Second)
			if err := cl.Call(ctx, addr, "echo", 1, nil); err != nil {
				t.Fatal(err)
			}
			if got := n.OpenStreams(); got != 1 {
				t.Fatalf("%d open streams, want 1", got)
			}
			tc.cut(n)
			if got := n.OpenStreams(); got != 0 {
				t.Fatalf("%d streams still open after the cut", got)
			}
			waitFor(t, 5*time.Second, "the broken conn to leave the pool", func() bool { return poolConns(cl, addr) == 0 })
			err := cl.Call(ctx, addr, "echo", 1, nil)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("call across the cut: got %v, want ErrUnreachable", err)
			}
			n.Heal()
			if err := cl.Call(ctx, addr, "echo", 1, nil); err != nil {
				t.Fatalf("call after Heal: %v", err)
			}
		})
	}
}

func TestFaultNetworkBreaksCallInFlight(t *testing.T) {
	n := NewFaultNetwork()
	started := make(chan struct{}, 1)
	srv := newMux(t, Config{Faults: n})
	srv.ServeRPC(HandlerFunc(func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	cli := newMux(t, Config{Faults: n})
	n.Register("a", cli.Addr().String())
	n.Register("b", srv.Addr().String())
	cl := newClient(t, cli, ClientOptions{})
	done := make(chan error, 1)
	go func() { done <- cl.Call(ctxTimeout(t, 10*time.Second), srv.Addr().String(), "block", nil, nil) }()
	<-started
	n.Isolate("a")
	if err := <-done; !errors.Is(err, ErrConnLost) {
		t.Fatalf("got %v, want ErrConnLost", err)
	}
}

func TestFaultNetworkDelay(t *testing.T) {
	n, srv, cl := faultPair(t)
	const d = 50 * time.Millisecond
	ctx := ctxTimeout(t, 10*time.Second)
	for _, tc := range []struct{ from, to string }{{"a", "b"}, {"b", "a"}} {
		if err := cl.Call(ctx, srv.Addr().String(), "echo", 1, nil); err != nil { // connect first
			t.Fatal(err)
		}
		n.SetDelay(tc.from, tc.to, d)
		start := time.Now()
		if err := cl.Call(ctx, srv.Addr().String(), "echo", 1, nil); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < d {
			t.Fatalf("delay %s->%s: call took %v, want at least %v", tc.from, tc.to, took, d)
		}
		n.Heal()
	}
	// A deadline shorter than the delay bounds the call.
	n.SetDelay("a", "b", time.Hour)
	err := cl.Call(ctxTimeout(t, 100*time.Millisecond), srv.Addr().String(), "echo", 1, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	n.Heal() // the test's cleanup must not wait an hour
}
