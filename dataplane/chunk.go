package dataplane

import (
	"errors"
	"fmt"

	"github.com/olric-raft/olric-raft/metadata"
)

// Copies of a partition sent to a new backup travel in chunks, so that no
// replicate call exceeds the cluster transport's frame limit however large
// the partition is (see doc.go, "Replication"): the primary splits the
// copy it took under the partition lock (splitSnapshot); the backup stages
// the chunks of one copy in order (Service.mu.staging) and installs the
// whole copy when the last one arrives. The mutations queued behind the
// copy follow its last chunk in the same lane.

// DefaultBackfillChunkBytes is ServiceConfig.BackfillChunkBytes' default.
const DefaultBackfillChunkBytes = 4 << 20

// errChunkStaged: a chunk of a copy was staged; the copy is not installed
// yet (the result says Partial, not an error).
var errChunkStaged = errors.New("dataplane: copy chunk staged")

// entrySize is what one entry counts for in chunk and batch sizes.
func entrySize(e *EntrySnapshot) int { return len(e.Key) + len(e.Value) + 24 }

// splitSnapshot splits s into chunks of about max bytes of entries each
// (one entry larger than max makes a chunk of its own). Each chunk has s's
// format, partition, sequence number and fence; the dedupe table goes in
// the first chunk, and a DMap's locks with its first entries. Chunks share
// s's slices: s must not change afterwards. A snapshot within max is
// returned as is.
func splitSnapshot(s *PartitionSnapshot, max int) []*PartitionSnapshot {
	total := 0
	for i := range s.DMaps {
		for j := range s.DMaps[i].Entries {
			total += entrySize(&s.DMaps[i].Entries[j])
		}
	}
	if total <= max || max <= 0 {
		return []*PartitionSnapshot{s}
	}
	newChunk := func() *PartitionSnapshot {
		return &PartitionSnapshot{Format: s.Format, Partition: s.Partition, Seq: s.Seq, Fence: s.Fence}
	}
	cur := newChunk()
	cur.Requests = s.Requests
	out := []*PartitionSnapshot{cur}
	size := 0
	for i := range s.DMaps {
		d := &s.DMaps[i]
		// The DMap's first piece carries its locks, even with no entries.
		piece := DMapSnapshot{Name: d.Name, Locks: d.Locks}
		start := 0
		for j := range d.Entries {
			es := entrySize(&d.Entries[j])
			if size > 0 && size+es > max {
				if j > start || len(piece.Locks) > 0 {
					piece.Entries = d.Entries[start:j]
					cur.DMaps = append(cur.DMaps, piece)
				}
				cur = newChunk()
				out = append(out, cur)
				size = 0
				piece = DMapSnapshot{Name: d.Name}
				start = j
			}
			size += es
		}
		if len(d.Entries) > start || len(piece.Locks) > 0 || len(d.Entries) == 0 {
			piece.Entries = d.Entries[start:]
			cur.DMaps = append(cur.DMaps, piece)
		}
	}
	return out
}

// stageChunk stages chunk it of a copy from primary from. It returns the
// whole copy once it has the last chunk, errChunkStaged before, and
// errNotAttached for a chunk out of order (the copy is dropped: the
// primary reports this backup out of sync and the leader replaces it).
func (s *Service) stageChunk(from metadata.NodeID, it *replItem) (*PartitionSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.mu.staging[it.P]
	switch {
	case it.Chunk == 0:
		s.mu.staging[it.P] = newStagedCopy(it.Epoch, string(from), it.Snap)
	case st == nil || st.epoch != it.Epoch || st.from != string(from) || st.next != it.Chunk || st.snap.Seq != it.Snap.Seq:
		delete(s.mu.staging, it.P)
		return nil, fmt.Errorf("%w: chunk %d of a copy of partition %d from %s arrived out of order", errNotAttached, it.Chunk, it.P, from)
	default:
		st.add(it.Snap)
		st.next++
	}
	if it.More {
		return nil, errChunkStaged
	}
	st = s.mu.staging[it.P]
	delete(s.mu.staging, it.P)
	return st.snap, nil
}

// dropStaged forgets a partly received copy of partition p.
func (s *Service) dropStaged(p uint32) {
	s.mu.Lock()
	delete(s.mu.staging, p)
	s.mu.Unlock()
}

// stagedCopy is a copy of a partition being received in chunks.
type stagedCopy struct {
	epoch uint64
	from  string
	next  uint32 // index of the chunk expected next
	snap  *PartitionSnapshot
	dmaps map[string]int // DMap name → index in snap.DMaps
}

func newStagedCopy(epoch uint64, from string, first *PartitionSnapshot) *stagedCopy {
	st := &stagedCopy{epoch: epoch, from: from, next: 1, dmaps: make(map[string]int),
		snap: &PartitionSnapshot{Format: first.Format, Partition: first.Partition, Seq: first.Seq, Fence: first.Fence}}
	st.add(first)
	return st
}

// add merges chunk c into the staged copy: entries and locks of a DMap
// already seen are appended to it.
func (st *stagedCopy) add(c *PartitionSnapshot) {
	st.snap.Requests = append(st.snap.Requests, c.Requests...)
	for i := range c.DMaps {
		d := &c.DMaps[i]
		k, ok := st.dmaps[d.Name]
		if !ok {
			st.dmaps[d.Name] = len(st.snap.DMaps)
			st.snap.DMaps = append(st.snap.DMaps, DMapSnapshot{Name: d.Name})
			k = len(st.snap.DMaps) - 1
		}
		dst := &st.snap.DMaps[k]
		dst.Entries = append(dst.Entries, d.Entries...)
		dst.Locks = append(dst.Locks, d.Locks...)
	}
}
