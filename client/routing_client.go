package client

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

// Defaults of RoutedConfig.
const (
	// DefaultRoutedMaxAttempts bounds the attempts of one operation.
	DefaultRoutedMaxAttempts = 5
	// DefaultRoutedMinBackoff is the pause before the second attempt; it
	// doubles with every further attempt, up to DefaultRoutedMaxBackoff.
	DefaultRoutedMinBackoff = 25 * time.Millisecond
	// DefaultRoutedMaxBackoff caps the pause between two attempts.
	DefaultRoutedMaxBackoff = time.Second
	// DefaultRoutedRefreshTimeout bounds one refresh of the routing table
	// (every member asked in turn).
	DefaultRoutedRefreshTimeout = 5 * time.Second
	// DefaultRoutedMaxIdleConnsPerHost is how many idle connections the
	// default transport keeps to each member.
	DefaultRoutedMaxIdleConnsPerHost = 64
	// DefaultRoutedDialTimeout bounds connecting to a member with the
	// default transport, so that a vanished host fails fast and the
	// client refreshes its table.
	DefaultRoutedDialTimeout = 3 * time.Second
)

// headerRoutingVersion is the response header carrying the routing
// version the member answered under.
const headerRoutingVersion = "X-Routing-Version"

// errRoutedClosed is returned by a Routed client after Close.
var errRoutedClosed = fmt.Errorf("client: routed client is closed: %w", net.ErrClosed)

// RoutedConfig configures a Routed client. Zero fields take their
// defaults.
type RoutedConfig struct {
	// Addresses are members to fetch the routing table from, in the forms
	// New accepts; at least one. Once the table is known, its members are
	// asked first. The scheme (http or https) of the first address is used
	// to reach every member at its advertised http_addr.
	Addresses []string
	// MaxAttempts bounds the attempts of one operation (default
	// DefaultRoutedMaxAttempts); the caller's context bounds them too.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the pause between two attempts: it
	// starts at MinBackoff, doubles, is capped at MaxBackoff, and is
	// jittered down by up to half.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// RefreshTimeout bounds one refresh of the routing table (default
	// DefaultRoutedRefreshTimeout).
	RefreshTimeout time.Duration
	// MaxIdleConnsPerHost and DialTimeout tune the default transport; they
	// are ignored with WithHTTPClient.
	MaxIdleConnsPerHost int
	DialTimeout         time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c RoutedConfig) withDefaults() RoutedConfig {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultRoutedMaxAttempts
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultRoutedMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultRoutedMaxBackoff, c.MinBackoff)
	}
	if c.RefreshTimeout == 0 {
		c.RefreshTimeout = DefaultRoutedRefreshTimeout
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = DefaultRoutedMaxIdleConnsPerHost
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultRoutedDialTimeout
	}
	return c
}

// Validate reports every problem of c at once, wrapping ErrInvalidArgument
// (or ErrInvalidAddress for the addresses).
func (c RoutedConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...))
	}
	if len(c.Addresses) == 0 {
		errs = append(errs, fmt.Errorf("%w: no addresses", ErrInvalidAddress))
	}
	for _, a := range c.Addresses {
		if _, err := parseAddress(a); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxAttempts < 1 {
		bad("MaxAttempts %d must be at least 1", c.MaxAttempts)
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		bad("backoff must satisfy 0 <= MinBackoff (%s) <= MaxBackoff (%s)", c.MinBackoff, c.MaxBackoff)
	}
	if c.RefreshTimeout <= 0 {
		bad("RefreshTimeout %s must be positive", c.RefreshTimeout)
	}
	if c.MaxIdleConnsPerHost < 0 {
		bad("MaxIdleConnsPerHost %d must not be negative", c.MaxIdleConnsPerHost)
	}
	if c.DialTimeout < 0 {
		bad("DialTimeout %s must not be negative", c.DialTimeout)
	}
	return errors.Join(errs...)
}

// Routed is a routing-aware client: it keeps the cluster's routing table
// and sends every key operation straight to the HTTP API of the key's
// partition's primary, saving the hop a member would forward it over. It
// is safe for concurrent use; Close releases it.
//
// It refreshes its table when a response carries a newer X-Routing-Version
// (in the background), and before retrying after a connection error or a
// 503 (see RoutedConfig for the bounds). After a connection error (or a
// 503 closed or leaving), while
// the table still names the same primary, it retries through another
// member, which forwards the request and waits out a failover within the
// cluster's own bounds. Keys whose partition has no primary, and every
// key while the cluster's table is not initialized, go to any member too.
// Retry-After is not waited for: the client refreshes and backs off
// exponentially instead. Writes carry an X-Request-Id,
// generated once per call (or taken from ContextWithRequestID) and reused
// by every attempt, so that retrying a write whose outcome is unknown is
// applied at most once by a cluster that deduplicates request ids. Reads
// are simply retried. Scan and Destroy, which span every partition, go to
// any member.
//
// Answers are those of Client: an *APIError for what the server answered,
// after the last attempt for a 503. An error from Routed wraps the last
// attempt's error; a write that failed with a connection error, a timeout
// or code timeout may still have taken effect.
type Routed struct {
	cfg     RoutedConfig
	seeds   []*Client
	scheme  string        // of the first address: how members are reached
	hc      *http.Client  // shared by every member's Client; observes versions
	timeout time.Duration // per attempt (WithTimeout)
	token   string        // WithToken, sent to every member
	own     *http.Transport

	table atomic.Pointer[routeTable] // never nil after NewRouted
	seen  atomic.Uint64              // highest X-Routing-Version observed
	next  atomic.Uint32              // round robin of any-member requests

	ctx    context.Context // canceled by Close: stops refreshes
	cancel context.CancelFunc
	wg     sync.WaitGroup // refresh goroutines

	mu struct {
		sync.Mutex
		refresh *refreshCall // the refresh in flight, or nil
	}
}

// routeTable is an immutable snapshot of the routing table, compiled for
// routing.
type routeTable struct {
	version uint64
	count   uint32
	// primary[p] reaches partition p's primary; nil when it has none or
	// no usable http_addr. Empty when the table is not initialized.
	primary []*Client
	// members reaches every alive member with a usable http_addr.
	members []*Client
	raw     *Routing
}

// refreshCall is one refresh in flight; done is closed when err is set.
type refreshCall struct {
	done chan struct{}
	err  error
}

// NewRouted returns a routing-aware client of the cluster that the members
// at addresses belong to, with the default RoutedConfig. It fetches the
// routing table from the first address that answers. Options are those of
// New: WithTimeout bounds each attempt, WithHTTPClient replaces the pooled
// default transport, WithToken authenticates every request to every
// member.
func NewRouted(addresses []string, opts ...Option) (*Routed, error) {
	return NewRoutedConfig(RoutedConfig{Addresses: addresses}, opts...)
}

// NewRoutedConfig is NewRouted with a configuration.
func NewRoutedConfig(cfg RoutedConfig, opts ...Option) (*Routed, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	proto := &Client{timeout: DefaultTimeout}
	for _, o := range opts {
		o(proto)
	}
	r := &Routed{cfg: cfg, timeout: proto.timeout, token: proto.token}
	if proto.hc == nil {
		r.own = newPooledTransport(cfg)
		r.own.TLSClientConfig = proto.tlsConfig.Clone() // WithTLS; nil: defaults
		r.hc = &http.Client{Transport: &versionObserver{next: r.own, note: r.noteVersion}}
	} else {
		proto.applyTLS()
		hc := *proto.hc
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = &versionObserver{next: base, note: r.noteVersion}
		r.hc = &hc
	}
	for i, a := range cfg.Addresses {
		base, _ := parseAddress(a) // Validate parsed it
		if i == 0 {
			r.scheme, _, _ = strings.Cut(base, "://")
		}
		r.seeds = append(r.seeds, r.clientOf(base))
	}
	r.table.Store(&routeTable{})
	r.ctx, r.cancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(r.ctx, cfg.RefreshTimeout)
	defer cancel()
	if err := r.Refresh(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// newPooledTransport is the default transport: keep-alive connections
// pooled per member, a bounded dial.
func newPooledTransport(cfg RoutedConfig) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConns = 0 // no overall cap: the per-host cap bounds it
	tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	tr.IdleConnTimeout = 90 * time.Second
	return tr
}

func (r *Routed) clientOf(base string) *Client {
	return &Client{base: base, hc: r.hc, timeout: r.timeout, token: r.token}
}

// Close stops background refreshes and closes idle connections of the
// default transport. Operations after Close fail with an error wrapping
// net.ErrClosed. It is idempotent.
func (r *Routed) Close() error {
	r.cancel()
	r.wg.Wait()
	if r.own != nil {
		r.own.CloseIdleConnections()
	}
	return nil
}

// Routing returns the cached routing table (shared: do not modify it); its
// Partitions are empty until the cluster's table is initialized.
func (r *Routed) Routing() *Routing {
	if t := r.table.Load(); t.raw != nil {
		return t.raw
	}
	return &Routing{}
}

// RoutingVersion returns the version of the cached routing table.
func (r *Routed) RoutingVersion() uint64 { return r.table.Load().version }

// Refresh fetches the routing table now (joining a refresh in flight) and
// waits for it, or for ctx.
func (r *Routed) Refresh(ctx context.Context) error {
	call, err := r.startRefresh()
	if err != nil {
		return err
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startRefresh starts a refresh unless one is in flight, and returns it.
// The refresh runs on its own goroutine under r.ctx, so that a caller that
// gives up does not abort it for the others.
func (r *Routed) startRefresh() (*refreshCall, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return nil, errRoutedClosed
	}
	if call := r.mu.refresh; call != nil {
		return call, nil
	}
	call := &refreshCall{done: make(chan struct{})}
	r.mu.refresh = call
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RefreshTimeout)
		call.err = r.fetch(ctx)
		cancel()
		r.mu.Lock()
		r.mu.refresh = nil
		r.mu.Unlock()
		close(call.done)
	}()
	return call, nil
}

// kick starts a background refresh if a response showed a newer table
// than the cached one.
func (r *Routed) kick(t *routeTable) {
	if r.seen.Load() > t.version {
		_, _ = r.startRefresh()
	}
}

// fetch asks the alive members of the cached table, then the addresses
// given to NewRouted, for the routing table, until one answers with a
// version at least as new as any observed; it installs the newest answer.
func (r *Routed) fetch(ctx context.Context) error {
	cur := r.table.Load()
	cands := make([]*Client, 0, len(cur.members)+len(r.seeds))
	seen := make(map[string]bool, cap(cands))
	if n := len(cur.members); n > 0 {
		start := int(r.next.Add(1)) % n
		for i := range n {
			c := cur.members[(start+i)%n]
			seen[c.base] = true
			cands = append(cands, c)
		}
	}
	for _, c := range r.seeds {
		if !seen[c.base] {
			seen[c.base] = true
			cands = append(cands, c)
		}
	}
	// Each member gets a share of the budget, so that one that swallows
	// packets does not use it all.
	per := max(r.cfg.RefreshTimeout/3, 100*time.Millisecond)
	want := max(r.seen.Load(), cur.version)
	var (
		best *Routing
		errs []error
	)
	for _, c := range cands {
		actx, cancel := context.WithTimeout(ctx, per)
		rt, err := c.Routing(actx)
		cancel()
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if best == nil || rt.RoutingVersion > best.RoutingVersion {
			best = rt
		}
		if rt.RoutingVersion >= want && rt.PartitionCount > 0 {
			break
		}
	}
	if best == nil {
		return fmt.Errorf("client: no member answered with the routing table: %w", errors.Join(errs...))
	}
	r.install(best)
	return nil
}

// install publishes rt unless the cached table is as new.
func (r *Routed) install(rt *Routing) {
	r.noteVersion(rt.RoutingVersion)
	nt := r.compile(rt)
	for {
		old := r.table.Load()
		if old.raw != nil && old.version >= nt.version {
			return
		}
		if r.table.CompareAndSwap(old, nt) {
			return
		}
	}
}

// compile builds the routing snapshot of rt.
func (r *Routed) compile(rt *Routing) *routeTable {
	t := &routeTable{version: rt.RoutingVersion, count: rt.PartitionCount, raw: rt}
	byID := make(map[string]*Client, len(rt.Members))
	for _, m := range rt.Members {
		if m.State == metadata.MemberFailed.String() {
			continue
		}
		base, ok := r.memberBase(m.HTTPAddr)
		if !ok {
			continue
		}
		c := r.clientOf(base)
		byID[m.ID] = c
		if m.State == metadata.MemberAlive.String() {
			t.members = append(t.members, c)
		}
	}
	if rt.PartitionCount == 0 || len(rt.Partitions) != int(rt.PartitionCount) {
		return t // not initialized, or one partition only: no routing
	}
	t.primary = make([]*Client, rt.PartitionCount)
	for i, p := range rt.Partitions {
		if p.ID != uint32(i) {
			t.primary = nil // malformed: let members route
			break
		}
		t.primary[i] = byID[p.Primary] // nil without a primary
	}
	return t
}

// memberBase is the base URL of a member's advertised HTTP address; false
// when it cannot be dialed (malformed, or an unspecified host such as
// 0.0.0.0).
func (r *Routed) memberBase(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", false
	}
	return r.scheme + "://" + net.JoinHostPort(host, port), true
}

// noteVersion records a routing version a member answered with.
func (r *Routed) noteVersion(v uint64) {
	for {
		cur := r.seen.Load()
		if v <= cur || r.seen.CompareAndSwap(cur, v) {
			return
		}
	}
}

// forKey routes to the primary of key's partition.
func forKey(dmap, key string) func(*routeTable) *Client {
	return func(t *routeTable) *Client {
		if len(t.primary) == 0 {
			return nil
		}
		return t.primary[metadata.PartitionOf(dmap, key, t.count)]
	}
}

// anyMember routes to no member in particular.
func anyMember(*routeTable) *Client { return nil }

// fallback picks a member in turn, other than the one at base avoid if
// possible: the alive members of t, or the addresses given to NewRouted.
// The member forwards to the primary.
func (r *Routed) fallback(t *routeTable, avoid string) *Client {
	pool := t.members
	if len(pool) == 0 {
		pool = r.seeds
	}
	start := int(r.next.Add(1))
	for i := range pool {
		if c := pool[(start+i)%len(pool)]; c.base != avoid {
			return c
		}
	}
	return pool[start%len(pool)]
}

// run performs one operation: up to MaxAttempts attempts of f on the
// member route picks, refreshing the table and backing off between them.
// A write gets a request id reused by every attempt.
func (r *Routed) run(ctx context.Context, write bool, route func(*routeTable) *Client, f func(context.Context, *Client) error) error {
	if write {
		if id, _ := ctx.Value(requestIDKey{}).(string); id == "" {
			ctx = ContextWithRequestID(ctx, newRequestID())
		}
	}
	// unreachable is the member a transport error (or 503 closed or
	// leaving) came from: while the table still names it, go through
	// another member, which forwards (and waits out a failover within the
	// cluster's own bounds).
	unreachable := ""
	for attempt := 1; ; attempt++ {
		if r.ctx.Err() != nil {
			return errRoutedClosed
		}
		t := r.table.Load()
		c := route(t)
		if c == nil || c.base == unreachable {
			c = r.fallback(t, unreachable)
		}
		err := f(ctx, c)
		r.kick(t)
		if err == nil || !retryable(ctx, err) {
			return err
		}
		if ae := (*APIError)(nil); !errors.As(err, &ae) || ae.Code == CodeClosed || ae.Code == CodeLeaving {
			unreachable = c.base // no answer, or a member on its way out
		}
		if attempt >= r.cfg.MaxAttempts {
			return fmt.Errorf("client: gave up after %d attempts: %w", attempt, err)
		}
		// The error may come from a stale table (a moved or dead primary):
		// refresh before retrying. A failed refresh leaves the table; the
		// next attempt reports what is wrong.
		_ = r.Refresh(ctx)
		if !sleepCtx(ctx, r.backoff(attempt)) {
			return err
		}
	}
}

// retryable reports whether another attempt may succeed: a 503, or a
// transport error (refused, reset, timed out) while ctx is still live.
// Other answers of the server and errors of the client itself are final.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusServiceUnavailable
	}
	return !errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrUnexpectedResponse) && !errors.Is(err, ErrInvalidAddress)
}

// backoff is the pause after the given attempt: exponential, capped,
// jittered into [d/2, d].
func (r *Routed) backoff(attempt int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < attempt && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newRequestID returns a random request id (26 characters of base32).
func newRequestID() string { return crand.Text() }

// versionObserver passes requests on and reports the X-Routing-Version of
// every response.
type versionObserver struct {
	next http.RoundTripper
	note func(uint64)
}

var _ http.RoundTripper = (*versionObserver)(nil)

func (v *versionObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err == nil {
		if s := resp.Header.Get(headerRoutingVersion); s != "" {
			if n, perr := strconv.ParseUint(s, 10, 64); perr == nil {
				v.note(n)
			}
		}
	}
	return resp, err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (v *versionObserver) CloseIdleConnections() {
	if c, ok := v.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// The DMap operations: the same as Client's, routed.

// Put is Client.Put, sent to the key's primary.
func (r *Routed) Put(ctx context.Context, dmap, key string, value []byte, opts ...PutOption) (uint64, error) {
	var v uint64
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		v, err = c.Put(ctx, dmap, key, value, opts...)
		return err
	})
	return v, err
}

// PutJSON is Client.PutJSON, sent to the key's primary.
func (r *Routed) PutJSON(ctx context.Context, dmap, key string, value any, opts ...PutOption) (uint64, error) {
	var v uint64
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		v, err = c.PutJSON(ctx, dmap, key, value, opts...)
		return err
	})
	return v, err
}

// Get is Client.Get, sent to the key's primary.
func (r *Routed) Get(ctx context.Context, dmap, key string) (*Entry, error) {
	var e *Entry
	err := r.run(ctx, false, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		e, err = c.Get(ctx, dmap, key)
		return err
	})
	return e, err
}

// Delete is Client.Delete, sent to the key's primary.
func (r *Routed) Delete(ctx context.Context, dmap, key string) (bool, error) {
	var ok bool
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		ok, err = c.Delete(ctx, dmap, key)
		return err
	})
	return ok, err
}

// Incr is Client.Incr, sent to the key's primary. Retried after an
// unknown outcome, it is applied at most once only by a cluster that
// deduplicates request ids.
func (r *Routed) Incr(ctx context.Context, dmap, key string, delta int64) (int64, uint64, error) {
	var (
		n int64
		v uint64
	)
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		n, v, err = c.Incr(ctx, dmap, key, delta)
		return err
	})
	return n, v, err
}

// IncrByFloat is Client.IncrByFloat, sent to the key's primary.
func (r *Routed) IncrByFloat(ctx context.Context, dmap, key string, delta float64) (float64, uint64, error) {
	var (
		f float64
		v uint64
	)
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		f, v, err = c.IncrByFloat(ctx, dmap, key, delta)
		return err
	})
	return f, v, err
}

// Expire is Client.Expire, sent to the key's primary.
func (r *Routed) Expire(ctx context.Context, dmap, key string, ttl time.Duration) (bool, error) {
	var ok bool
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		ok, err = c.Expire(ctx, dmap, key, ttl)
		return err
	})
	return ok, err
}

// GetPut is Client.GetPut, sent to the key's primary.
func (r *Routed) GetPut(ctx context.Context, dmap, key string, value []byte) (*Entry, uint64, error) {
	var (
		prev *Entry
		v    uint64
	)
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		prev, v, err = c.GetPut(ctx, dmap, key, value)
		return err
	})
	return prev, v, err
}

// Lock is Client.Lock, sent to the key's primary. Each attempt waits up
// to wait again.
func (r *Routed) Lock(ctx context.Context, dmap, key string, ttl, wait time.Duration) (uint64, error) {
	var token uint64
	err := r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) (err error) {
		token, err = c.Lock(ctx, dmap, key, ttl, wait)
		return err
	})
	return token, err
}

// Unlock is Client.Unlock, sent to the key's primary.
func (r *Routed) Unlock(ctx context.Context, dmap, key string, token uint64) error {
	return r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) error {
		return c.Unlock(ctx, dmap, key, token)
	})
}

// Lease is Client.Lease, sent to the key's primary.
func (r *Routed) Lease(ctx context.Context, dmap, key string, token uint64, ttl time.Duration) error {
	return r.run(ctx, true, forKey(dmap, key), func(ctx context.Context, c *Client) error {
		return c.Lease(ctx, dmap, key, token, ttl)
	})
}

// Scan is Client.Scan, sent to any member (a scan walks every partition;
// its cursor is understood by every member).
func (r *Routed) Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error) {
	var (
		keys []string
		next string
	)
	err := r.run(ctx, false, anyMember, func(ctx context.Context, c *Client) (err error) {
		keys, next, err = c.Scan(ctx, dmap, match, cursor, limit)
		return err
	})
	return keys, next, err
}

// ScanAll is Client.ScanAll over Routed.Scan.
func (r *Routed) ScanAll(ctx context.Context, dmap, match string) iter.Seq2[string, error] {
	return scanAll(ctx, dmap, match, r.Scan)
}

// Destroy is Client.Destroy, sent to any member (it fans out to every
// partition).
func (r *Routed) Destroy(ctx context.Context, dmap string) error {
	return r.run(ctx, true, anyMember, func(ctx context.Context, c *Client) error {
		return c.Destroy(ctx, dmap)
	})
}
