package transport

import (
	"context"
	"errors"
)

// Sentinel errors. Every error this package returns wraps one of these (or a
// context error); test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Mux, Client or
	// per-kind listener.
	ErrClosed = errors.New("transport: closed")

	// ErrUnreachable means the peer could not be reached: the dial failed,
	// the kind byte could not be written, or fault injection cuts the link.
	// A request that fails with ErrUnreachable was certainly not delivered,
	// so it is safe to retry.
	ErrUnreachable = errors.New("transport: unreachable")

	// ErrConnLost means the connection broke while the call was in flight.
	// The request may or may not have been executed (indeterminate).
	ErrConnLost = errors.New("transport: connection lost")

	// ErrTimeout means the caller's deadline passed before a response came
	// back. The request may or may not have been executed (indeterminate).
	// Errors wrapping it also wrap context.DeadlineExceeded.
	ErrTimeout = errors.New("transport: timeout")

	// ErrFrameTooLarge is returned for a frame whose length exceeds the
	// configured maximum; nothing is sent, or the connection that announced
	// it is closed.
	ErrFrameTooLarge = errors.New("transport: frame too large")

	// ErrMalformed is returned when a frame's envelope cannot be decoded.
	ErrMalformed = errors.New("transport: malformed frame")

	// ErrUnknownKind is returned by Dial for a kind byte other than KindRaft
	// or KindRPC.
	ErrUnknownKind = errors.New("transport: unknown connection kind")

	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("transport: invalid config")

	// ErrTLSConfig wraps every problem with TLS files found by
	// NewTLSProvider and TLSProvider.Reload.
	ErrTLSConfig = errors.New("transport: bad TLS material")

	// ErrHandshake means a TLS handshake on the cluster port failed: the
	// peer's certificate was refused, or the peer refused ours, or the
	// peer does not speak TLS. Dial wraps it together with ErrUnreachable.
	ErrHandshake = errors.New("transport: TLS handshake failed")

	// ErrGossipKey wraps every problem LoadGossipKey finds.
	ErrGossipKey = errors.New("transport: bad gossip key")
)

// Stable error codes carried in RPC responses. Handlers may use their own
// codes too (the data plane adds not_found, stale_routing, ...); these are the
// ones this package produces itself.
const (
	// CodeInternal is sent for a handler error that is not a RemoteError.
	CodeInternal = "internal"
	// CodeDeadlineExceeded is sent when the request's deadline passed
	// before or while the handler ran.
	CodeDeadlineExceeded = "deadline_exceeded"
	// CodeCanceled is sent when the handler returned context.Canceled.
	CodeCanceled = "canceled"
	// CodeFrameTooLarge is sent when the handler's response exceeds the
	// server's maximum frame size.
	CodeFrameTooLarge = "frame_too_large"
)

// RemoteError is an error that crossed the wire: a handler returns it (as a
// value or a pointer, possibly wrapped) to send a stable code, and
// Client.Call returns it as *RemoteError. Any other handler error arrives as
// code CodeInternal with the error's text as Message.
type RemoteError struct {
	Code    string
	Message string
}

// Error implements error.
func (e RemoteError) Error() string {
	if e.Message == "" {
		return "transport: remote error " + e.Code
	}
	return "transport: remote error " + e.Code + ": " + e.Message
}

// Is reports a remote deadline_exceeded as ErrTimeout and
// context.DeadlineExceeded, so callers handle a deadline that fired on either
// side the same way.
func (e RemoteError) Is(target error) bool {
	return e.Code == CodeDeadlineExceeded &&
		(target == ErrTimeout || target == context.DeadlineExceeded)
}

// errorCode maps a handler error to its wire code and message.
func errorCode(err error) (code, msg string) {
	var rp *RemoteError
	if errors.As(err, &rp) && rp != nil {
		return codeOr(rp.Code), rp.Message
	}
	var rv RemoteError
	if errors.As(err, &rv) {
		return codeOr(rv.Code), rv.Message
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded, err.Error()
	case errors.Is(err, context.Canceled):
		return CodeCanceled, err.Error()
	}
	return CodeInternal, err.Error()
}

func codeOr(code string) string {
	if code == "" {
		return CodeInternal
	}
	return code
}
