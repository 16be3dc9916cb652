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
// # Authentication
//
// The server's --auth-tokens FILE (env OLRIC_RAFT_AUTH_TOKENS, config key
// auth_tokens; package auth has the format) turns client authentication
// on for HTTP and RESP; buildServerConfig loads it, so a bad file is a
// usage error naming the file and every bad line (never a token), and
// SIGHUP reloads it (reloader "auth-tokens"; a bad file keeps the old
// tokens). Without it there is no authentication, --dev included.
// Refused requests are logged by the HTTP API, never with their token.
//
// The client commands send the global --token (env OLRIC_RAFT_TOKEN; the
// environment keeps it out of the process list) as a Bearer header. A 401
// or 403 exits 1 with a hint: set --token or OLRIC_RAFT_TOKEN, or use a
// token of the role the message names. --token on the server command is a
// usage error: it would not turn authentication on.
//
// # Encryption
//
// The server's --tls-cert, --tls-key and --tls-ca (config keys tls_cert,
// tls_key, tls_ca) turn on mutual TLS on the cluster port; --tls-clients
// (tls_clients) also serves TLS on the HTTP and RESP listeners with the same
// certificate; --gossip-key FILE (gossip_key) encrypts memberlist.
// buildServerConfig loads every file, so a missing, unreadable or
// mismatched one is a usage error. runServer makes one
// transport.TLSProvider for the node (node.TLSConfig.Provider) and the two
// listeners and registers its Reload as reloader "tls". 'tls gen' writes a
// CA and per-member certificates (internal/tlsgen). The client commands
// take --tls-ca, --tls-cert and --tls-key (env OLRIC_RAFT_TLS_CA, ...) for
// --address https://... (clienttls.go).
//
// # Reloading (SIGHUP)
//
// reload.go: runServer keeps a list of named reload functions (add one
// with reload.add("name", fn)); on every SIGHUP watchReload runs them in
// order and logs each result ("reloaded" at info, "reload failed; keeping
// the previous version" at error). SIGHUP arrives like SIGINT/SIGTERM: from
// signal.Notify, or from Deps.Signals in tests (send syscall.SIGHUP on it).
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
// timeout, or by Close on a second signal), and watchReload's signal
// filter (stopped by its stop function, deferred in runServer; a reload in
// progress finishes first).
package cli
