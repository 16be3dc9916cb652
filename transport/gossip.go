package transport

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// bindRetries bounds the attempts to bind TCP and UDP on the same free port
// when the gossip port is 0 (the kernel picks the TCP port; the UDP one may
// be taken).
const bindRetries = 10

// NewGossipTransport returns memberlist's NetTransport listening (TCP and
// UDP) on bindAddr ("host:port"; port 0 picks a free port, read it back
// with FinalAdvertiseAddr("", 0)), wrapped so that faults, when non-nil,
// drop or delay outgoing packets and refuse or break streams like the
// cluster port does. Set it as memberlist.Config.Transport.
//
// The local address asked about is the one memberlist advertises (captured
// from its FinalAdvertiseAddr call), else the bound address. Packets are
// judged at the sender, so receive paths are unchanged. Shutdown (called by
// memberlist.Shutdown) cancels delayed packets not yet sent.
func NewGossipTransport(bindAddr string, faults Faults, logger *slog.Logger) (memberlist.NodeAwareTransport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(bindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: gossip address %q: %w", bindAddr, err)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return nil, fmt.Errorf("transport: gossip address %q: %w", bindAddr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
		cancel()
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("transport: gossip address %q: cannot resolve host: %v", bindAddr, err)
		}
		ip = ips[0]
	}
	cfg := &memberlist.NetTransportConfig{
		BindAddrs: []string{ip.String()},
		BindPort:  port,
		Logger:    NewStdLogger(logger.With("component", "memberlist")),
	}
	var nt *memberlist.NetTransport
	for attempt := 1; ; attempt++ {
		nt, err = memberlist.NewNetTransport(cfg)
		if err == nil || port != 0 || attempt == bindRetries {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("transport: gossip listen %s: %w", bindAddr, err)
	}
	g := &gossipTransport{
		NetTransport: nt,
		faults:       faults,
		logger:       logger.With("component", "transport.gossip"),
	}
	if pf, ok := faults.(PacketFaults); ok {
		g.packets = pf
	}
	local := net.JoinHostPort(ip.String(), strconv.Itoa(nt.GetAutoBindPort()))
	g.local.Store(&local)
	g.mu.pending = make(map[*delayedPacket]struct{})
	return g, nil
}

// gossipTransport wraps memberlist's NetTransport with fault injection.
// Both the address-only and the node-aware variants are overridden: the
// embedded ones call each other on the inner transport, bypassing us.
type gossipTransport struct {
	*memberlist.NetTransport
	faults  Faults       // nil in production
	packets PacketFaults // faults as PacketFaults, or nil
	logger  *slog.Logger
	local   atomic.Pointer[string] // the advertised gossip address

	// wg counts delayed packets whose timer fired and that are being sent.
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		closed  bool                        // guarded by mu
		pending map[*delayedPacket]struct{} // delayed packets not yet sent; guarded by mu
	}
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

type delayedPacket struct{ timer *time.Timer }

// FinalAdvertiseAddr records the address memberlist advertises: it is the
// local address faults are asked about.
func (g *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	aip, aport, err := g.NetTransport.FinalAdvertiseAddr(ip, port)
	if err == nil {
		local := net.JoinHostPort(aip.String(), strconv.Itoa(aport))
		g.local.Store(&local)
	}
	return aip, aport, err
}

func (g *gossipTransport) localAddr() string { return *g.local.Load() }

// WriteTo implements memberlist.Transport.
func (g *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet unless faults drop it (silently, as UDP
// would), after the faults' delay if any.
func (g *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if g.faults == nil {
		return g.NetTransport.WriteToAddress(b, a)
	}
	var (
		deliver bool
		delay   time.Duration
	)
	if g.packets != nil {
		deliver, delay = g.packets.PacketLink(g.localAddr(), a.Addr)
	} else {
		deliver, delay = g.faults.Link(g.localAddr(), a.Addr)
	}
	switch {
	case !deliver:
		return time.Now(), nil
	case delay > 0:
		g.sendLater(bytes.Clone(b), a, delay)
		return time.Now(), nil
	}
	return g.NetTransport.WriteToAddress(b, a)
}

// sendLater sends b to a after d, unless Shutdown comes first.
func (g *gossipTransport) sendLater(b []byte, a memberlist.Address, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closed {
		return
	}
	p := &delayedPacket{}
	g.mu.pending[p] = struct{}{}
	g.wg.Add(1)
	// The callback takes mu first, so it sees p.timer assigned.
	p.timer = time.AfterFunc(d, func() {
		defer g.wg.Done()
		g.mu.Lock()
		delete(g.mu.pending, p)
		closed := g.mu.closed
		g.mu.Unlock()
		if closed {
			return
		}
		if _, err := g.NetTransport.WriteToAddress(b, a); err != nil {
			g.logger.Debug("delayed gossip packet not sent", "to", a.Addr, "error", err)
		}
	})
}

// DialTimeout implements memberlist.Transport.
func (g *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout refuses a cut link at once and wraps the conn so a
// later cut breaks it.
func (g *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if g.faults == nil {
		return g.NetTransport.DialAddressTimeout(a, timeout)
	}
	local := g.localAddr()
	if !linkUp(g.faults, local, a.Addr) {
		return nil, fmt.Errorf("%w: %s -> %s cut by fault injection", ErrUnreachable, local, a.Addr)
	}
	c, err := g.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return wrapFaultConn(g.faults, local, a.Addr, c)
}

// Shutdown drops the delayed packets not yet sent, waits for those being
// sent, then shuts the NetTransport down.
func (g *gossipTransport) Shutdown() error {
	g.mu.Lock()
	g.mu.closed = true
	for p := range g.mu.pending {
		if p.timer.Stop() {
			g.wg.Done() // its callback will never run
		}
	}
	clear(g.mu.pending)
	g.mu.Unlock()
	g.wg.Wait()
	return g.NetTransport.Shutdown()
}

// NewStdLogger returns a *log.Logger (what memberlist and other
// hashicorp libraries take) that forwards each line to logger, at the level
// named by a leading "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]"/"[ERROR]"
// tag (INFO without one).
func NewStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(slogWriter{logger}, "", 0)
}

type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	n := len(p)
	p = bytes.TrimRight(p, "\r\n")
	level := slog.LevelInfo
	if len(p) > 0 && p[0] == '[' {
		if end := bytes.IndexByte(p, ']'); end > 0 {
			switch string(p[1:end]) {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			p = bytes.TrimLeft(p[end+1:], " ")
		}
	}
	w.logger.Log(context.Background(), level, string(p))
	return n, nil
}
