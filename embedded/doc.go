// Package embedded runs an olric-raft member inside a Go program, like
// Olric's embedded mode: the program is a full member of the cluster
// (Raft, gossip, a share of the partitions) and uses DMaps through Go
// calls instead of a network client.
//
//	cfg := node.DefaultConfig()
//	cfg.NodeID, cfg.DataDir = "app-1", dir
//	cfg.Timing = node.DevTiming()
//	cfg.Bootstrap = true                 // or Join + BootstrapExpect
//	cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0"
//	m, err := embedded.Start(cfg)        // waits until ready
//	defer m.Close()
//	users := m.DMap("users")
//	v, err := users.Put(ctx, "alice", []byte(`{"age":30}`), embedded.WithTTL(time.Hour))
//	e, err := users.Get(ctx, "alice")
//
// See ExampleStart for a complete program.
//
// # Lifecycle
//
//  1. Start (or StartContext) validates the Config, listens on HTTPAddr
//     if WithHTTP asks for the HTTP API, starts the node, serves HTTP,
//     and waits until the member is ready (Member.Ready): a live member of
//     an initialized routing table that has applied everything the leader
//     had committed, with its data plane open. Members started with
//     BootstrapExpect need each other to get there: start them
//     concurrently, or with WithoutWait and then call Ready on each.
//  2. DMap operations may run from any goroutine. Each runs on its key's
//     primary (this member or another one, over the cluster port); while
//     routing settles (a member joined, left or failed) the data plane
//     retries within its own bounds, then fails with ErrUnavailable.
//  3. Leave hands the member's partitions and Raft leadership over, leaves
//     Raft and gossip, then closes; Close stops at once (the others see the
//     member fail, and with it the data only it held). Both stop the HTTP
//     API before the node, and are safe to call twice. After either,
//     operations fail with node.ErrClosed.
//
// Addresses: ClusterAddr and GossipAddr may use port 0; the ports chosen
// are advertised, and Member.Node().ClusterAddr() and GossipAddr() tell
// them (a member joining this one needs the gossip address). HTTPAddr
// and RESPAddr are only advertised to clients unless WithHTTP serves the
// HTTP API on HTTPAddr (port 0 then picks a free port, advertised).
//
// # Errors
//
// Operations return the data plane's sentinel errors, wrapped; test them
// with errors.Is:
//
//   - dataplane.ErrNotFound: Get of a missing key, Put with XX.
//   - dataplane.ErrKeyExists: Put with NX on an existing key.
//   - dataplane.ErrVersionMismatch: Put with IfVersion found another version.
//   - dataplane.ErrNotANumber, dataplane.ErrOverflow: Incr, IncrByFloat.
//   - dataplane.ErrLocked: Lock not acquired within its wait.
//   - dataplane.ErrNoSuchLock: Unlock or Lease of a lock no longer held
//     with that token.
//   - dataplane.ErrInvalid, dataplane.ErrTooLarge: bad arguments (empty
//     key, negative TTL, conflicting options, key or value over its
//     limit), checked before anything is sent.
//   - dataplane.ErrFull: the DMap is at its limits and does not evict.
//   - dataplane.ErrUnavailable, dataplane.ErrOverloaded: retry later. A
//     partition whose every replica was lost stays unavailable until an
//     operator force-assigns it (Node().ForceAssign).
//   - dataplane.ErrIndeterminate: a write whose outcome is unknown (its
//     context ended, or the connection to the primary broke after
//     sending): it may or may not have happened.
//   - node.ErrClosed: the member is closed (or left).
//
// Delete and Expire of a missing key are not errors: they report false.
package embedded
