// Package httpapi serves olric-raft's HTTP-JSON API (DESIGN.md §6) as an
// http.Handler over a Cluster (a *node.Node in production, a fake in tests).
//
// # Routes
//
// Control plane (this package, today):
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
//
// The data plane (/v1/dmaps/...) is registered by a later change next to
// these in routes.
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
//  4. Request bodies are bounded (Options.MaxBodyBytes, 413 too_large),
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
