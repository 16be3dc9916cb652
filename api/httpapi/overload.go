package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"time"
)

// overloadedBody is the answer to a connection over the server's limit.
const overloadedBody = `{"error":{"code":"` + CodeOverloaded + `","message":"too many connections to this member; retry later or use another member"}}` + "\n"

// Bounds of RejectConnection: the request head it reads before answering,
// and how long it waits for it and drains the rest.
const (
	rejectHeadLimit = 16 << 10
	rejectWait      = time.Second
)

// RejectConnection answers a connection the server will not serve (over
// its connection limit, see internal/connlimit) with 503 overloaded,
// Retry-After and Connection: close. It reads the request head first (at
// most 16 KiB, for at most a second), so that the client takes the answer
// as its request's (an answer sent before the request reaches an HTTP
// client as an unsolicited response, and fails the request), then shuts
// its side down and drains what the client still sends (a body), so that
// closing does not reset the connection before the client read the
// answer. The caller closes c.
func RejectConnection(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(rejectWait))
	r := bufio.NewReaderSize(io.LimitReader(c, rejectHeadLimit), 4096)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the end of the head, or a client that sends none
		}
	}
	_, _ = io.WriteString(c, fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\nRetry-After: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		retryAfterSeconds, len(overloadedBody), overloadedBody))
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(rejectWait))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}
