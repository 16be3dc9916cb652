// Package client is the Go client of olric-raft's HTTP API (DESIGN.md §6).
//
// Today it covers the control plane: routing table, members, leader, key
// location, status, readiness, and the operator actions join, leave,
// remove and force-assign (the data-loss escape hatch for unavailable
// partitions). The data-plane calls (DMap operations) join it later.
//
//	c, err := client.New("127.0.0.1:3380", client.WithTimeout(10*time.Second))
//	...
//	rt, err := c.Routing(ctx)
//
// # Errors
//
// An answer of the server that is not a success is an *APIError carrying
// the HTTP status, the stable code (the Code constants), the message and
// Retry-After. Use errors.As, or IsCode:
//
//	if client.IsCode(err, client.CodeNoLeader) { ... }
//
// A 503 (APIError.Temporary) may succeed on retry; a timeout (code timeout,
// or the context's deadline) may have taken effect. The client never
// retries by itself.
//
// Responses are decoded leniently: fields a newer server adds are ignored.
package client
