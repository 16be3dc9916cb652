package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/node"
)

// Data-plane limits of the API besides dataplane's (see doc.go).
const (
	// defaultScanLimit is the page size of a scan without ?limit.
	defaultScanLimit = 100
	// maxMatchLen bounds a scan's ?match pattern.
	maxMatchLen = dataplane.MaxKeyLen
	// maxCursorLen bounds a scan's ?cursor (opaque; it may embed a key).
	maxCursorLen = 4 * dataplane.MaxKeyLen
)

// Request bodies of the data routes. Pointers tell an absent (or null)
// field from its zero value where that matters.

type putRequest struct {
	Value       json.RawMessage `json:"value"`
	ValueBase64 *string         `json:"value_base64"`
	TTLMs       int64           `json:"ttl_ms"`
	NX          bool            `json:"nx"`
	XX          bool            `json:"xx"`
	IfVersion   *uint64         `json:"if_version"`
}

type getPutRequest struct {
	Value       json.RawMessage `json:"value"`
	ValueBase64 *string         `json:"value_base64"`
}

type incrRequest struct {
	Delta *int64 `json:"delta"`
}

type incrByFloatRequest struct {
	Delta *float64 `json:"delta"`
}

type expireRequest struct {
	TTLMs *int64 `json:"ttl_ms"`
}

type lockRequest struct {
	TTLMs  int64 `json:"ttl_ms"`
	WaitMs int64 `json:"wait_ms"`
}

type unlockRequest struct {
	Token *uint64 `json:"token"`
}

type leaseRequest struct {
	Token *uint64 `json:"token"`
	TTLMs *int64  `json:"ttl_ms"`
}

// Response bodies with no value in them (those with one are written by
// hand, see appendValue).

type versionResponse struct {
	Version uint64 `json:"version"`
}

type deletedResponse struct {
	Deleted bool `json:"deleted"`
}

type incrResponse struct {
	Value   int64  `json:"value"`
	Version uint64 `json:"version"`
}

type incrByFloatResponse struct {
	Value   float64 `json:"value"`
	Version uint64  `json:"version"`
}

type foundResponse struct {
	Found bool `json:"found"`
}

type tokenResponse struct {
	Token uint64 `json:"token"`
}

type unlockedResponse struct {
	Unlocked bool `json:"unlocked"`
}

type extendedResponse struct {
	Extended bool `json:"extended"`
}

type scanResponse struct {
	Keys   []string `json:"keys"`
	Cursor string   `json:"cursor"`
}

type destroyedResponse struct {
	Destroyed bool `json:"destroyed"`
}

// dmapName returns the {dmap} path value, checked against the limits.
func dmapName(r *http.Request) (string, error) {
	dmap := r.PathValue("dmap")
	if dmap == "" {
		return "", badRequest("the DMap name is empty")
	}
	if len(dmap) > dataplane.MaxDMapNameLen {
		return "", errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"the DMap name is %d bytes long, at most %d allowed", len(dmap), dataplane.MaxDMapNameLen)
	}
	return dmap, nil
}

// newRequest starts the dataplane.Request of a key route: the DMap and
// the key from the path (percent-decoded), the request id from the
// header, all checked against the limits.
func newRequest(r *http.Request, op dataplane.Op) (*dataplane.Request, error) {
	dmap, err := dmapName(r)
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	if key == "" {
		return nil, badRequest("the key is empty")
	}
	if len(key) > dataplane.MaxKeyLen {
		return nil, errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"the key is %d bytes long (after percent-decoding), at most %d allowed", len(key), dataplane.MaxKeyLen)
	}
	rid := r.Header.Get(HeaderRequestID)
	if len(rid) > MaxRequestIDLen {
		return nil, badRequest("the %s header is %d bytes long, at most %d allowed", HeaderRequestID, len(rid), MaxRequestIDLen)
	}
	return &dataplane.Request{Op: op, DMap: dmap, Key: key, RequestID: rid}, nil
}

// duration converts a millisecond field to a duration within [0, max].
func duration(field string, ms int64, limit time.Duration) (time.Duration, error) {
	if ms < 0 {
		return 0, badRequest("%q is %d; want 0 or more milliseconds", field, ms)
	}
	if ms > limit.Milliseconds() {
		return 0, badRequest("%q is %d; at most %d milliseconds (%s) allowed", field, ms, limit.Milliseconds(), limit)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// millis is d in whole milliseconds, rounded up so that a key about to
// expire never shows 0 (which means "no expiry").
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// value returns the bytes to store from a body's "value" (its JSON text,
// byte for byte as sent) or "value_base64" (decoded): exactly one of them.
func (a *api) value(raw json.RawMessage, b64 *string) ([]byte, error) {
	switch {
	case raw != nil && b64 != nil:
		return nil, badRequest(`give either "value" or "value_base64", not both`)
	case raw == nil && b64 == nil:
		return nil, badRequest(`"value" (any JSON) or "value_base64" (bytes in base64) is required`)
	}
	v := []byte(raw)
	if b64 != nil {
		var err error
		if v, err = decodeBase64(*b64); err != nil {
			return nil, badRequest(`"value_base64" is not base64: %v`, err)
		}
	}
	if len(v) > a.maxValue {
		return nil, errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"the value is %d bytes long, at most %d allowed", len(v), a.maxValue)
	}
	return v, nil
}

// decodeBase64 decodes standard base64 (RFC 4648 §4), padded or not.
func decodeBase64(s string) ([]byte, error) {
	if len(s)%4 != 0 {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.StdEncoding.DecodeString(s)
}

// isJSONText reports whether v is shown as JSON ("value") rather than
// base64 ("value_base64"): valid UTF-8 JSON without surrounding
// whitespace, so that a JSON decoder hands back exactly v.
func isJSONText(v []byte) bool {
	if len(v) == 0 || isJSONSpace(v[0]) || isJSONSpace(v[len(v)-1]) {
		return false
	}
	return utf8.Valid(v) && json.Valid(v)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendValue appends the field name with v: `"name":<v>` when v is JSON
// text (byte for byte), else `"name_base64":"<base64>"`.
func appendValue(dst []byte, name string, v []byte) []byte {
	if isJSONText(v) {
		dst = append(append(append(dst, '"'), name...), `":`...)
		return append(dst, v...)
	}
	dst = append(append(append(dst, '"'), name...), `_base64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

// appendString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(dst, b...)
}

// do runs req on the cluster within the data budget (plus the lock's
// wait) and refreshes X-Routing-Version.
func (a *api) do(w http.ResponseWriter, r *http.Request, req *dataplane.Request) (*dataplane.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), dataTimeout+req.Wait)
	defer cancel()
	resp, err := a.c.Do(ctx, req)
	setVersion(w, a.routing().Version)
	if err != nil {
		return nil, dataError(req.Op, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("httpapi: %s answered neither a response nor an error", req.Op)
	}
	return resp, nil
}

// dataError makes a timeout without a data-plane sentinel explicit: for a
// write it is indeterminate (it may have happened), for a read it only
// failed.
func dataError(op dataplane.Op, err error) error {
	if dataplane.CodeOf(err) != "" || errors.Is(err, node.ErrClosed) || errors.Is(err, node.ErrLeaving) {
		return err
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, node.ErrTimeout) {
		return err
	}
	if op.IsWrite() {
		return fmt.Errorf("%w: %s: %w", dataplane.ErrIndeterminate, op, err)
	}
	return errorf(http.StatusServiceUnavailable, CodeTimeout, "%s: %v (nothing was changed; retry)", op, err)
}

// GET /v1/dmaps/{dmap}/keys/{key} → {"key","value"|"value_base64","version","ttl_ms"}
func (a *api) getKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpGet)
	if err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	b := make([]byte, 0, len(resp.Value)*4/3+len(req.Key)+96)
	b = append(b, `{"key":`...)
	b = appendString(b, req.Key)
	b = append(b, ',')
	b = appendValue(b, "value", resp.Value)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, resp.Version, 10)
	b = append(b, `,"ttl_ms":`...)
	b = strconv.AppendInt(b, millis(resp.TTL), 10)
	b = append(b, '}')
	a.writeBody(w, http.StatusOK, b)
	return nil
}

// PUT /v1/dmaps/{dmap}/keys/{key} {"value"|"value_base64","ttl_ms"?,"nx"?,"xx"?,"if_version"?} → {"version"}
func (a *api) putKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpPut)
	if err != nil {
		return err
	}
	var in putRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if req.Value, err = a.value(in.Value, in.ValueBase64); err != nil {
		return err
	}
	if req.TTL, err = duration("ttl_ms", in.TTLMs, dataplane.MaxTTL); err != nil {
		return err
	}
	switch {
	case in.NX && in.XX:
		return badRequest(`"nx" (only if absent) and "xx" (only if present) exclude each other`)
	case in.IfVersion != nil && (in.NX || in.XX):
		return badRequest(`"if_version" already says whether the key must exist; drop "nx"/"xx"`)
	}
	req.NX, req.XX = in.NX, in.XX
	if in.IfVersion != nil {
		req.IfVersion, req.HasIfVersion = *in.IfVersion, true
	}
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, versionResponse{Version: resp.Version})
	return nil
}

// DELETE /v1/dmaps/{dmap}/keys/{key} → {"deleted": bool}
func (a *api) deleteKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpDelete)
	if err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if errors.Is(err, dataplane.ErrNotFound) {
		resp, err = &dataplane.Response{}, nil // deleting nothing is an answer
	}
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, deletedResponse{Deleted: resp.Deleted})
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/incr {"delta"?: n} (default 1) → {"value","version"}
func (a *api) incrKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpIncr)
	if err != nil {
		return err
	}
	var in incrRequest
	if err := a.decodeBodyLimit(w, r, &in, true, a.dataBody); err != nil {
		return err
	}
	req.Delta = 1
	if in.Delta != nil {
		req.Delta = *in.Delta
	}
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, incrResponse{Value: resp.Int, Version: resp.Version})
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/incrbyfloat {"delta": f} → {"value","version"}
func (a *api) incrByFloatKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpIncrByFloat)
	if err != nil {
		return err
	}
	var in incrByFloatRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if in.Delta == nil {
		return badRequest(`"delta" (a number) is required`)
	}
	req.DeltaFloat = *in.Delta
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	if math.IsNaN(resp.Float) || math.IsInf(resp.Float, 0) {
		// JSON has no such numbers; the data plane should have refused.
		return fmt.Errorf("%w: the result %v is not a finite number", dataplane.ErrOverflow, resp.Float)
	}
	a.writeJSON(w, http.StatusOK, incrByFloatResponse{Value: resp.Float, Version: resp.Version})
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/expire {"ttl_ms": n} (0 persists) → {"found": bool}
func (a *api) expireKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpExpire)
	if err != nil {
		return err
	}
	var in expireRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if in.TTLMs == nil {
		return badRequest(`"ttl_ms" is required (0 removes the expiry)`)
	}
	if req.TTL, err = duration("ttl_ms", *in.TTLMs, dataplane.MaxTTL); err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if errors.Is(err, dataplane.ErrNotFound) {
		resp, err = &dataplane.Response{}, nil
	}
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, foundResponse{Found: resp.Found})
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/getput {"value"|"value_base64"} →
// {"previous"|"previous_base64","found","version"}
func (a *api) getPutKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpGetPut)
	if err != nil {
		return err
	}
	var in getPutRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if req.Value, err = a.value(in.Value, in.ValueBase64); err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	b := make([]byte, 0, len(resp.Value)*4/3+96)
	b = append(b, '{')
	if resp.Found {
		b = appendValue(b, "previous", resp.Value)
		b = append(b, `,"found":true`...)
	} else {
		b = append(b, `"previous":null,"found":false`...)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, resp.Version, 10)
	b = append(b, '}')
	a.writeBody(w, http.StatusOK, b)
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/lock {"ttl_ms"?,"wait_ms"?} → {"token"}
func (a *api) lockKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpLock)
	if err != nil {
		return err
	}
	var in lockRequest
	if err := a.decodeBodyLimit(w, r, &in, true, a.dataBody); err != nil {
		return err
	}
	if req.TTL, err = duration("ttl_ms", in.TTLMs, dataplane.MaxTTL); err != nil {
		return err
	}
	if req.Wait, err = duration("wait_ms", in.WaitMs, MaxLockWait); err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, tokenResponse{Token: resp.Token})
	return nil
}

// noSuchLock is the answer to an unlock or lease that held nothing.
func noSuchLock(req *dataplane.Request) error {
	return fmt.Errorf("%w: %s %q in %q with token %d", dataplane.ErrNoSuchLock, req.Op, req.Key, req.DMap, req.Token)
}

// POST /v1/dmaps/{dmap}/keys/{key}/unlock {"token"} → {"unlocked": true}
func (a *api) unlockKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpUnlock)
	if err != nil {
		return err
	}
	var in unlockRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if in.Token == nil {
		return badRequest(`"token" (the token lock answered) is required`)
	}
	req.Token = *in.Token
	resp, err := a.do(w, r, req)
	if errors.Is(err, dataplane.ErrNotFound) || (err == nil && !resp.Found) {
		err = noSuchLock(req)
	}
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, unlockedResponse{Unlocked: true})
	return nil
}

// POST /v1/dmaps/{dmap}/keys/{key}/lease {"token","ttl_ms"} → {"extended": true}
func (a *api) leaseKey(w http.ResponseWriter, r *http.Request) error {
	req, err := newRequest(r, dataplane.OpLease)
	if err != nil {
		return err
	}
	var in leaseRequest
	if err := a.decodeBodyLimit(w, r, &in, false, a.dataBody); err != nil {
		return err
	}
	if in.Token == nil {
		return badRequest(`"token" (the token lock answered) is required`)
	}
	if in.TTLMs == nil {
		return badRequest(`"ttl_ms" (the new lease, from now) is required`)
	}
	req.Token = *in.Token
	if req.TTL, err = duration("ttl_ms", *in.TTLMs, dataplane.MaxTTL); err != nil {
		return err
	}
	resp, err := a.do(w, r, req)
	if errors.Is(err, dataplane.ErrNotFound) || (err == nil && !resp.Found) {
		err = noSuchLock(req)
	}
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, extendedResponse{Extended: true})
	return nil
}

// GET /v1/dmaps/{dmap}/keys?match=&cursor=&limit= → {"keys":[...],"cursor"}
func (a *api) scanKeys(w http.ResponseWriter, r *http.Request) error {
	dmap, err := dmapName(r)
	if err != nil {
		return err
	}
	q, err := query(r)
	if err != nil {
		return err
	}
	match, cursor := q.Get("match"), q.Get("cursor")
	if len(match) > maxMatchLen {
		return badRequest("match is %d bytes long, at most %d allowed", len(match), maxMatchLen)
	}
	if len(cursor) > maxCursorLen {
		return badRequest("cursor is %d bytes long, at most %d allowed; pass the cursor a scan answered", len(cursor), maxCursorLen)
	}
	limit := defaultScanLimit
	if q.Has("limit") {
		s := q.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dataplane.MaxScanLimit {
			return badRequest("limit %q: want a number of keys from 1 to %d", s, dataplane.MaxScanLimit)
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), dataTimeout)
	defer cancel()
	keys, next, err := a.c.Scan(ctx, dmap, match, cursor, limit)
	setVersion(w, a.routing().Version)
	if err != nil {
		return dataError(dataplane.OpScan, err)
	}
	if keys == nil {
		keys = []string{}
	}
	a.writeJSON(w, http.StatusOK, scanResponse{Keys: keys, Cursor: next})
	return nil
}

// DELETE /v1/dmaps/{dmap} → {"destroyed": true}
func (a *api) destroyDMap(w http.ResponseWriter, r *http.Request) error {
	dmap, err := dmapName(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), destroyTimeout)
	defer cancel()
	err = a.c.Destroy(ctx, dmap)
	setVersion(w, a.routing().Version)
	if err != nil {
		return dataError(dataplane.OpDestroy, err)
	}
	a.writeJSON(w, http.StatusOK, destroyedResponse{Destroyed: true})
	return nil
}
