package transport

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

type gossipNode struct {
	id   string
	addr string
	ml   *memberlist.Memberlist
}

// gossipCluster starts n memberlist members over NewGossipTransport on one
// FaultNetwork, with fast failure detection, and joins them.
func gossipCluster(t *testing.T, n int) (*FaultNetwork, []*gossipNode) {
	t.Helper()
	fnet := NewFaultNetwork()
	logger := testLogger(t, slog.LevelError)
	nodes := make([]*gossipNode, n)
	for i := range nodes {
		id := fmt.Sprintf("g%d", i)
		tr, err := NewGossipTransport("127.0.0.1:0", fnet, logger)
		if err != nil {
			t.Fatalf("NewGossipTransport: %v", err)
		}
		ip, port, err := tr.FinalAdvertiseAddr("", 0)
		if err != nil {
			_ = tr.Shutdown()
			t.Fatalf("FinalAdvertiseAddr: %v", err)
		}
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		fnet.Register(id, addr)

		conf := memberlist.DefaultLocalConfig()
		conf.Name = id
		conf.Transport = tr
		conf.Logger = NewStdLogger(logger)
		conf.ProbeInterval = 50 * time.Millisecond
		conf.ProbeTimeout = 25 * time.Millisecond
		conf.SuspicionMult = 2
		conf.SuspicionMaxTimeoutMult = 2
		conf.GossipInterval = 20 * time.Millisecond
		conf.PushPullInterval = 200 * time.Millisecond
		conf.TCPTimeout = 500 * time.Millisecond
		conf.GossipToTheDeadTime = 30 * time.Second // long enough to find each other after Heal
		ml, err := memberlist.Create(conf)
		if err != nil {
			_ = tr.Shutdown()
			t.Fatalf("memberlist.Create %s: %v", id, err)
		}
		t.Cleanup(func() { _ = ml.Shutdown() })
		nodes[i] = &gossipNode{id: id, addr: addr, ml: ml}
	}
	for _, nd := range nodes[1:] {
		if _, err := nd.ml.Join([]string{nodes[0].addr}); err != nil {
			t.Fatalf("join %s: %v", nd.id, err)
		}
	}
	return fnet, nodes
}

// sees reports whether nd counts exactly the named members as alive.
func sees(nd *gossipNode, want ...string) bool {
	got := map[string]bool{}
	for _, m := range nd.ml.Members() {
		if m.State == memberlist.StateAlive {
			got[m.Name] = true
		}
	}
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

func TestGossipIsolateAndHeal(t *testing.T) {
	fnet, nodes := gossipCluster(t, 3)
	all := []string{"g0", "g1", "g2"}
	waitFor(t, 15*time.Second, "all members to see each other", func() bool {
		for _, nd := range nodes {
			if !sees(nd, all...) {
				return false
			}
		}
		return true
	})

	fnet.Isolate("g2")
	waitFor(t, 15*time.Second, "g0 and g1 to mark g2 dead", func() bool {
		return sees(nodes[0], "g0", "g1") && sees(nodes[1], "g0", "g1")
	})

	fnet.Heal()
	// As node's reconnect loop does, the healed member asks to join again
	// (memberlist alone re-merges only at its next push-pull, which under
	// load can take longer than the deadline).
	var lastJoin time.Time
	waitFor(t, 30*time.Second, "g2 to be alive again everywhere", func() bool {
		for _, nd := range nodes {
			if !sees(nd, all...) {
				if time.Since(lastJoin) > 500*time.Millisecond {
					lastJoin = time.Now()
					_, _ = nodes[2].ml.Join([]string{nodes[0].addr})
				}
				return false
			}
		}
		return true
	})
}

func TestGossipTransportFaults(t *testing.T) {
	fnet := NewFaultNetwork()
	logger := testLogger(t, slog.LevelError)
	newTr := func(id string) (memberlist.NodeAwareTransport, string) {
		tr, err := NewGossipTransport("127.0.0.1:0", fnet, logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Shutdown() })
		ip, port, _ := tr.FinalAdvertiseAddr("", 0)
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		fnet.Register(id, addr)
		return tr, addr
	}
	// Collect b's packets and streams in the background until both
	// transports shut down: NetTransport's listeners block until someone
	// takes what they received. (Registered first, so it runs last.)
	var (
		mu      sync.Mutex
		packets [][]byte
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); wg.Wait() })
	a, _ := newTr("a")
	b, bAddr := newTr("b")
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case p := <-b.PacketCh():
				mu.Lock()
				packets = append(packets, p.Buf)
				mu.Unlock()
			case c := <-b.StreamCh():
				_ = c.Close()
			case <-stop:
				return
			}
		}
	}()
	received := func(want []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range packets {
			if bytes.Equal(p, want) {
				return true
			}
		}
		return false
	}

	send := func(msg string) {
		if _, err := a.WriteTo([]byte(msg), bAddr); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	}
	send("first")
	waitFor(t, 5*time.Second, "the first packet", func() bool { return received([]byte("first")) })

	// Dropped packets: send while cut, then a marker after Heal; once the
	// marker arrived, the dropped one would have too (loopback keeps
	// order closely enough; a late arrival still fails the check).
	fnet.Cut("a", "b")
	send("dropped")
	if _, err := a.DialTimeout(bAddr, time.Second); err == nil {
		t.Fatal("DialTimeout across a cut succeeded")
	}
	fnet.Heal()
	send("marker")
	waitFor(t, 5*time.Second, "the marker packet", func() bool { return received([]byte("marker")) })
	if received([]byte("dropped")) {
		t.Fatal("a packet crossed a cut link")
	}

	// Delayed packets arrive.
	fnet.SetDelay("a", "b", 30*time.Millisecond)
	send("delayed")
	waitFor(t, 5*time.Second, "the delayed packet", func() bool { return received([]byte("delayed")) })
	fnet.Heal()

	// A stream breaks when the link is cut.
	c, err := a.DialTimeout(bAddr, time.Second)
	if err != nil {
		t.Fatalf("DialTimeout: %v", err)
	}
	defer c.Close()
	if got := fnet.OpenStreams(); got != 1 {
		t.Fatalf("%d open streams, want 1", got)
	}
	fnet.Isolate("b")
	if got := fnet.OpenStreams(); got != 0 {
		t.Fatalf("%d open streams after Isolate, want 0", got)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write on a cut stream succeeded")
	}

	// Delayed packets pending at Shutdown are dropped without leaking.
	fnet.Heal()
	fnet.SetDelay("a", "b", time.Hour)
	send("never")
}

func TestStdLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := NewStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("[DEBUG] memberlist: d")
	l.Printf("[WARN] memberlist: w")
	l.Printf("[ERR] memberlist: e")
	l.Printf("plain")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="memberlist: d"`,
		`level=WARN msg="memberlist: w"`,
		`level=ERROR msg="memberlist: e"`,
		`level=INFO msg=plain`,
	} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
