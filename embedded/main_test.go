package embedded_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// raft-boltdb's metrics emitter is not ours (see node's tests).
		goleak.IgnoreTopFunction("github.com/hashicorp/raft-boltdb/v2.(*BoltStore).runMetrics"),
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}
