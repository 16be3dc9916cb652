// Package integration holds multi-member tests of olric-raft: in-process
// clusters over real loopback sockets with a fault-injecting network
// (internal/testcluster), and clusters of real olric-raft processes.
package integration
