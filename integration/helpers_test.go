package integration

import "github.com/olric-raft/olric-raft/fsm"

// fsmRebalanceNoop is a change that alters nothing but still produces a new
// routing version when committed.
func fsmRebalanceNoop(version uint64) fsm.Change {
	return fsm.Change{ExpectVersion: version, Reason: "test: no-op"}
}
