package dataplane

import (
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// TestSplitSnapshotRoundTrip: for any copy and chunk size, every chunk but
// a single oversized entry stays within the size, and staging the chunks
// in order rebuilds the copy exactly (DMaps merged by name, locks and the
// dedupe table kept).
func TestSplitSnapshotRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &PartitionSnapshot{Format: SnapshotFormat, Partition: 3, Seq: 99, Fence: 4}
		for d := range rapid.IntRange(0, 4).Draw(t, "dmaps") {
			dm := DMapSnapshot{Name: fmt.Sprintf("m%d", d)}
			for k := range rapid.IntRange(0, 30).Draw(t, "entries") {
				dm.Entries = append(dm.Entries, EntrySnapshot{Key: fmt.Sprintf("k%d", k),
					Value: make([]byte, rapid.IntRange(0, 200).Draw(t, "value")), Version: uint64(k + 1)})
			}
			if rapid.Bool().Draw(t, "lock") {
				dm.Locks = []LockSnapshot{{Key: "l", Token: 7}}
			}
			s.DMaps = append(s.DMaps, dm)
		}
		if rapid.Bool().Draw(t, "requests") {
			s.Requests = []RequestSnapshot{{ID: "r1"}}
		}
		max := rapid.IntRange(1, 2000).Draw(t, "max")
		chunks := splitSnapshot(s, max)
		for i, c := range chunks {
			if c.Partition != s.Partition || c.Seq != s.Seq || c.Fence != s.Fence || c.Format != s.Format {
				t.Fatalf("chunk %d header %+v", i, c)
			}
			size, n := 0, 0
			for _, d := range c.DMaps {
				for j := range d.Entries {
					size += entrySize(&d.Entries[j])
					n++
				}
			}
			if size > max && n > 1 {
				t.Fatalf("chunk %d: %d bytes in %d entries, max %d", i, size, n, max)
			}
		}
		st := newStagedCopy(4, "a", chunks[0])
		for _, c := range chunks[1:] {
			st.add(c)
		}
		want := *s
		for i := range want.DMaps { // normalize nil vs empty
			if len(want.DMaps[i].Entries) == 0 {
				want.DMaps[i].Entries = nil
			}
		}
		got := *st.snap
		for i := range got.DMaps {
			if len(got.DMaps[i].Entries) == 0 {
				got.DMaps[i].Entries = nil
			}
			if len(got.DMaps[i].Locks) == 0 {
				got.DMaps[i].Locks = nil
			}
		}
		if !reflect.DeepEqual(&got, &want) {
			t.Fatalf("rebuilt copy differs:\n got %+v\nwant %+v", got, want)
		}
	})
}
