package jepsen

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// harnessBinary builds olric-raft (without -race) once for the tests.
func harnessBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "olric-raft-jepsen-bin-")
		if buildErr == nil {
			binPath, buildErr = Build(binDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// runPass runs one short pass (isolate the primary of a hot key three
// times, register and set workloads) and returns its result. The run
// folder is kept when the test fails, removed otherwise.
func runPass(t *testing.T, unsafe []string) *Result {
	t.Helper()
	if testing.Short() {
		t.Skip("runs five real processes in network namespaces for about a minute")
	}
	if err := CanRun(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	out, err := os.MkdirTemp("", "olric-raft-jepsen-runs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run folder kept: %s", out)
			return
		}
		_ = os.RemoveAll(out)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{
		TimeLimit: 30 * time.Second,
		Interval:  4 * time.Second,
		Nemesis:   "isolate-primary",
		Workloads: []string{WorkloadSet, WorkloadRegister},
		Clients:   6,
		Seed:      11,
		OutDir:    out,
		Bin:       harnessBinary(t),
		Unsafe:    unsafe,
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("\n%s", res.Summary())
	if _, err := os.Stat(filepath.Join(res.Dir, "history.jsonl")); err != nil {
		t.Errorf("no history in the run folder: %v", err)
	}
	if res.Nemesis < 2 {
		t.Errorf("%d faults injected, want at least 2", res.Nemesis)
	}
	return res
}

// TestCheckersCatchAckBeforeReplication runs a cluster whose primaries
// acknowledge writes before their backups applied them, and cuts off the
// primary of a hot key three times: the writes the cut-off primary
// acknowledged during its last lease are lost at the failover, and the
// set (or register) checker must say so.
func TestCheckersCatchAckBeforeReplication(t *testing.T) {
	res := runPass(t, []string{"ack-before-replication"})
	if res.Valid() {
		t.Fatalf("a cluster that acknowledges before replicating passed the checkers: %v", res.Anomalies)
	}
	if res.Anomalies["set/lost"] == 0 && res.Anomalies["register/nonlinearizable"] == 0 {
		t.Fatalf("anomalies %v, want set/lost or register/nonlinearizable", res.Anomalies)
	}
}

// TestCorrectClusterUnderIsolatedPrimary is the same pass with the safety
// mechanisms intact: no anomaly.
func TestCorrectClusterUnderIsolatedPrimary(t *testing.T) {
	res := runPass(t, nil)
	if !res.Valid() {
		t.Fatalf("anomalies with a correct cluster: %v (run folder %s)", res.Anomalies, res.Dir)
	}
	for _, c := range res.Checks {
		if c.OK == 0 {
			t.Errorf("%s: no operation succeeded", c.Workload)
		}
	}
}
