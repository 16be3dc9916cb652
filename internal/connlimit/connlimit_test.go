package connlimit

import (
	"bufio"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLimitRejectsOverMaxAndFreesSlots: with max 2, a third client gets the
// reject answer and is closed; once a client leaves, a new one is served.
func TestLimitRejectsOverMaxAndFreesSlots(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 2, func(c net.Conn) { _, _ = c.Write([]byte("busy\n")) })
	served := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(served)
				return
			}
			served <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	sa, sb := <-served, <-served
	c := dial()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "busy\n" {
		t.Fatalf("third client read %q, %v; want the reject answer", line, err)
	}
	if _, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Fatal("rejected connection left open")
	}
	_ = c.Close()
	if got := l.Rejected(); got != 1 {
		t.Fatalf("rejected %d, want 1", got)
	}
	if got := l.Open(); got != 2 {
		t.Fatalf("open %d, want 2", got)
	}
	// A served client leaves: its slot is free again.
	_ = sa.Close()
	_ = sa.Close() // idempotent: counted once
	_ = a.Close()
	d := dial()
	select {
	case sd := <-served:
		_ = sd.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a client was not served after a slot freed up")
	}
	_ = d.Close()
	_ = sb.Close()
	_ = b.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range served {
	}
}

func TestNoLimit(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 0, nil)
	defer l.Close()
	accepted := make(chan net.Conn, 5)
	go func() {
		for i := 0; i < 5; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for i := 0; i < 5; i++ {
		defer (<-accepted).Close()
	}
	if l.Rejected() != 0 || l.Open() != 5 {
		t.Fatalf("rejected %d open %d, want 0 and 5", l.Rejected(), l.Open())
	}
}
