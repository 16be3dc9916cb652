package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Error codes: the stable "code" of an error response. Clients switch on
// these, never on messages.
const (
	// CodeBadRequest (400): malformed or invalid input.
	CodeBadRequest = "bad_request"
	// CodeNotFound (404): no such path, member or partition.
	CodeNotFound = "not_found"
	// CodeMethodNotAllowed (405): the path exists for other methods (see
	// the Allow header).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeMemberAlive (409): remove was asked for a live member.
	CodeMemberAlive = "member_alive"
	// CodePartitionAvailable (409): force-assign was asked for a partition
	// that still has a primary.
	CodePartitionAvailable = "partition_available"
	// CodeQuorumAtRisk (409): the change (a voter leaving) would leave Raft
	// without a reachable majority of voters; bring the others back first.
	CodeQuorumAtRisk = "quorum_at_risk"
	// CodeTooLarge (413): the request body exceeds the limit.
	CodeTooLarge = "too_large"
	// CodeInternal (500): a bug; never caused by client input.
	CodeInternal = "internal"
	// CodeJoinFailed (502): none of the join addresses could be reached.
	CodeJoinFailed = "join_failed"
	// CodeNoLeader (503): no Raft leader is known.
	CodeNoLeader = "no_leader"
	// CodeNotReady (503): the node has not caught up with the leader, or
	// routing is not initialized.
	CodeNotReady = "not_ready"
	// CodeNotLeader (503): the operation needs the leader, which could not
	// be reached from this node.
	CodeNotLeader = "not_leader"
	// CodeTimeout (503): the operation did not finish in time; it may still
	// take effect.
	CodeTimeout = "timeout"
	// CodeLeaving (503): this node is leaving the cluster.
	CodeLeaving = "leaving"
	// CodeClosed (503): this node is shut down.
	CodeClosed = "closed"
	// CodeUnavailable (503): the routing table is not initialized yet, or
	// (data plane) the key's partition has no primary that can serve now.
	CodeUnavailable = "unavailable"

	// Codes of the data plane (/v1/dmaps/...), equal to dataplane's wire
	// codes. CodeNotFound (404) also means "no such key", CodeBadRequest
	// and CodeTooLarge keep their meaning, CodeTimeout (503) means the
	// write may or may not have happened (retry with the same request id).

	// CodeKeyExists (409): a put with nx (or if_version 0) found the key.
	CodeKeyExists = dataplane.CodeKeyExists
	// CodeVersionMismatch (409): a put with if_version found another
	// version.
	CodeVersionMismatch = dataplane.CodeVersionMismatch
	// CodeNotANumber (409): incr on a value that is not an integer
	// (incrbyfloat: not a number).
	CodeNotANumber = dataplane.CodeNotANumber
	// CodeOverflow (409): incr would overflow int64, or incrbyfloat would
	// give an infinity or NaN.
	CodeOverflow = dataplane.CodeOverflow
	// CodeLocked (409): the lock was not acquired within wait_ms.
	CodeLocked = dataplane.CodeLocked
	// CodeNoSuchLock (409): unlock or lease with a token that does not hold
	// the lock (never did, released, or expired).
	CodeNoSuchLock = dataplane.CodeNoSuchLock
	// CodeOverloaded (503): too many requests in flight; retry later.
	CodeOverloaded = dataplane.CodeOverloaded
	// CodeFull (507): the write would take the DMap over its configured
	// max_keys or max_bytes and its eviction policy is "none".
	CodeFull = dataplane.CodeFull
)

// indeterminateNote is appended to the message of a data-plane write that
// timed out.
const indeterminateNote = " (the write may or may not have happened; retry with the same request id)"

// retryAfterSeconds is the Retry-After of every 503.
const retryAfterSeconds = "1"

// apiError is an error with its HTTP status and wire code, made by the
// handlers for input they reject and by mapError for everything else.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, CodeBadRequest, format, args...)
}

// sentinelCodes maps errors of the node (and of metadata, which the node
// may wrap) to statuses and codes, in priority order: the first match wins.
// ErrClosed and ErrLeaving come first because they explain any other failure
// of a node that is going away.
var sentinelCodes = []struct {
	err    error
	status int
	code   string
}{
	{node.ErrClosed, http.StatusServiceUnavailable, CodeClosed},
	{node.ErrLeaving, http.StatusServiceUnavailable, CodeLeaving},
	// The data plane's sentinels, more precise than the node's for a key
	// operation. An indeterminate write is a timeout, whatever caused it.
	{dataplane.ErrIndeterminate, http.StatusServiceUnavailable, CodeTimeout},
	{dataplane.ErrNotFound, http.StatusNotFound, CodeNotFound},
	{dataplane.ErrKeyExists, http.StatusConflict, CodeKeyExists},
	{dataplane.ErrVersionMismatch, http.StatusConflict, CodeVersionMismatch},
	{dataplane.ErrNotANumber, http.StatusConflict, CodeNotANumber},
	{dataplane.ErrOverflow, http.StatusConflict, CodeOverflow},
	{dataplane.ErrLocked, http.StatusConflict, CodeLocked},
	{dataplane.ErrNoSuchLock, http.StatusConflict, CodeNoSuchLock},
	{dataplane.ErrInvalid, http.StatusBadRequest, CodeBadRequest},
	{dataplane.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{dataplane.ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable},
	{dataplane.ErrOverloaded, http.StatusServiceUnavailable, CodeOverloaded},
	{dataplane.ErrFull, http.StatusInsufficientStorage, CodeFull},
	// The service retries these itself (or they belong to replication);
	// should one escape, the client sees what it means for it: no primary
	// could serve, retry later.
	{dataplane.ErrStaleRouting, http.StatusServiceUnavailable, CodeUnavailable},
	{dataplane.ErrFencedEpoch, http.StatusServiceUnavailable, CodeUnavailable},
	{dataplane.ErrSeqGap, http.StatusServiceUnavailable, CodeUnavailable},
	{node.ErrInvalidArgument, http.StatusBadRequest, CodeBadRequest},
	{metadata.ErrInvalidNodeID, http.StatusBadRequest, CodeBadRequest},
	{node.ErrUnknownMember, http.StatusNotFound, CodeNotFound},
	{metadata.ErrUnknownMember, http.StatusNotFound, CodeNotFound},
	{node.ErrMemberAlive, http.StatusConflict, CodeMemberAlive},
	{node.ErrPartitionAvailable, http.StatusConflict, CodePartitionAvailable},
	{node.ErrQuorumAtRisk, http.StatusConflict, CodeQuorumAtRisk},
	{node.ErrJoinFailed, http.StatusBadGateway, CodeJoinFailed},
	{node.ErrNoLeader, http.StatusServiceUnavailable, CodeNoLeader},
	{node.ErrNotLeader, http.StatusServiceUnavailable, CodeNotLeader},
	{node.ErrNotReady, http.StatusServiceUnavailable, CodeNotReady},
	{node.ErrTimeout, http.StatusServiceUnavailable, CodeTimeout},
	// A deadline or cancellation from our own budgets or the client: like
	// ErrTimeout, the operation may still take effect.
	{context.DeadlineExceeded, http.StatusServiceUnavailable, CodeTimeout},
	{context.Canceled, http.StatusServiceUnavailable, CodeTimeout},
}

// mapError turns any error into an apiError. Unknown errors become 500
// internal: they are bugs (the node returned an error outside its contract).
func (a *api) mapError(r *http.Request, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body is larger than %d bytes", mbe.Limit)
	}
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			msg := err.Error()
			switch {
			case errors.Is(err, dataplane.ErrIndeterminate):
				msg += indeterminateNote
			case s.code == CodeTimeout:
				msg += " (the operation may still take effect)"
			}
			return &apiError{status: s.status, code: s.code, message: msg}
		}
	}
	a.log.Error("httpapi: unmapped error", "method", r.Method, "path", r.URL.Path, "err", err)
	return errorf(http.StatusInternalServerError, CodeInternal, "internal error: %v", err)
}

// errorBody is the wire form of an error: {"error":{"code","message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with the status and code of err.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := a.mapError(r, err)
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	a.writeJSON(w, ae.status, errorBody{Error: errorDetail{Code: ae.code, Message: ae.message}})
}
