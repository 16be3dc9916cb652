package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ScanAllPageSize is the page size ScanAll asks for.
const ScanAllPageSize = 1000

// Entry is a value read from a DMap.
type Entry struct {
	// Value is the stored bytes, exactly as written.
	Value []byte
	// JSON reports that Value is JSON text (the server sent it as "value");
	// false means arbitrary bytes (sent as "value_base64").
	JSON bool
	// Version is the key's version: it changes with every write of the
	// key and only grows. Zero for getput's previous value.
	Version uint64
	// TTL is the remaining time to live, to the millisecond rounded up;
	// zero means no expiry.
	TTL time.Duration
}

// PutOption modifies a Put.
type PutOption func(*putOptions)

type putOptions struct {
	ttl       time.Duration
	nx, xx    bool
	ifVersion *uint64
}

// WithTTL makes the key expire after d (rounded up to a millisecond; zero
// means no expiry, which is also the default: a put without WithTTL
// removes a previous expiry).
func WithTTL(d time.Duration) PutOption { return func(o *putOptions) { o.ttl = d } }

// NX makes the put happen only if the key does not exist (else an
// *APIError with code key_exists).
func NX() PutOption { return func(o *putOptions) { o.nx = true } }

// XX makes the put happen only if the key exists (else an *APIError with
// code not_found).
func XX() PutOption { return func(o *putOptions) { o.xx = true } }

// IfVersion makes the put a compare-and-set: it happens only if the key's
// version is v, where 0 means "the key must not exist" (else an *APIError
// with code version_mismatch).
func IfVersion(v uint64) PutOption { return func(o *putOptions) { o.ifVersion = &v } }

// requestIDKey is the context key of ContextWithRequestID.
type requestIDKey struct{}

// ContextWithRequestID returns a context whose requests carry the request
// id id (header X-Request-Id): a write retried with the same id is applied
// at most once. Use it to retry a write that timed out (code timeout).
func ContextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// Put stores value under key in dmap and returns the key's new version.
// Value is sent as JSON text when it is JSON text (see IsJSONText), else
// in base64; either way it is stored and read back byte for byte.
func (c *Client) Put(ctx context.Context, dmap, key string, value []byte, opts ...PutOption) (uint64, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return 0, err
	}
	var o putOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.ttl < 0:
		return 0, fmt.Errorf("%w: negative TTL %s", ErrInvalidArgument, o.ttl)
	case o.nx && o.xx:
		return 0, fmt.Errorf("%w: NX and XX exclude each other", ErrInvalidArgument)
	case o.ifVersion != nil && (o.nx || o.xx):
		return 0, fmt.Errorf("%w: IfVersion with NX or XX (IfVersion(0) means the key must not exist)", ErrInvalidArgument)
	}
	b := appendValue(append(make([]byte, 0, len(value)*4/3+64), '{'), "value", value)
	if o.ttl > 0 {
		b = strconv.AppendInt(append(b, `,"ttl_ms":`...), millis(o.ttl), 10)
	}
	if o.nx {
		b = append(b, `,"nx":true`...)
	}
	if o.xx {
		b = append(b, `,"xx":true`...)
	}
	if o.ifVersion != nil {
		b = strconv.AppendUint(append(b, `,"if_version":`...), *o.ifVersion, 10)
	}
	b = append(b, '}')
	var out struct {
		Version uint64 `json:"version"`
	}
	if err := c.do(ctx, http.MethodPut, p, nil, rawJSON(b), &out); err != nil {
		return 0, err
	}
	return out.Version, nil
}

// PutJSON stores v encoded as JSON (without HTML escaping) under key; see
// Put.
func (c *Client) PutJSON(ctx context.Context, dmap, key string, v any, opts ...PutOption) (uint64, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return 0, fmt.Errorf("%w: encoding the value: %v", ErrInvalidArgument, err)
	}
	return c.Put(ctx, dmap, key, bytes.TrimSuffix(buf.Bytes(), []byte("\n")), opts...)
}

// Get returns the value of key in dmap; an *APIError with code not_found
// when there is none.
func (c *Client) Get(ctx context.Context, dmap, key string) (*Entry, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return nil, err
	}
	var out struct {
		Value       json.RawMessage `json:"value"`
		ValueBase64 *string         `json:"value_base64"`
		Version     uint64          `json:"version"`
		TTLMs       int64           `json:"ttl_ms"`
	}
	if err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	e, err := entryOf("value", out.Value, out.ValueBase64)
	if err != nil {
		return nil, err
	}
	e.Version, e.TTL = out.Version, time.Duration(out.TTLMs)*time.Millisecond
	return e, nil
}

// Delete removes key from dmap and reports whether it existed.
func (c *Client) Delete(ctx context.Context, dmap, key string) (bool, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return false, err
	}
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if err := c.do(ctx, http.MethodDelete, p, nil, nil, &out); err != nil {
		return false, err
	}
	return out.Deleted, nil
}

// Incr adds delta (negative to decrement) to the integer stored under key
// (a missing key counts as 0) and returns the new value and version. Codes
// not_a_number and overflow when the value is not an integer or the sum
// does not fit an int64.
func (c *Client) Incr(ctx context.Context, dmap, key string, delta int64) (int64, uint64, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return 0, 0, err
	}
	in := struct {
		Delta int64 `json:"delta"`
	}{delta}
	var out struct {
		Value   int64  `json:"value"`
		Version uint64 `json:"version"`
	}
	if err := c.do(ctx, http.MethodPost, p+"/incr", nil, in, &out); err != nil {
		return 0, 0, err
	}
	return out.Value, out.Version, nil
}

// IncrByFloat adds delta to the number stored under key (a missing key
// counts as 0) and returns the new value and version.
func (c *Client) IncrByFloat(ctx context.Context, dmap, key string, delta float64) (float64, uint64, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return 0, 0, err
	}
	in := struct {
		Delta float64 `json:"delta"`
	}{delta}
	var out struct {
		Value   float64 `json:"value"`
		Version uint64  `json:"version"`
	}
	if err := c.do(ctx, http.MethodPost, p+"/incrbyfloat", nil, in, &out); err != nil {
		return 0, 0, err
	}
	return out.Value, out.Version, nil
}

// Expire sets the time to live of key to ttl (rounded up to a
// millisecond; zero removes the expiry) and reports whether the key
// exists.
func (c *Client) Expire(ctx context.Context, dmap, key string, ttl time.Duration) (bool, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return false, err
	}
	if ttl < 0 {
		return false, fmt.Errorf("%w: negative TTL %s", ErrInvalidArgument, ttl)
	}
	in := struct {
		TTLMs int64 `json:"ttl_ms"`
	}{millis(ttl)}
	var out struct {
		Found bool `json:"found"`
	}
	if err := c.do(ctx, http.MethodPost, p+"/expire", nil, in, &out); err != nil {
		return false, err
	}
	return out.Found, nil
}

// GetPut stores value under key and returns the value it replaced (nil
// when the key did not exist; its Version and TTL are not known and zero)
// and the key's new version.
func (c *Client) GetPut(ctx context.Context, dmap, key string, value []byte) (*Entry, uint64, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return nil, 0, err
	}
	b := appendValue(append(make([]byte, 0, len(value)*4/3+16), '{'), "value", value)
	b = append(b, '}')
	var out struct {
		Previous       json.RawMessage `json:"previous"`
		PreviousBase64 *string         `json:"previous_base64"`
		Found          bool            `json:"found"`
		Version        uint64          `json:"version"`
	}
	if err := c.do(ctx, http.MethodPost, p+"/getput", nil, rawJSON(b), &out); err != nil {
		return nil, 0, err
	}
	if !out.Found {
		return nil, out.Version, nil
	}
	prev, err := entryOf("previous", out.Previous, out.PreviousBase64)
	if err != nil {
		return nil, 0, err
	}
	return prev, out.Version, nil
}

// Lock takes the lock named key in dmap and returns its fencing token (it
// grows with every holder: send it along with what the lock protects).
// The lock expires after ttl unless extended with Lease (zero: the
// cluster's default lease, 30s). Lock waits up to wait (at most 30s) for
// the current holder (zero: try once); then it fails with an *APIError with
// code locked. Locks are a namespace apart from values: locking key does
// not touch the value stored under key.
func (c *Client) Lock(ctx context.Context, dmap, key string, ttl, wait time.Duration) (uint64, error) {
	p, err := keyPath(dmap, key)
	if err != nil {
		return 0, err
	}
	if ttl < 0 || wait < 0 {
		return 0, fmt.Errorf("%w: negative TTL %s or wait %s", ErrInvalidArgument, ttl, wait)
	}
	in := struct {
		TTLMs  int64 `json:"ttl_ms"`
		WaitMs int64 `json:"wait_ms"`
	}{millis(ttl), millis(wait)}
	var out struct {
		Token uint64 `json:"token"`
	}
	if err := c.do(ctx, http.MethodPost, p+"/lock", nil, in, &out); err != nil {
		return 0, err
	}
	return out.Token, nil
}

// Unlock releases the lock held with token; an *APIError with code
// no_such_lock if the lock is not held with it (released, or expired).
func (c *Client) Unlock(ctx context.Context, dmap, key string, token uint64) error {
	p, err := keyPath(dmap, key)
	if err != nil {
		return err
	}
	in := struct {
		Token uint64 `json:"token"`
	}{token}
	return c.do(ctx, http.MethodPost, p+"/unlock", nil, in, nil)
}

// Lease makes the lock held with token expire ttl from now (zero: the
// default lease, 30s); an *APIError with code no_such_lock if the lock is
// not held with it.
func (c *Client) Lease(ctx context.Context, dmap, key string, token uint64, ttl time.Duration) error {
	p, err := keyPath(dmap, key)
	if err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("%w: negative TTL %s", ErrInvalidArgument, ttl)
	}
	in := struct {
		Token uint64 `json:"token"`
		TTLMs int64  `json:"ttl_ms"`
	}{token, millis(ttl)}
	return c.do(ctx, http.MethodPost, p+"/lease", nil, in, nil)
}

// Scan returns one page of the keys of dmap that match the glob match
// (Redis syntax: * ? [abc] \x; empty: every key), at most limit of them
// (zero: the server's default, 100), from cursor ("" to start), and the
// cursor of the next page: "" when done. A page may hold fewer keys than
// limit, even none, before the end: go on until the cursor is "". Keys
// written or deleted during a scan may or may not be listed; the others
// are listed exactly once.
func (c *Client) Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error) {
	if dmap == "" {
		return nil, "", fmt.Errorf("%w: empty DMap name", ErrInvalidArgument)
	}
	if limit < 0 {
		return nil, "", fmt.Errorf("%w: negative limit %d", ErrInvalidArgument, limit)
	}
	q := url.Values{}
	if match != "" {
		q.Set("match", match)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Keys   []string `json:"keys"`
		Cursor string   `json:"cursor"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/dmaps/"+escapeSegment(dmap)+"/keys", q, nil, &out); err != nil {
		return nil, "", err
	}
	if out.Keys == nil {
		out.Keys = []string{}
	}
	return out.Keys, out.Cursor, nil
}

// ScanAll iterates over every key of dmap matching match, page by page
// (ScanAllPageSize keys a page). On an error it yields ("", err) and
// stops; breaking out of the loop stops the scan.
//
//	for key, err := range c.ScanAll(ctx, "users", "user:*") {
//		if err != nil { ... }
//	}
func (c *Client) ScanAll(ctx context.Context, dmap, match string) iter.Seq2[string, error] {
	return scanAll(ctx, dmap, match, c.Scan)
}

// scanAll pages through scan until the cursor is done, yielding each key.
func scanAll(ctx context.Context, dmap, match string,
	scan func(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error)) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		cursor := ""
		for {
			keys, next, err := scan(ctx, dmap, match, cursor, ScanAllPageSize)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range keys {
				if !yield(k, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// Destroy removes every key of dmap.
func (c *Client) Destroy(ctx context.Context, dmap string) error {
	if dmap == "" {
		return fmt.Errorf("%w: empty DMap name", ErrInvalidArgument)
	}
	var out struct {
		Destroyed bool `json:"destroyed"`
	}
	if err := c.do(ctx, http.MethodDelete, "/v1/dmaps/"+escapeSegment(dmap), nil, nil, &out); err != nil {
		return err
	}
	if !out.Destroyed {
		return fmt.Errorf("%w: destroy answered without \"destroyed\": true", ErrUnexpectedResponse)
	}
	return nil
}

// rawJSON is a request body already encoded (do sends it as is).
type rawJSON []byte

// keyPath is the path of key in dmap, each one escaped path segment.
func keyPath(dmap, key string) (string, error) {
	switch {
	case dmap == "":
		return "", fmt.Errorf("%w: empty DMap name", ErrInvalidArgument)
	case key == "":
		return "", fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	return "/v1/dmaps/" + escapeSegment(dmap) + "/keys/" + escapeSegment(key), nil
}

// escapeSegment escapes s as one path segment: '/' too, and the dot
// segments "." and ".." (which URL resolution would remove).
func escapeSegment(s string) string {
	e := url.PathEscape(s)
	if e == "." || e == ".." {
		return strings.ReplaceAll(e, ".", "%2E")
	}
	return e
}

// millis is d in whole milliseconds, rounded up (so that a positive
// duration never becomes 0, which means "none").
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// IsJSONText reports whether v is sent (and read back) as JSON text rather
// than base64: valid UTF-8 JSON with no whitespace around it, which a
// JSON decoder hands back byte for byte.
func IsJSONText(v []byte) bool {
	if len(v) == 0 || isJSONSpace(v[0]) || isJSONSpace(v[len(v)-1]) {
		return false
	}
	return utf8.Valid(v) && json.Valid(v)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendValue appends `"name":<v>` when v is JSON text, else
// `"name_base64":"<base64>"`.
func appendValue(dst []byte, name string, v []byte) []byte {
	if IsJSONText(v) {
		dst = append(append(append(dst, '"'), name...), `":`...)
		return append(dst, v...)
	}
	dst = append(append(append(dst, '"'), name...), `_base64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

// entryOf decodes a value the server sent as JSON (raw) or base64.
func entryOf(name string, raw json.RawMessage, b64 *string) (*Entry, error) {
	switch {
	case raw != nil:
		return &Entry{Value: []byte(raw), JSON: true}, nil
	case b64 != nil:
		v, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%w: \"%s_base64\": %v", ErrUnexpectedResponse, name, err)
		}
		return &Entry{Value: v}, nil
	}
	return nil, fmt.Errorf("%w: neither \"%s\" nor \"%s_base64\" in the answer", ErrUnexpectedResponse, name, name)
}
