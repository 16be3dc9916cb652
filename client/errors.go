package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors of package client; test with errors.Is. Errors the server
// answered are *APIError instead (use errors.As).
var (
	// ErrInvalidAddress: the address given to New is not usable.
	ErrInvalidAddress = errors.New("client: invalid address")
	// ErrInvalidArgument: an argument was rejected before sending.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrUnexpectedResponse: a 2xx answer that is not what the API
	// specifies (not JSON, too large, missing fields).
	ErrUnexpectedResponse = errors.New("client: unexpected response")
	// ErrInvalidTLS: the files given to LoadTLSConfig are not usable.
	ErrInvalidTLS = errors.New("client: invalid TLS files")
)

// Error codes the server answers with (APIError.Code). They are stable;
// switch on them, not on messages.
const (
	CodeBadRequest         = "bad_request"         // 400: invalid input
	CodeNotFound           = "not_found"           // 404: no such path, member or partition
	CodeMethodNotAllowed   = "method_not_allowed"  // 405
	CodeMemberAlive        = "member_alive"        // 409: remove of a live member; use leave on it
	CodePartitionAvailable = "partition_available" // 409: force-assign of a partition that still has a primary
	CodeQuorumAtRisk       = "quorum_at_risk"      // 409: a voter leaving would leave Raft without a reachable majority
	CodeUnauthorized       = "unauthorized"        // 401: no token, or an unknown one (WithToken)
	CodeForbidden          = "forbidden"           // 403: the token's role is too weak; the message names the role needed
	CodeTooLarge           = "too_large"           // 413: request body too large
	CodeInternal           = "internal"            // 500: a server bug
	CodeJoinFailed         = "join_failed"         // 502: no join address reachable
	CodeNoLeader           = "no_leader"           // 503: no Raft leader known
	CodeNotReady           = "not_ready"           // 503: node catching up or routing not initialized
	CodeNotLeader          = "not_leader"          // 503: the leader could not be reached
	CodeTimeout            = "timeout"             // 503: timed out; may still take effect
	CodeLeaving            = "leaving"             // 503: the node is leaving
	CodeClosed             = "closed"              // 503: the node is shut down
	CodeUnavailable        = "unavailable"         // 503: routing not initialized / the key's partition has no primary
	CodeOverloaded         = "overloaded"          // 503: too many requests in flight; retry later

	// Codes of the DMap operations (besides not_found: no such key,
	// bad_request, too_large: key or value over its limit, timeout: a write
	// that may or may not have happened, unavailable, overloaded).
	CodeKeyExists       = "key_exists"       // 409: Put with NX on an existing key
	CodeVersionMismatch = "version_mismatch" // 409: Put with IfVersion found another version
	CodeNotANumber      = "not_a_number"     // 409: Incr on a value that is not an integer
	CodeOverflow        = "overflow"         // 409: Incr would overflow int64 (IncrByFloat: not finite)
	CodeLocked          = "locked"           // 409: Lock not acquired within its wait
	CodeNoSuchLock      = "no_such_lock"     // 409: Unlock/Lease with a token that does not hold the lock
	CodeFull            = "full"             // 507: the DMap is at its max_keys/max_bytes and does not evict
	// CodeHTTP is set by the client when a non-2xx answer carries no error
	// body of the API (a proxy answered, for example).
	CodeHTTP = "http_error"
)

// APIError is an error answered by the server: its HTTP status, its stable
// code and message, and how long to wait before retrying (from
// Retry-After; zero when absent).
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("olric-raft: %s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// Temporary reports whether retrying later may succeed (HTTP 503).
func (e *APIError) Temporary() bool { return e.Status == http.StatusServiceUnavailable }

// IsCode reports whether err is an *APIError with the given code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// newAPIError builds the error of a non-2xx answer.
func newAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	var wire struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &wire); err == nil && wire.Error.Code != "" {
		e.Code, e.Message = wire.Error.Code, wire.Error.Message
		return e
	}
	e.Code = CodeHTTP
	e.Message = http.StatusText(resp.StatusCode)
	if snippet := strings.TrimSpace(string(body)); snippet != "" && utf8.ValidString(snippet) {
		if len(snippet) > 200 {
			snippet = snippet[:200] + "..."
		}
		e.Message += ": " + snippet
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero if absent or
// malformed.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
