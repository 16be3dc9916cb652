// Package httpapitest provides a fake httpapi.Cluster (Cluster, made by
// NewCluster) for tests of the HTTP API, of the client and of the CLI: a
// valid routing table, members, leader and status, configurable errors and
// a hook into every context-taking method, and a record of the operator
// actions it received.
//
// Its data plane (Do, Scan, Destroy) is an in-memory store under the
// fake's one lock: versions from one increasing counter, TTLs (on a clock
// tests may replace, State.Now), nx/xx/if_version, incr and incrbyfloat,
// getput, locks with fencing tokens that waiting lock calls wait for, and
// glob-filtered scans in key order (State.ScanPage makes pages short, as
// a real scan's are at partition ends). State.DataErr makes all three
// fail instead.
package httpapitest
