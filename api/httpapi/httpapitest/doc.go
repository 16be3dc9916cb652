// Package httpapitest provides a fake httpapi.Cluster (Cluster, made by
// NewCluster) for tests of the HTTP API, of the client and of the CLI: a
// valid routing table, members, leader and status, configurable errors and
// a hook into every context-taking method, and a record of the operator
// actions it received.
package httpapitest
