// Package httpapi serves olric-raft's HTTP-JSON API (DESIGN.md §6) as an
// http.Handler over a Cluster (a *node.Node in production, a fake in tests).
//
// # Routes
//
// Control plane:
//
//	GET    /v1/cluster/routing[?partition=N]  committed routing table (or only partition N:
//	                                          400 if N is not a number, 404 if out of range,
//	                                          503 unavailable before the table is initialized)
//	GET    /v1/cluster/members                members with gossip and Raft views
//	GET    /v1/cluster/leader                 the Raft leader, or 503 no_leader
//	GET    /v1/cluster/locate?dmap=&key=      partition and owners of a key (503 unavailable
//	                                          before the table is initialized)
//	POST   /v1/cluster/join   {"addrs":[...]} contact existing members
//	POST   /v1/cluster/leave                  graceful leave of this member
//	DELETE /v1/cluster/members/{id}           force out a dead member
//	POST   /v1/cluster/partitions/force-assign {"partitions":[ids...]?,"node":"id"?}
//	                                          data loss: give unavailable partitions new, empty
//	                                          owners → {"routing_version":n,"partitions":[...]};
//	                                          body required ({} forces every unavailable partition
//	                                          to leader-picked owners; an empty "partitions" list
//	                                          is a 400); 409 partition_available if one still has
//	                                          a primary, 404 not_found if "node" is not an alive member
//	GET    /v1/status                         this node's status (node.Status, with
//	                                          unavailable_partitions)
//	GET    /healthz                           200 while the process serves
//	GET    /readyz                            200 {"ready":true,...} once Cluster.Ready returns nil
//	                                          within ~2s, else 503 {"ready":false,...,"error":{...}}
//	GET    /metrics                           Prometheus text format of Options.Registry (only
//	                                          when set; then every request is counted by route
//	                                          pattern, "unmatched" for 404/405)
//	GET    /ui/                               the live cluster page (package ui: HTML, app.js,
//	                                          style.css, embedded; 404 for other files); it polls
//	                                          the routes above. GET /ui redirects (301) to /ui/
//
// Data plane (dmaps.go; DESIGN.md §4-§5). Every route answers 503
// unavailable (with Retry-After) while the key's partition has no primary
// that can serve:
//
//	PUT    /v1/dmaps/{dmap}/keys/{key}   {"value": any JSON | "value_base64": "...",
//	                                      "ttl_ms"?: n, "nx"?: bool, "xx"?: bool, "if_version"?: n}
//	                                     → {"version": n}; 409 key_exists (nx), 404 not_found (xx),
//	                                     409 version_mismatch (if_version; 0 = "must not exist")
//	GET    /v1/dmaps/{dmap}/keys/{key}   → {"key","value"|"value_base64","version","ttl_ms"};
//	                                     404 not_found
//	DELETE /v1/dmaps/{dmap}/keys/{key}   → {"deleted": bool}
//	POST   .../keys/{key}/incr           {"delta"?: n} (default 1; body optional) → {"value": n, "version": n};
//	                                     a missing key counts as 0; 409 not_a_number, overflow
//	POST   .../keys/{key}/incrbyfloat    {"delta": f} → {"value": f, "version": n}
//	POST   .../keys/{key}/expire         {"ttl_ms": n} (0 removes the expiry) → {"found": bool}
//	POST   .../keys/{key}/getput         {"value" | "value_base64"} → {"previous"|"previous_base64",
//	                                     "found": bool, "version": n}; previous is null when not found
//	POST   .../keys/{key}/lock           {"ttl_ms"?: lease, "wait_ms"?: n} (body optional; ttl_ms 0:
//	                                     the default lease, dataplane.DefaultLockLease = 30s; wait_ms 0:
//	                                     try once) → {"token": n}, the fencing token; 409 locked when
//	                                     not acquired within wait_ms; locks are a namespace apart from
//	                                     values
//	POST   .../keys/{key}/unlock         {"token": n} → {"unlocked": true}; 409 no_such_lock
//	POST   .../keys/{key}/lease          {"token": n, "ttl_ms": n} (the new lease from now; 0: the
//	                                     default) → {"extended": true}; 409 no_such_lock
//	GET    /v1/dmaps/{dmap}/keys?match=&cursor=&limit=
//	                                     → {"keys":[...],"cursor":"..."}: one page; cursor "" when
//	                                     every partition was walked (a page may be short, even empty,
//	                                     before that); match is a Redis glob; limit 1 to
//	                                     dataplane.MaxScanLimit, default 100
//	DELETE /v1/dmaps/{dmap}              → {"destroyed": true}: every key of the DMap, every partition
//
// # Values
//
// Values are bytes. A write stores the JSON text of "value" byte for byte
// as sent (not compacted, not re-encoded; the whitespace around it is not
// part of it), or the bytes of "value_base64" (standard base64, padding
// optional): exactly one of the two. A read answers "value" with the
// stored bytes verbatim when they are JSON text (valid UTF-8 JSON without
// surrounding whitespace: a JSON decoder hands back exactly those bytes),
// else "value_base64"; getput does the same with "previous". So every
// value round-trips byte for byte, including values written over RESP.
// "value": null stores the four bytes null.
//
// ttl_ms in an answer is the remaining time to live, rounded up to whole
// milliseconds; 0 means no expiry.
//
// Keys and DMap names are one path segment each, percent-encoded: a key
// may hold any bytes, '/' included ("a%2Fb" is the key "a/b"; "%2E%2E" is
// the key ".."). In JSON answers (get's "key", scan's "keys") a key that is
// not valid UTF-8 shows with U+FFFD in place of the invalid bytes.
//
// # Data-plane errors
//
// 404 not_found (no such key); 409 key_exists, version_mismatch,
// not_a_number, overflow, locked, no_such_lock; 400 bad_request; 413
// too_large; 507 full (the DMap reached its max_keys/max_bytes and does
// not evict); 503 unavailable, overloaded, or timeout: a write that timed
// out may or may not have happened, retry it with the same X-Request-Id.
// Every 503 carries Retry-After: 1. stale_routing, fenced_epoch and
// seq_gap are internal to the cluster: should one escape, it is a 503
// unavailable.
//
// # Limits
//
//   - A key is at most dataplane.MaxKeyLen (64 KiB) after percent-decoding,
//     a DMap name at most dataplane.MaxDMapNameLen (256) bytes, a value at
//     most Options.MaxValueBytes (default dataplane.DefaultMaxValueLen,
//     16 MiB): longer ones are 413 too_large. (A 64 KiB key percent-encoded
//     takes up to 192 KiB of request line: the server's MaxHeaderBytes must
//     allow it.)
//   - Request bodies of data routes are bounded by
//     DataBodyLimit(MaxValueBytes): the value in base64 (4/3 larger) plus 64
//     KiB; control-plane bodies by Options.MaxBodyBytes (1 MiB).
//   - ttl_ms (put, expire, lock, lease) from 0 to dataplane.MaxTTL (about 10
//     years) in milliseconds, wait_ms from 0 to MaxLockWait (30s); else 400.
//   - X-Request-Id (optional, passed as dataplane.Request.RequestID) at most
//     MaxRequestIDLen (256) bytes; scan's match at most 64 KiB.
//   - Unknown fields, wrong types, "nx" with "xx", "if_version" with either,
//     both or neither of "value" and "value_base64" are 400.
//
// Each data operation runs with a budget of 15s (a lock: plus its wait,
// a destroy: 30s) on top of the client's own deadline.
//
// # Authentication
//
// With Options.Auth (the server's --auth-tokens), every route but GET
// /healthz, /readyz and the page's static assets (/ui, /ui/...) needs
// "Authorization: Bearer TOKEN" (scheme case-insensitive, one header)
// with a token whose role is strong enough; the roles include each other
// (admin > write > read):
//
//	open   /healthz, /readyz, /ui, /ui/{file}
//	read   GET /v1/cluster/{routing,members,leader,locate}, /v1/status,
//	       /metrics, GET /v1/dmaps/{dmap}/keys and .../keys/{key}
//	write  PUT and DELETE .../keys/{key}, POST .../incr, incrbyfloat,
//	       expire, getput, lock, unlock, lease
//	admin  POST /v1/cluster/join, /v1/cluster/leave,
//	       /v1/cluster/partitions/force-assign, DELETE
//	       /v1/cluster/members/{id}, DELETE /v1/dmaps/{dmap} (destroy)
//
// No token, a malformed header or an unknown token: 401 unauthorized with
// WWW-Authenticate: Bearer realm="olric-raft". A known token whose role is
// too weak: 403 forbidden, its message naming the token's role and the
// role needed ("this token's role is read; PUT /v1/dmaps/{dmap}/keys/{key}
// needs write"). The check runs before anything else of the route (body,
// validation, the Cluster). Every refusal is logged (warn) with method,
// path, remote address, role and reason, never the token. routeRoles (auth.go)
// is the one table; New panics on a route missing from it. Unknown paths
// and wrong methods still answer 404 and 405 without a token.
//
// # Contract
//
//  1. Every response is JSON (Content-Type: application/json), including
//     404 for unknown paths and 405 (with Allow) for a wrong method, and
//     carries X-Routing-Version: the committed routing version the node had
//     when it answered.
//  2. Errors are {"error":{"code":"...","message":"..."}}. The code is
//     stable and derived with errors.Is from the node's sentinel errors (see
//     the Code constants), never from message text. Every 503 carries
//     Retry-After.
//  3. A 500 (code internal) means a bug here or in the node: an error the
//     mapping does not know, or a recovered panic. No client input leads to a
//     500; FuzzHandler checks that.
//  4. Request bodies are bounded (Options.MaxBodyBytes, or
//     DataBodyLimit for data routes; 413 too_large),
//     strict (unknown fields and trailing data are 400 bad_request) and
//     validated before the Cluster is called.
//
// # Concurrency
//
// The handler is safe for concurrent use: it holds no state of its own
// besides its Options; every request reads the Cluster, whose methods must
// be safe for concurrent use. Options.OnLeft runs on the goroutine of the
// leave request, after its response was flushed; it must not block.
package httpapi
