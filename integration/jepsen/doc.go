// Package jepsen is olric-raft's Jepsen-style harness: real olric-raft
// processes on their own hosts, faults injected by a nemesis while
// concurrent clients run a workload over the HTTP API, and the recorded
// history checked afterwards (porcupine for linearizability, dedicated
// checkers for sets, counters and locks). DESIGN.md §7.
//
// # Running it
//
// As root, from the module:
//
//	make jepsen                                    # 60 s, partition-halves, register
//	make jepsen JEPSEN_ARGS='--time-limit 60s --nemesis partition-halves --workload register --seed 7'
//	make jepsen JEPSEN_NEMESIS=kill-primary JEPSEN_WORKLOAD=all JEPSEN_SEED=3
//	make jepsen-test                               # the harness's own tests (below)
//
// make jepsen builds bin/jepsen (cmd/jepsen) which builds olric-raft
// without -race into a temporary folder. Flags: --time-limit (how long
// clients and nemesis run), --nemesis, --workload (comma-separated, or
// "all": the workloads then run side by side), --seed (every random choice
// of the clients and the nemesis; printed, so a failing run can be
// repeated — the timing of a real cluster is not reproducible, the
// schedule and the choices are), --clients (per workload, default 4),
// --keys (register keys, default 3), --interval (nemesis off and on
// periods, default 5s), --replicas (default 3), --out (default
// ./jepsen-runs; make jepsen uses JEPSEN_OUT=/tmp/olric-raft-jepsen), --bin (an olric-raft binary to use instead of building
// one). Exit status: 0 valid, 1 anomalies, 2 harness trouble or usage, 3
// no anomaly but some check could not decide (e.g. the final read of the
// set or counter never succeeded because a partition stayed unavailable),
// 130 interrupted (^C: the run stops, checks what it has, tears down).
// Without root the command prints that it skipped and exits 0; the tests
// skip with the same message.
//
// # Hosts (hosts.go)
//
//  1. The harness takes an exclusive flock on /run/olric-raft-jepsen.lock
//     (one run per machine), then removes whatever a crashed earlier run
//     left: namespaces and links named orj*, and the processes in them.
//  2. It creates the bridge orjbr0 (10.77.0.254/24, the root namespace's
//     address on it) and, per member nN (N = 1..5), the namespace orjN with
//     a veth pair (orjvN on the bridge, eth0 inside) at 10.77.0.N/24. No
//     other address is used.
//  3. Each member runs as `ip netns exec orjN olric-raft server --node-id nN
//     --data-dir RUN/nN/data --http-addr 10.77.0.N:3380 --resp-addr
//     10.77.0.N:3320 --cluster-addr 10.77.0.N:3321 --gossip-addr
//     10.77.0.N:3322 --bootstrap-expect 5 --join <the other four gossip
//     addresses> --timing lan --log-level info --replicas 3`, output
//     appended to RUN/nN/member.log (with a line per start and exit). A
//     restarted member gets the same flags: it keeps its Raft state and
//     comes back with a new incarnation and empty data (after churn took
//     it out of the cluster: with an empty data dir, a new member).
//  4. A cut between two members is a blackhole route in each of their
//     namespaces (`ip -n orjA route add blackhole 10.77.0.B/32` and the
//     reverse); healing deletes those routes. The clients, in the root
//     namespace, always reach every member through the bridge.
//  5. Close (deferred, so also on failure and on ^C, which cancels the
//     run) kills every member, deletes the Raft data, the namespaces, the
//     veths and the bridge, and drops the lock.
//
// Before the clients start, the cluster must be whole: every member ready
// (GET /readyz), all five alive in GET /v1/cluster/routing, every
// partition active with its backups, and the routing version unchanged
// for 3 s.
//
// Replicas default to 3 rather than the server's 2: with 2 replicas, any
// 2|3 split leaves the partitions whose two replicas are both on the
// minority side with no replica the majority may promote; they become
// unavailable (by design, see README "Lost replicas") and the rest of the
// run learns little about them. --replicas 2 tests the default placement.
//
// # Nemeses (nemesis.go)
//
// A schedule of --interval off, then a fault for --interval (at least 3 s
// for a pause: three lease periods of the lan profile), then the fault is
// undone and the harness waits (at most 60 s) for the cluster to be whole
// again before the next one, so that two faults in a row do not take every
// replica of a partition. At the end everything is healed (network,
// SIGCONT, restart of dead members). Every start and stop is an event in
// the history.
//
//	none              no faults
//	partition-halves  a random 2|3 split
//	partition-ring    a random ring: each member talks only to its two
//	                  neighbours (each sees a majority, no two the same one)
//	partition-bridge  two pairs that only a fifth member (the bridge) sees
//	isolate-leader    the Raft leader (GET /v1/cluster/leader) cut from all
//	isolate-primary   the primary of a hot key (GET /v1/cluster/locate) cut
//	kill-random       kill -9 of a random member, restarted after the period
//	kill-leader       kill -9 of the Raft leader, restarted
//	kill-primary      kill -9 of the primary of a hot key, restarted
//	pause-random      SIGSTOP of a random member, SIGCONT after the period
//	pause-leader      SIGSTOP of the leader
//	pause-primary     SIGSTOP of the primary of a hot key
//	churn             membership churn through the operator CLI (below)
//	island            operator removals sent to an isolated leader (below)
//	all               one of the above at random for each cycle
//
// The hot key is one of the first workload's keys (a register key, the
// newest set element, the counter, the lock).
//
// churn changes the membership while the workloads run, through the real
// CLI: the olric-raft binary the members run (Hosts' bin), invoked from
// the root namespace, which reaches every member over the bridge. A cycle
// starts only from a whole cluster with every member running, and takes
// one member out (never more: four of five stay), at random either
//
//   - leave: `olric-raft leave --address <its HTTP>`; its process must
//     then exit 0 (a leave answered "left" whose process exits otherwise,
//     or does not exit within 30 s, is a note in the summary);
//   - remove: kill -9, then `olric-raft remove <id> --address <another
//     member's HTTP>`, retried every 0.5 s for up to 60 s while the answer
//     is member_alive (refused until gossip declares it dead and its
//     lease expired) or says no_leader, not_ready, timeout, unreachable
//     (a failover under way); a not_found after a timeout counts as done.
//
// After the off period the member starts again with an empty data dir
// (Host.SetFresh: a brand-new member under the same id), and the cycle
// ends once the cluster is whole. The server flags need no change for
// that: with no Raft state and --bootstrap-expect 5 it sees that its peers
// hold Raft state and waits to be added instead of bootstrapping, and
// --join finds them through gossip. A leave or removal that did not
// succeed is not followed by a wipe: the member restarts with its Raft
// state, as an operator would. Every CLI invocation (command, exit
// status, output) is an op of the history (workload nemesis, f cli) and a
// paragraph of RUN/nemesis.log.
//
// island cuts the Raft leader off from every other member (as
// isolate-leader) and, while it is cut off, sends it over HTTP from the
// harness DELETE /v1/cluster/members/{id} for every other member, a round
// every 250 ms without waiting for the answers (a removal the island
// cannot forward waits up to the server's 30 s for a leader; the harness
// waits 35 s), so the rounds cover the first moments while it still
// believes it leads, then its step-down, then gossip declaring the others
// dead. Every answer is an op (f island-remove). After the heal, the
// answers still in flight, and a whole cluster (at most 60 s), every
// member's routing table is read (f island-members). Anomalies, in the
// nemesis row of the summary and counted as nemesis/<kind>, exit status 1
// like the checkers': island-commit (a 2xx answer to such a removal) and
// island-member-missing (a routing table without one of the five members).
// No routing table readable after the heal makes the run undecided.
//
// # Workloads (workloads.go)
//
// Each workload has --clients clients; each client sends one operation at a
// time to a random member, with 5-25 ms between operations. Every written
// value is unique. An operation's outcome (client.go) is ok (2xx), fail
// (4xx, or a 503 whose code is not timeout: the API says those did not
// happen) or info (no answer within 5 s, a 503 timeout, a 5xx: it may or
// may not have happened). After an info operation the client continues as
// a new process id, as etcd's robustness tests do.
//
//	register  DMap jregister, keys r0..r(--keys-1): read (GET), write (PUT)
//	          and compare-and-set (PUT with if_version = the version of the
//	          client's last read of that key, 0 if it found none)
//	set       DMap jset: add = PUT of a new key eN; after the heal one
//	          scan of the whole DMap (or, if no scan succeeds within 20 s,
//	          a GET of every attempted element)
//	counter   DMap jcounter, key c: POST .../incr {"delta":1}; after the
//	          heal one GET
//	lock      DMap jlock, key l: POST .../lock {"ttl_ms":5000,"wait_ms":1000}
//	          → token, hold 10-50 ms, POST .../unlock {"token"}
//
// # Checkers (checkers.go)
//
//   - register: porcupine (v1.3.1) with a per-key register model
//     (RegisterModel, partitioned by key). Failed operations are dropped,
//     except a CAS refused with version_mismatch/key_exists (that says the
//     value was not the expected one); indeterminate writes and CAS end at
//     the end of the history (they may take effect at any time after their
//     call, or never); reads that failed are dropped. A CAS is "if the
//     value is the one read with that version", exact because values are
//     unique. Anomaly: nonlinearizable; a porcupine timeout is "unknown".
//   - set: lost (acknowledged, missing), failed-but-present (refused, yet
//     there), unexpected (never attempted), duplicated (listed twice).
//   - counter: the final value within [acknowledged, acknowledged +
//     indeterminate] (lost-increments, phantom-increments).
//   - lock: duplicate-token (a token granted twice), token-order (a lock
//     granted before another was requested has a larger token), overlap
//     (two holders whose unlock succeeded, each holding from its lock's
//     return to its unlock's call, overlap in time).
//
// # Output
//
// Per run, RUN = --out/<UTC time>-<nemesis>-<workloads>-seed<N>/ holds
// history.jsonl (one Op per line: process, workload, f, key, value,
// expect, version, token, type ok/fail/info, node asked, error, output,
// call and return in ns since the start; nemesis events as workload
// "nemesis"),
// register.html (porcupine's visualization, when the register check
// fails or times out), nemesis.log (every nemesis event, operator
// command with its exit status and output, island answer), nN/member.log
// for every member,
// routing-final.json (the routing table after the final reads; the Raft
// data itself is deleted with the hosts), summary.json and
// summary.txt (ops ok/fail/info per workload, anomalies by kind with
// examples, notes; with churn or island also a "nemesis" row: the
// operator commands' ok/fail/info, the island anomalies, notes counting
// the commands by exit status and the island's answers). The command
// prints summary.txt at the end. --list-nemeses prints the nemeses that
// inject faults (scripts/jepsen-ci.sh runs each once).
//
// # Tests
//
// checkers_test.go checks the checkers on hand-made histories (no root
// needed), the operator nemeses' check (checkNemesis) included, and that
// every nemesis name is accepted. jepsen_test.go (root, skipped with -short) runs two 30 s
// passes of isolate-primary: one with `--unsafe-test-fault
// ack-before-replication` and 24 clients on the set workload, where the
// cut-off primary acknowledges adds during its last lease that the
// failover then loses, and which must report lost adds; one with a correct
// cluster, 6 clients on the set and register workloads, which must report
// none.
package jepsen
