// Package client is the Go client of olric-raft's HTTP API (DESIGN.md §6).
//
// It covers the control plane (routing table, members, leader, key
// location, status, readiness, and the operator actions join, leave,
// remove and force-assign, the data-loss escape hatch for unavailable
// partitions) and the DMap operations: Put (WithTTL, NX, XX, IfVersion),
// PutJSON, Get, Delete, Incr, IncrByFloat, Expire, GetPut, Lock, Unlock,
// Lease, Scan, ScanAll and Destroy.
//
//	c, err := client.New("127.0.0.1:3380", client.WithTimeout(10*time.Second))
//	...
//	rt, err := c.Routing(ctx)
//	v, err := c.Put(ctx, "users", "alice", []byte(`{"age":30}`), client.WithTTL(time.Hour))
//	e, err := c.Get(ctx, "users", "alice") // e.Value is {"age":30}, e.JSON true
//
// # Authentication
//
// A member started with --auth-tokens wants a bearer token of a role
// strong enough for each call (read: views and reads; write: key writes
// and locks; admin: join, leave, remove, force-assign, Destroy). Give it
// with WithToken, to New or NewRouted (then it goes to every member):
//
//	c, err := client.New(addr, client.WithToken(os.Getenv("OLRIC_RAFT_TOKEN")))
//
// No token or an unknown one is an *APIError with code unauthorized
// (401); a token whose role is too weak, code forbidden (403), whose
// message names the role needed. Neither is temporary. Tokens never
// appear in errors.
//
// # Values
//
// Values are bytes, stored and read back byte for byte. Put sends them as
// the JSON "value" when they are JSON text (IsJSONText: valid UTF-8 JSON
// with no whitespace around it), so that other HTTP clients read JSON, and
// as "value_base64" otherwise; Get's Entry.JSON tells which way the server
// answered. Keys and DMap names may hold any bytes: they are
// percent-encoded into one path segment each.
//
// # Retrying writes
//
// A write that timed out (code timeout, or a deadline or connection error)
// may or may not have happened. Give the first attempt a request id with
// ContextWithRequestID and retry with the same id: the cluster applies it
// at most once.
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
