// Package cli is the olric-raft binary's command line: the server command,
// the operator commands (members, routing, status, join, leave, remove,
// partition force-assign), the DMap commands (kv put, get, del, incr,
// expire, scan, lock, unlock, destroy), the load generator (bench), plus
// version.
//
// kv and bench talk to the data plane's HTTP routes (/v1/dmaps/...) with
// package client. kv prints what it did (-o table) or the API's answer
// (-o json); its errors carry hints for the data-plane codes (not_found:
// "no such key", unavailable: the key's partition has no primary, see
// 'olric-raft status', ...). bench spreads gets and puts over one or more
// addresses (--address a,b,c, round-robin per request) with one request in
// flight per worker, and reports throughput, errors by code and latency
// percentiles from a log-linear histogram (about 1.6% precision).
//
// partition force-assign is the one command that destroys data (it serves
// unavailable partitions again, empty): it sends nothing without --yes,
// which no environment variable can set.
//
// cmd/olric-raft's main only wires the package to node.New.
//
// It lives apart from main so that every command, the server's lifecycle
// included, is tested with a fake node (Deps.NewNode) and without a
// process.
//
// # Settings
//
// The server's settings come from, in order of precedence: flags, the
// environment (OLRIC_RAFT_<FLAG>, upper case, dashes as underscores), the
// --config YAML file (node.Config's yaml keys plus log_level and
// log_format; unknown keys are errors), and defaults (node.DefaultConfig).
// buildServerConfig resolves and validates them, reporting every problem at
// once.
//
// # Exit codes
//
// 0 success (a graceful shutdown included), 1 failure (the error is printed
// as "error: <code>: <message>" with a hint), 2 usage error (bad command
// line, environment or config file).
//
// # Goroutines of the bench command
//
// runBench owns them and waits for them before it returns: --concurrency
// workers (each ends at the deadline, after --requests requests were
// claimed, or when the command's context ends, e.g. on Ctrl-C) and the
// progress printer (stopped by closing its channel after the workers
// ended).
//
// # Goroutines of the server command
//
// runServer owns them all and waits for them before it returns: the HTTP
// server's Serve (stopped by Shutdown/Close), the readiness watcher
// (stopped by cancelling its context), and during a signal-initiated leave
// the goroutine running Node.Leave (ends when Leave returns; bounded by its
// timeout, or by Close on a second signal).
package cli
