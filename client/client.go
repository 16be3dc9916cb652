package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds each request when WithTimeout is not given. It is
// above the server's own budget for a graceful leave (30s).
const DefaultTimeout = time.Minute

// maxResponseBytes bounds what the client reads of one response: a routing
// table of the largest partition count fits well within it.
const maxResponseBytes = 64 << 20

// Client talks to one olric-raft member over HTTP. It is safe for
// concurrent use.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	hc      *http.Client
	timeout time.Duration
	token   string // "": no Authorization header
	// tlsConfig, from WithTLS, is applied to hc's transport by New.
	tlsConfig *tls.Config
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc (for TLS,
// proxies, custom transports). Nil keeps the default.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout bounds every request to d, on top of the caller's context.
// Zero or negative means no bound other than the context's.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithToken makes the Client send "Authorization: Bearer token" with every
// request, for members started with --auth-tokens. The token's role
// (read, write or admin) decides what the member allows: without a token,
// or with an unknown one, it answers 401 (code unauthorized); with a role
// too weak, 403 (code forbidden). Empty means no header. The token is
// never part of an error.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// New returns a client of the member at address: a URL such as
// "http://127.0.0.1:3380" or "https://host/prefix", or a bare "host:port"
// (http is assumed).
func New(address string, opts ...Option) (*Client, error) {
	base, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, hc: &http.Client{}, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	c.applyTLS()
	return c, nil
}

func parseAddress(address string) (string, error) {
	address = strings.TrimSpace(address)
	if address == "" {
		return "", fmt.Errorf("%w: empty address", ErrInvalidAddress)
	}
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	u, err := url.Parse(address)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidAddress, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%w: %q: scheme must be http or https", ErrInvalidAddress, address)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("%w: %q: no host", ErrInvalidAddress, address)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: %q: only scheme, host, port and path are allowed", ErrInvalidAddress, address)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// Address returns the base URL requests go to.
func (c *Client) Address() string { return c.base }

// Routing returns the committed routing table of the member.
func (c *Client) Routing(ctx context.Context) (*Routing, error) {
	var out Routing
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/routing", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Partition returns the routing table with only partition id in
// Partitions (members and settings are complete).
func (c *Client) Partition(ctx context.Context, id uint32) (*Routing, error) {
	var out Routing
	q := url.Values{"partition": {strconv.FormatUint(uint64(id), 10)}}
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/routing", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Members returns the members as the member sees them.
func (c *Client) Members(ctx context.Context) (*Members, error) {
	var out Members
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/members", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leader returns the Raft leader; an *APIError with code no_leader when
// none is known.
func (c *Client) Leader(ctx context.Context) (*Leader, error) {
	var out Leader
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/leader", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Locate returns the partition of key in dmap and its owners.
func (c *Client) Locate(ctx context.Context, dmap, key string) (*Location, error) {
	var out Location
	q := url.Values{"dmap": {dmap}, "key": {key}}
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/locate", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status returns the member's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready reports whether the member is ready (GET /readyz): true when it
// is, false with a nil error when it answered that it is not (503), and an
// error when it could not be asked or answered otherwise.
func (c *Client) Ready(ctx context.Context) (bool, error) {
	var out struct {
		Ready bool `json:"ready"`
	}
	err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, &out)
	if err == nil {
		return out.Ready, nil
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
		return false, nil
	}
	return false, err
}

// Join asks the member to contact existing members at their gossip
// addresses (host:port); it returns how many it reached.
func (c *Client) Join(ctx context.Context, addrs []string) (int, error) {
	var out struct {
		Joined int `json:"joined"`
	}
	in := struct {
		Addrs []string `json:"addrs"`
	}{addrs}
	if err := c.do(ctx, http.MethodPost, "/v1/cluster/join", nil, in, &out); err != nil {
		return 0, err
	}
	return out.Joined, nil
}

// Leave makes the member leave the cluster gracefully (hand over its
// partitions and leadership, leave Raft and gossip) and exit.
func (c *Client) Leave(ctx context.Context) error {
	var out struct {
		Left bool `json:"left"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/cluster/leave", nil, nil, &out); err != nil {
		return err
	}
	if !out.Left {
		return fmt.Errorf("%w: leave answered without \"left\": true", ErrUnexpectedResponse)
	}
	return nil
}

// Remove forces the dead member id out of the cluster. The cluster refuses
// (code member_alive) while the member is alive: use Leave on it instead.
func (c *Client) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty node id", ErrInvalidArgument)
	}
	return c.do(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, nil, nil)
}

// ForceAssign is the operator's data-loss escape hatch: it gives
// unavailable partitions (no replica left) new, EMPTY owners so that they
// are served again; whatever they held is gone for good. partitions lists
// the partitions to force (nil or empty: every unavailable partition);
// node names their new owner, an alive member (empty: the leader picks
// balanced owners). The cluster refuses (code partition_available) a
// partition that still has a primary, and answers not_found for a node that
// is not an alive member. The result lists the partitions forced (none when
// nothing was unavailable) and the routing version that serves them.
func (c *Client) ForceAssign(ctx context.Context, partitions []uint32, node string) (*ForceAssignResult, error) {
	in := struct {
		Partitions []uint32 `json:"partitions,omitempty"`
		Node       string   `json:"node,omitempty"`
	}{partitions, node}
	var out ForceAssignResult
	if err := c.do(ctx, http.MethodPost, "/v1/cluster/partitions/force-assign", nil, in, &out); err != nil {
		return nil, err
	}
	if out.Partitions == nil {
		out.Partitions = []uint32{}
	}
	return &out, nil
}

// do sends one request and decodes a 2xx JSON answer into out (if not
// nil); any other answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if raw, ok := in.(rawJSON); ok {
		body = bytes.NewReader(raw)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err // *url.Error; wraps context errors
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("client: reading response of %s %s: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("%w: response of %s %s is larger than %d bytes", ErrUnexpectedResponse, method, path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnexpectedResponse, method, path, err)
	}
	return nil
}
