// Package olricclient checks olric-raft against Olric's official Go client
// (github.com/olric-data/olric v0.6.1, its ClusterClient and DMap API) over
// real olric-raft processes on loopback.
//
// It is a module of its own so that the main module does not depend on
// Olric. The tests build ../../cmd/olric-raft with the main module (go
// build run from the repository root) and start the binary; they import
// nothing of the main module. Run them with
//
//	make test-olric-client
//
// or: cd integration/olricclient && go test -race -count=1 ./...
//
// Olric 0.6.1 is published on the module proxy as
// github.com/buraksezer/olric, but its go.mod names it
// github.com/olric-data/olric; go.mod maps that path onto the published
// copy with a replace directive.
package olricclient
