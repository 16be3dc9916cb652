package resp

import (
	"context"
	"errors"
	"strings"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// Error prefixes (the first word of an error reply; clients switch on it).
const (
	PrefixErr             = "ERR"
	PrefixKeyNotFound     = "KEYNOTFOUND" // Olric's ErrKeyNotFound
	PrefixKeyFound        = "KEYFOUND"    // Olric's ErrKeyFound
	PrefixLockNotAcquired = "LOCKNOTACQUIRED"
	PrefixNoSuchLock      = "NOSUCHLOCK"
	PrefixTryAgain        = "TRYAGAIN" // retry later (Redis Cluster's)
	PrefixOOM             = "OOM"
)

// errorPrefixes maps errors to prefixes, in priority order as in the HTTP
// API (closed and leaving first: they explain any other failure).
var errorPrefixes = []struct {
	err    error
	prefix string
	msg    string // replaces the error's text when set
}{
	{node.ErrClosed, PrefixTryAgain, ""},
	{node.ErrLeaving, PrefixTryAgain, ""},
	{dataplane.ErrIndeterminate, PrefixTryAgain, ""},
	{dataplane.ErrNotFound, PrefixKeyNotFound, "key not found"},
	{dataplane.ErrKeyExists, PrefixKeyFound, "key found"},
	{dataplane.ErrVersionMismatch, PrefixErr, ""},
	{dataplane.ErrNotANumber, PrefixErr, "value is not an integer or out of range"},
	{dataplane.ErrOverflow, PrefixErr, "increment or decrement would overflow"},
	{dataplane.ErrLocked, PrefixLockNotAcquired, "lock not acquired"},
	{dataplane.ErrNoSuchLock, PrefixNoSuchLock, "no such lock"},
	{dataplane.ErrInvalid, PrefixErr, ""},
	{dataplane.ErrTooLarge, PrefixErr, ""},
	{dataplane.ErrUnavailable, PrefixTryAgain, ""},
	{dataplane.ErrOverloaded, PrefixTryAgain, ""},
	{dataplane.ErrFull, PrefixOOM, ""},
	{dataplane.ErrStaleRouting, PrefixTryAgain, ""},
	{dataplane.ErrFencedEpoch, PrefixTryAgain, ""},
	{dataplane.ErrSeqGap, PrefixTryAgain, ""},
	{node.ErrInvalidArgument, PrefixErr, ""},
	{metadata.ErrInvalidNodeID, PrefixErr, ""},
	{node.ErrNoLeader, PrefixTryAgain, ""},
	{node.ErrNotLeader, PrefixTryAgain, ""},
	{node.ErrNotReady, PrefixTryAgain, ""},
	{node.ErrTimeout, PrefixTryAgain, ""},
	{context.DeadlineExceeded, PrefixTryAgain, ""},
	{context.Canceled, PrefixTryAgain, ""},
}

// errorReply returns the error reply (without "-") for err.
func (s *Server) errorReply(cmd string, err error) string {
	for _, e := range errorPrefixes {
		if !errors.Is(err, e.err) {
			continue
		}
		msg := e.msg
		switch {
		case msg != "":
		case errors.Is(err, dataplane.ErrTooLarge):
			msg = "value too large: " + err.Error()
		case errors.Is(err, dataplane.ErrIndeterminate):
			msg = err.Error() + " (the write may or may not have happened)"
		default:
			msg = err.Error()
		}
		return e.prefix + " " + sanitize(msg)
	}
	s.log.Error("resp: unmapped error", "command", cmd, "err", err)
	return "ERR internal error: " + sanitize(err.Error())
}

// sanitize makes msg safe for a one-line error reply.
func sanitize(msg string) string {
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, msg)
}

func errorIs(err, target error) bool { return errors.Is(err, target) }
