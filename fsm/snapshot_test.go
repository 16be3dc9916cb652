package fsm_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/snapshots"
)

// fakeSink is a raft.SnapshotSink in memory.
type fakeSink struct {
	bytes.Buffer
	closed, cancelled bool
	failWrites        bool
}

func (s *fakeSink) ID() string { return "fake" }
func (s *fakeSink) Write(p []byte) (int, error) {
	if s.failWrites {
		return 0, errors.New("sink full")
	}
	return s.Buffer.Write(p)
}
func (s *fakeSink) Close() error  { s.closed = true; return nil }
func (s *fakeSink) Cancel() error { s.cancelled = true; return nil }

// persist snapshots f through raft's interfaces and returns the bytes.
func persist(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &fakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	a := newInitialized(t, metadata.DefaultPartitionCount, 3, 2)
	mustApply(t, a, 2, fsm.CommandMemberJoin, fsm.Change{ExpectVersion: 1, Upsert: []metadata.Member{member(4, "a")}})
	cur := a.Routing()
	mustApply(t, a, 3, fsm.CommandRebalance, fsm.Change{ExpectVersion: 2,
		Partitions: []metadata.Partition{moveChange(cur, 5, "n4")}})
	a.Apply(cmdLog(4, []byte{99, 1})) // a skipped command still counts as applied

	// Capture, then keep applying: Persist must write the captured state.
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	captured := a.Routing()
	mustApply(t, a, 5, fsm.CommandMemberFailed, failover(a.Routing(), "n3 dead", "n3"))
	sink := &fakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()

	b := fsm.New(testLogger(t))
	updates, cancel := b.Subscribe()
	defer cancel()
	rc := &closeRecorder{Reader: bytes.NewReader(sink.Bytes())}
	if err := b.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Errorf("Restore did not close its reader")
	}
	if !equalTables(b.Routing(), captured) || b.AppliedIndex() != 4 {
		t.Fatalf("restored version %d applied %d, want table of version %d at applied 4",
			b.Routing().Version, b.AppliedIndex(), captured.Version)
	}
	if got := <-updates; got != b.Routing() {
		t.Fatalf("subscriber not offered the restored table")
	}
	// Both continue identically from there.
	l := cmdLog(5, mustEncode(t, fsm.CommandMemberFailed, failover(captured, "n3 dead", "n3")))
	if res := b.Apply(l).(fsm.ApplyResult); res.Err != nil {
		t.Fatalf("apply after restore: %v", res.Err)
	}
	if !equalTables(a.Routing(), b.Routing()) {
		t.Fatalf("diverged after restore")
	}

	// Restoring an uninitialized snapshot resets everything.
	if err := b.Restore(io.NopCloser(bytes.NewReader(persist(t, fsm.New(nil))))); err != nil {
		t.Fatal(err)
	}
	if b.Routing().Initialized() || b.AppliedIndex() != 0 {
		t.Fatalf("restore of empty state left %+v", b.Routing())
	}
}

func TestRestoreRefusesBadSnapshot(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	good := persist(t, f)
	before := f.Routing()
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-3] ^= 1
	for name, in := range map[string][]byte{"empty": nil, "corrupt": corrupt, "truncated": good[:30]} {
		err := f.Restore(io.NopCloser(bytes.NewReader(in)))
		if !errors.Is(err, snapshots.ErrCorrupt) {
			t.Fatalf("%s: got %v, want snapshots.ErrCorrupt", name, err)
		}
		if f.Routing() != before || f.AppliedIndex() != 1 {
			t.Fatalf("%s: refused snapshot changed the state", name)
		}
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := newInitialized(t, 4, 2, 2)
	snap, _ := f.Snapshot()
	sink := &fakeSink{failWrites: true}
	if err := snap.Persist(sink); err == nil {
		t.Fatalf("Persist succeeded on a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}
