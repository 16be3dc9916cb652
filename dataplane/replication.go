package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/metadata"
)

// Synchronous replication (see doc.go, "Replication").
//
// On the primary, every mutation the engine applies to a partition it
// serves is queued, under the partition lock (Engine.OnMutation), to one
// sender per backup member; a new backup is first sent a copy of the
// partition taken under the same lock hold (BackfillSnapshot), so its
// stream has no gap. A request is answered only once every in-sync backup
// of its partition (the routing table's Backups minus Syncing) has applied
// the partition up to the sequence number the request left it at. A backup
// that refuses or does not answer within ReplicationTimeout is reported to
// the leader, which removes it from the partition by a committed entry;
// only then can the request be answered without it.
//
// A syncing backup is reported in sync only once it holds every write
// the primary acknowledged, not merely its copy: writes acknowledged while
// it was syncing did not wait for it, and the ones queued behind its copy
// may still be on their way. So, once its copy and the mutations queued
// behind it (in the bulk lane, paced with other partitions' copies) are
// applied, it "joins":
// every request from then on waits for it as for an in-sync backup, and
// the highest sequence number acknowledged before (repPart.maxAcked) is
// its target; it is reported in sync once it acknowledged that target.
// Reporting it at its copy let the leader promote it (a planned move, or a
// failover) while a write acknowledged just before was still queued for
// it: the write was lost (found by the Jepsen harness, kill-leader: a
// restarted member slow to take its copy was reported in sync and made
// primary at once).

// MethodReplicate carries a primary's copies and mutations to a backup.
const MethodReplicate = "dmap.replicate"

// ReplicaReport is one change to a partition's replica set that a primary
// asks the leader to commit.
type ReplicaReport struct {
	// Partition and Epoch: the primary leads Partition at Epoch.
	Partition uint32 `msgpack:"p"`
	Epoch     uint64 `msgpack:"e"`
	// Member is the backup concerned.
	Member metadata.NodeID `msgpack:"m"`
	// InSync: the backup caught up (take it off Syncing); else it failed
	// to apply the primary's stream (remove it from Backups).
	InSync bool `msgpack:"in,omitempty"`
}

// ReplicaReporter commits reports through the Raft leader and returns the
// routing version that holds them.
type ReplicaReporter func(ctx context.Context, reports []ReplicaReport) (uint64, error)

// replicateRequest is one batch from a primary to one backup.
type replicateRequest struct {
	From    metadata.NodeID `msgpack:"f"`
	Version uint64          `msgpack:"v"`
	Items   []replItem      `msgpack:"items"`
}

// replItem is, for one partition at one epoch, an optional copy to install
// followed by mutations to apply.
type replItem struct {
	P     uint32             `msgpack:"p"`
	Epoch uint64             `msgpack:"e"`
	Snap  *PartitionSnapshot `msgpack:"snap,omitempty"`
	// Resume, instead of a copy: the backup (the primary of the epoch
	// before) keeps its own copy, which must be at sequence ResumeSeq.
	Resume    bool       `msgpack:"res,omitempty"`
	ResumeSeq uint64     `msgpack:"rsq,omitempty"`
	Muts      []Mutation `msgpack:"m,omitempty"`
	// Chunk numbers the pieces of a copy sent in several (from 0); More:
	// further chunks of the copy follow (chunk.go).
	Chunk uint32 `msgpack:"ch,omitempty"`
	More  bool   `msgpack:"more,omitempty"`
}

type replicateReply struct {
	Code    string       `msgpack:"code,omitempty"`
	Message string       `msgpack:"msg,omitempty"`
	Results []replResult `msgpack:"res,omitempty"`
}

// replResult: the backup's sequence number for P after the item, or why it
// refused it.
type replResult struct {
	P   uint32 `msgpack:"p"`
	Seq uint64 `msgpack:"s"`
	// Partial: a chunk of a copy was staged; the copy is not installed yet.
	Partial bool   `msgpack:"part,omitempty"`
	Code    string `msgpack:"code,omitempty"`
	Message string `msgpack:"msg,omitempty"`
}

const (
	codeNotBackup   = "not_backup"
	codeNotAttached = "not_attached"
	codeSeqGap      = "sequence_gap"
)

// replication is the primary-side state. Lock order: a partition lock may
// be held when mu is taken (OnMutation, BackfillSnapshot); never call the
// engine or take Service.mu while holding mu.
type replication struct {
	mu    sync.Mutex
	parts []repPart
	links map[metadata.NodeID]*peerLink
	// changed is closed (and replaced) whenever an ack, a failure or a new
	// routing table may let a waiting request go on.
	changed chan struct{}
	// reports queued for the leader, keyed by (partition, member).
	pending  map[reportKey]ReplicaReport
	reportCh chan struct{}
	// resume holds, per partition, a previous primary that may resume as
	// a backup without a copy (see fencePrevious).
	resume map[uint32]resumeHint
}

// resumeHint: the previous primary of a partition, fenced with the same
// sequence number as ours, resumes as our backup without a copy.
type resumeHint struct {
	member metadata.NodeID
	epoch  uint64
	seq    uint64
}

type reportKey struct {
	p uint32
	m metadata.NodeID
}

// repPart: the epoch this member serves the partition at (0: not serving)
// and its backups' progress at that epoch.
type repPart struct {
	epoch uint64
	peers map[metadata.NodeID]*repPeer
	// changed, when not nil, is closed when an ack for this partition may
	// let its waiters go on (made by the first waiter; a global change
	// closes replication.changed instead).
	changed chan struct{}
	// maxAcked is the highest sequence number a request answered at
	// epoch ackEpoch waited for (set under mu together with the check
	// that let it go). Kept when the partition stops being served here,
	// for the fence answer to the next primary.
	ackEpoch, maxAcked uint64
}

// noteAckedLocked records that a request at epoch left partition rp at
// sequence number seq and is answered.
func (rp *repPart) noteAckedLocked(epoch, seq uint64) {
	if rp.ackEpoch != epoch {
		rp.ackEpoch, rp.maxAcked = epoch, 0
	}
	rp.maxAcked = max(rp.maxAcked, seq)
}

type repPeer struct {
	link *peerLink
	// bulk: the partition's items for this backup go to the bulk lane
	// (from its copy until the copy and the mutations queued behind it
	// are delivered); bulkQueued counts them there.
	bulk       bool
	bulkQueued int
	// snapSeq is the sequence number of the copy the backup was sent;
	// acked the highest sequence number it reported applied.
	snapSeq, acked uint64
	gotSnap        bool
	// joined: its copy is applied and the mutations queued behind it in
	// the bulk lane are delivered, and every request since waits for it
	// (an in-sync backup, for the primary, whether or not the table says
	// so yet). syncTarget: the highest sequence number acknowledged
	// before it joined; it is reported in sync once acked reaches it.
	joined     bool
	syncTarget uint64
	failed     bool
	// reported: an in-sync or failure report for it was queued.
	reported bool
}

// peerLink sends to one backup member, one batch at a time, from two
// lanes: queue holds the mutations of partitions the backup is attached
// to; bulk holds copies and the mutations that follow a copy until it is
// delivered. Order is kept per partition (a partition's items are in one
// lane at a time), and a copy never delays another partition's writes.
// The bulk lane is paced to BackfillRate bytes per second.
type peerLink struct {
	id       metadata.NodeID
	addr     string
	queue    []repItem
	bulk     []repItem
	bulkNext time.Time
	// inflightSince is when the oldest item of the batch being sent was
	// queued (zero: none in flight).
	inflightSince time.Time
	wake          chan struct{}
	// done is closed when the member left the routing table: the sender
	// exits.
	done chan struct{}
}

type repItem struct {
	p     uint32
	epoch uint64
	// peer is the attachment the item was queued for: an item outlives a
	// detach and re-attach of the same backup, and is then dropped.
	peer *repPeer
	snap *PartitionSnapshot
	// chunk and more: snap is chunk number chunk of a copy, and more
	// chunks follow.
	chunk uint32
	more  bool
	// resume: a Resume item at sequence m.Seq.
	resume bool
	m      Mutation
	// at is when the item was queued (for the lag metric).
	at time.Time
}

func (r *replication) broadcastLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// broadcastPartLocked wakes the waiters of partition p only (an ack of a
// batch wakes those whose partitions it carried, not every waiter).
func (r *replication) broadcastPartLocked(p uint32) {
	if rp := &r.parts[p]; rp.changed != nil {
		close(rp.changed)
		rp.changed = nil
	}
}

func (l *peerLink) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// onMutation is Engine.OnMutation: it queues m for every attached backup
// of p that has not failed. Called with p's lock held.
func (s *Service) onMutation(p uint32, m Mutation) {
	r := &s.rep
	r.mu.Lock()
	rp := &r.parts[p]
	if rp.epoch == m.Epoch && len(rp.peers) > 0 {
		now := time.Now()
		for _, peer := range rp.peers {
			switch {
			case peer.failed:
			case peer.bulk:
				peer.link.bulk = append(peer.link.bulk, repItem{p: p, epoch: m.Epoch, peer: peer, m: m, at: now})
				peer.bulkQueued++
				peer.link.kick()
			default:
				peer.link.queue = append(peer.link.queue, repItem{p: p, epoch: m.Epoch, peer: peer, m: m, at: now})
				peer.link.kick()
			}
		}
	}
	r.mu.Unlock()
}

// linkLocked returns the sender to member id, starting it if needed.
func (s *Service) linkLocked(id metadata.NodeID, addr string) *peerLink {
	r := &s.rep
	if l := r.links[id]; l != nil {
		l.addr = addr
		return l
	}
	l := &peerLink{id: id, addr: addr, wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.links[id] = l
	s.wg.Add(1)
	go s.sendLoop(l)
	return l
}

// syncReplication makes the replication state follow table t: partitions
// this member serves as ready primary get their backups attached (a copy
// then the stream), backups no longer listed are detached, syncing
// backups whose copy is applied are reported in sync, and partitions it no
// longer serves stop replicating. Called by OnRouting and after a
// partition becomes ready, never with Service.mu or a partition lock held.
func (s *Service) syncReplication(t *metadata.RoutingTable) {
	type attach struct {
		p      uint32
		epoch  uint64
		member metadata.Member
	}
	var attaches []attach
	s.mu.Lock()
	ready := s.mu.ready.snapshot()
	s.mu.Unlock()
	r := &s.rep
	r.mu.Lock()
	for i := range t.Partitions {
		p := &t.Partitions[i]
		rp := &r.parts[p.ID]
		epoch := ready[p.ID]
		if p.Primary != s.self || epoch != p.LeaderEpoch {
			if rp.epoch != 0 {
				rp.epoch, rp.peers = 0, nil
			}
			continue
		}
		if rp.epoch != epoch {
			rp.epoch, rp.peers = epoch, make(map[metadata.NodeID]*repPeer, len(p.Backups))
		}
		for id := range rp.peers {
			if !slices.Contains(p.Backups, id) {
				delete(rp.peers, id)
			}
		}
		for _, b := range p.Backups {
			peer := rp.peers[b]
			if peer == nil {
				if m, ok := t.Member(b); ok {
					attaches = append(attaches, attach{p: p.ID, epoch: epoch, member: m})
				}
				continue
			}
			if !peer.reported && !peer.failed && peer.caughtUp() && slices.Contains(p.Syncing, b) {
				peer.reported = true
				s.queueReportLocked(ReplicaReport{Partition: p.ID, Epoch: epoch, Member: b, InSync: true})
			}
		}
	}
	// Senders to members no longer in the table stop.
	for id, l := range r.links {
		if _, ok := t.Member(id); !ok {
			close(l.done)
			delete(r.links, id)
		}
	}
	r.broadcastLocked()
	r.mu.Unlock()
	for _, a := range attaches {
		s.attach(a.p, a.epoch, a.member)
	}
}

// attach registers backup m of partition p (served here at epoch) and
// queues a copy of p for it, taken under p's lock so that the mutations
// queued after it follow it exactly.
func (s *Service) attach(p uint32, epoch uint64, m metadata.Member) {
	r := &s.rep
	r.mu.Lock()
	rp := &r.parts[p]
	skip := rp.epoch != epoch || rp.peers[m.ID] != nil
	r.mu.Unlock()
	if skip {
		return
	}
	r.mu.Lock()
	hint, ok := r.resume[p]
	delete(r.resume, p)
	r.mu.Unlock()
	if ok && hint.member == m.ID && hint.epoch == epoch {
		resumed := false
		_ = s.engine.WithSeq(p, func(seq uint64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			rp := &r.parts[p]
			if seq != hint.seq || rp.epoch != epoch || rp.peers[m.ID] != nil {
				return
			}
			link := s.linkLocked(m.ID, m.ClusterAddr)
			peer := &repPeer{link: link, snapSeq: seq}
			rp.peers[m.ID] = peer
			link.queue = append(link.queue, repItem{p: p, epoch: epoch, peer: peer, resume: true, m: Mutation{Seq: seq}, at: time.Now()})
			link.kick()
			resumed = true
		})
		if resumed {
			return
		}
	}
	_ = s.engine.BackfillSnapshot(p, func(snap *PartitionSnapshot) {
		r.mu.Lock()
		defer r.mu.Unlock()
		rp := &r.parts[p]
		if rp.epoch != epoch || rp.peers[m.ID] != nil || snap.Fence != epoch {
			return
		}
		link := s.linkLocked(m.ID, m.ClusterAddr)
		chunks := splitSnapshot(snap, s.cfg.BackfillChunkBytes)
		peer := &repPeer{link: link, snapSeq: snap.Seq, bulk: true, bulkQueued: len(chunks)}
		rp.peers[m.ID] = peer
		now := time.Now()
		for i, c := range chunks {
			link.bulk = append(link.bulk, repItem{p: p, epoch: epoch, peer: peer, snap: c,
				chunk: uint32(i), more: i < len(chunks)-1, at: now})
		}
		link.kick()
	})
}

// Batch bounds of one replicate call.
const (
	maxBatchItems = 8192
	maxBatchBytes = 8 << 20
)

func (it *repItem) size() int {
	if it.snap != nil {
		n := 64
		for i := range it.snap.DMaps {
			for j := range it.snap.DMaps[i].Entries {
				e := &it.snap.DMaps[i].Entries[j]
				n += len(e.Key) + len(e.Value) + 24
			}
		}
		return n
	}
	return 48 + len(it.m.Key) + len(it.m.Value) + len(it.m.DMap)
}

// sendLoop sends link's lanes, one batch at a time: the mutation lane
// first, then one paced batch of the bulk lane. A batch that cannot be
// delivered within ReplicationTimeout fails every partition the backup was
// attached for: they are reported to the leader.
func (s *Service) sendLoop(l *peerLink) {
	defer s.wg.Done()
	r := &s.rep
	var pace *time.Timer
	var paced <-chan time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-l.done:
			return
		case <-l.wake:
		case <-paced:
			paced = nil
		}
		for {
			fast, fastAddr, fastN := s.takeBatch(l, false)
			if len(fast) > 0 {
				s.sendBatch(l, fastAddr, fast, false)
			}
			r.mu.Lock()
			wait := time.Until(l.bulkNext)
			hasBulk := len(l.bulk) > 0
			r.mu.Unlock()
			if hasBulk && wait > 0 {
				if paced == nil {
					if pace == nil {
						pace = time.NewTimer(wait)
					} else {
						pace.Reset(wait)
					}
					paced = pace.C
				}
				if fastN == 0 {
					break
				}
				continue
			}
			bulk, bulkAddr, bulkN := s.takeBatch(l, true)
			if len(bulk) > 0 {
				s.sendBatch(l, bulkAddr, bulk, true)
			}
			if fastN == 0 && bulkN == 0 {
				break
			}
		}
	}
}

// takeBatch takes the next batch off one of l's lanes, leaving out items
// of partitions whose replication moved on; n is how many items it took
// off the lane.
func (s *Service) takeBatch(l *peerLink, bulk bool) (batch []repItem, addr string, n int) {
	r := &s.rep
	r.mu.Lock()
	defer r.mu.Unlock()
	lane := &l.queue
	limit := maxBatchBytes
	if bulk {
		lane = &l.bulk
		limit = s.cfg.BackfillChunkBytes // a batch of the bulk lane is about one chunk
	}
	bytes := 0
	for n < len(*lane) && n < maxBatchItems {
		sz := (*lane)[n].size()
		if n > 0 && bytes+sz > limit {
			break // a batch stays within limit unless one item exceeds it
		}
		bytes += sz
		n++
	}
	taken := (*lane)[:n]
	batch = make([]repItem, 0, n)
	for _, it := range taken {
		if bulk {
			it.peer.bulkQueued--
		}
		rp := &r.parts[it.p]
		if rp.epoch == it.epoch && rp.peers[l.id] == it.peer && !it.peer.failed {
			batch = append(batch, it)
		}
	}
	if len(batch) > 0 {
		l.inflightSince = batch[0].at // sendBatch resets it
	}
	*lane = slices.Delete(*lane, 0, n)
	if len(*lane) == 0 {
		*lane = nil
	}
	if bulk && n > 0 && s.cfg.BackfillRate > 0 {
		l.bulkNext = time.Now().Add(time.Duration(float64(bytes) / float64(s.cfg.BackfillRate) * float64(time.Second)))
	}
	return batch, l.addr, n
}

func (s *Service) sendBatch(l *peerLink, addr string, batch []repItem, bulk bool) {
	req := replicateRequest{From: s.self, Version: s.cfg.Routing.Routing().Version}
	for _, it := range batch {
		k := len(req.Items) - 1
		if it.snap == nil && !it.resume && k >= 0 && req.Items[k].P == it.p && req.Items[k].Epoch == it.epoch {
			req.Items[k].Muts = append(req.Items[k].Muts, it.m)
			continue
		}
		item := replItem{P: it.p, Epoch: it.epoch, Snap: it.snap, Chunk: it.chunk, More: it.more}
		switch {
		case it.resume:
			item.Resume, item.ResumeSeq = true, it.m.Seq
		case it.snap == nil:
			item.Muts = []Mutation{it.m}
		}
		req.Items = append(req.Items, item)
	}
	// Encode once, into a buffer sized for the batch: a copy of a
	// partition is megabytes, and letting the encoder grow its buffer
	// doubles and copies it over and over.
	est := 256
	for i := range batch {
		est += batch[i].size() + 16
	}
	var buf bytes.Buffer
	buf.Grow(est)
	if err := msgpack.NewEncoder(&buf).Encode(&req); err != nil {
		s.log.Error("encoding a replication batch", "err", err)
		s.rep.mu.Lock()
		l.inflightSince = time.Time{}
		s.rep.mu.Unlock()
		return
	}
	body := msgpack.RawMessage(buf.Bytes())
	lane := LaneStream
	if bulk {
		lane = LaneBackfill
	}
	s.stats.sentBytes[lane].Add(uint64(len(body)))
	s.stats.sentBatches[lane].Add(1)
	deadline := time.Now().Add(s.cfg.ReplicationTimeout)
	wait := 5 * time.Millisecond
	var reply replicateReply
	var err error
	for {
		ctx, cancel := context.WithDeadline(s.ctx, deadline)
		reply = replicateReply{}
		err = s.cfg.Caller.Call(ctx, addr, MethodReplicate, body, &reply)
		cancel()
		if err == nil && reply.Code == "" {
			break
		}
		if err == nil {
			err = fmt.Errorf("%s: %s", reply.Code, reply.Message)
		}
		if s.ctx.Err() != nil {
			return
		}
		if time.Now().Add(wait).After(deadline) {
			break
		}
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	r := &s.rep
	r.mu.Lock()
	defer r.mu.Unlock()
	l.inflightSince = time.Time{}
	if err != nil {
		// The backup did not answer: every partition it backs here is out
		// of sync (later items may be queued behind the lost ones).
		s.log.Warn("backup not answering: reporting it out of sync", "backup", l.id, "err", err)
		for i := range r.parts {
			rp := &r.parts[i]
			if peer := rp.peers[l.id]; peer != nil && !peer.failed {
				s.failPeerLocked(uint32(i), rp, peer)
			}
		}
		l.queue, l.bulk = nil, nil
		r.broadcastLocked()
		return
	}
	for _, res := range reply.Results {
		if int(res.P) >= len(r.parts) {
			continue
		}
		rp := &r.parts[res.P]
		peer := rp.peers[l.id]
		if peer == nil || peer.failed {
			continue
		}
		if res.Code != "" {
			s.log.Warn("backup refused replication: reporting it out of sync", "backup", l.id, "partition", res.P,
				"code", res.Code, "err", res.Message)
			s.failPeerLocked(res.P, rp, peer)
			continue
		}
		if res.Partial {
			continue // a chunk of its copy: nothing applied yet
		}
		peer.acked = max(peer.acked, res.Seq)
		if res.Seq >= peer.snapSeq {
			peer.gotSnap = true
		}
		if bulk && peer.bulk && peer.gotSnap {
			// Its copy is delivered: the mutations queued behind it
			// move to the fast lane (in order: none of this partition's
			// items is there, and no batch of this link is in flight),
			// and its next mutations go there too, so they never wait
			// behind other partitions' copies.
			if peer.bulkQueued > 0 {
				kept := l.bulk[:0]
				for _, it := range l.bulk {
					if it.peer == peer {
						l.queue = append(l.queue, it)
					} else {
						kept = append(kept, it)
					}
				}
				clear(l.bulk[len(kept):])
				l.bulk = kept
				peer.bulkQueued = 0
				l.kick()
			}
			peer.bulk = false
		}
		if peer.gotSnap && !peer.bulk && !peer.joined {
			// From here on every request waits for it (its mutations
			// take the fast lane, never behind other partitions'
			// copies); what was acknowledged before must reach it
			// before it is in sync.
			peer.joined = true
			if rp.ackEpoch == rp.epoch {
				peer.syncTarget = rp.maxAcked
			}
		}
	}
	// A syncing backup that caught up is reported on the next table or
	// here, whichever comes first.
	t := s.cfg.Routing.Routing()
	for _, res := range reply.Results {
		rp := &r.parts[res.P]
		peer := rp.peers[l.id]
		if peer == nil || peer.failed || peer.reported || !peer.caughtUp() {
			continue
		}
		if p, ok := t.Partition(res.P); ok && p.LeaderEpoch == rp.epoch && slices.Contains(p.Syncing, l.id) {
			peer.reported = true
			s.queueReportLocked(ReplicaReport{Partition: res.P, Epoch: rp.epoch, Member: l.id, InSync: true})
		}
	}
	for _, res := range reply.Results {
		if int(res.P) < len(r.parts) {
			r.broadcastPartLocked(res.P)
		}
	}
}

// caughtUp: the backup holds its copy and every write acknowledged
// before it joined (see joined).
func (peer *repPeer) caughtUp() bool {
	return peer.joined && peer.acked >= peer.syncTarget
}

func (s *Service) failPeerLocked(p uint32, rp *repPart, peer *repPeer) {
	s.stats.backupsFailed.Add(1)
	peer.failed = true
	peer.reported = true
	s.queueReportLocked(ReplicaReport{Partition: p, Epoch: rp.epoch, Member: peer.link.id})
}

func (s *Service) queueReportLocked(rep ReplicaReport) {
	r := &s.rep
	if rep.InSync {
		s.stats.backupsInSync.Add(1)
	}
	r.pending[reportKey{rep.Partition, rep.Member}] = rep
	select {
	case r.reportCh <- struct{}{}:
	default:
	}
}

// reportLoop sends queued replica reports to the leader in batches,
// retrying until they are committed or moot.
func (s *Service) reportLoop() {
	defer s.wg.Done()
	r := &s.rep
	wait := 10 * time.Millisecond
	for {
		select {
		case <-s.stop:
			return
		case <-r.reportCh:
		}
		for {
			r.mu.Lock()
			reports := make([]ReplicaReport, 0, len(r.pending))
			for _, rep := range r.pending {
				reports = append(reports, rep)
			}
			clear(r.pending)
			r.mu.Unlock()
			if len(reports) == 0 {
				break
			}
			slices.SortFunc(reports, func(a, b ReplicaReport) int {
				if a.Partition != b.Partition {
					return int(a.Partition) - int(b.Partition)
				}
				return compareIDs(a.Member, b.Member)
			})
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			version, err := s.cfg.ReportReplicas(ctx, reports)
			if err == nil {
				_, err = s.cfg.Routing.WaitRouting(ctx, version)
			}
			cancel()
			if err == nil {
				wait = 10 * time.Millisecond
				s.syncReplication(s.cfg.Routing.Routing())
				continue
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("reporting replica changes to the leader", "reports", len(reports), "err", err)
			// Put back the ones not superseded, and try again.
			r.mu.Lock()
			for _, rep := range reports {
				k := reportKey{rep.Partition, rep.Member}
				if _, newer := r.pending[k]; !newer && r.parts[rep.Partition].epoch == rep.Epoch {
					r.pending[k] = rep
				}
			}
			r.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Second)
		}
	}
}

func compareIDs(a, b metadata.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errReplicaLost: the partition moved on (a new epoch or primary) before
// every in-sync backup acknowledged: the request's effect is unknown.
var errReplicaLost = errors.New("dataplane: partition moved on before its backups acknowledged")

// waitReplicated waits until every in-sync backup of partition pid (led
// here at epoch) has applied it up to its current sequence number (read
// once there is a backup to wait for; called after the request's change,
// so that number covers it). A syncing backup that joined (its copy is
// applied) counts as in sync. A backup that failed is removed by the
// leader meanwhile (reportLoop), which lets the wait end without it. The
// number is recorded as acknowledged (maxAcked) in the same step as the
// check that ends the wait.
func (s *Service) waitReplicated(ctx context.Context, pid uint32, epoch uint64) error {
	r := &s.rep
	var waitStart time.Time // when it first had to wait (for the metric)
	var seq uint64
	haveSeq := false
	defer func() {
		if waitStart.IsZero() {
			s.stats.replicationWait.Observe(0)
		} else {
			s.stats.replicationWait.Since(waitStart)
		}
	}()
	for {
		t := s.cfg.Routing.Routing()
		p := &metadata.Partition{}
		if int(pid) < len(t.Partitions) {
			p = &t.Partitions[pid]
		}
		if p.Primary != s.self || p.LeaderEpoch != epoch {
			return fmt.Errorf("%w: partition %d is at epoch %d led by %q", errReplicaLost, pid, p.LeaderEpoch, p.Primary)
		}
		if len(p.Backups) == 0 {
			// No backup in the current table: nothing to wait for. A
			// backup added later gets a copy taken after this change.
			return nil
		}
		if !haveSeq {
			seq, haveSeq = s.engine.Seq(pid), true
		}
		r.mu.Lock()
		ch := r.changed
		rp := &r.parts[pid]
		if rp.changed == nil {
			rp.changed = make(chan struct{})
		}
		pch := rp.changed
		done := rp.epoch == epoch
		for _, b := range p.Backups {
			if !done {
				break
			}
			peer := rp.peers[b]
			if slices.Contains(p.Syncing, b) && (peer == nil || !peer.joined) {
				continue
			}
			if peer == nil || peer.acked < seq || !peer.gotSnap {
				done = false
			}
		}
		if done {
			rp.noteAckedLocked(epoch, seq)
		}
		r.mu.Unlock()
		if done {
			return nil
		}
		if waitStart.IsZero() {
			waitStart = time.Now()
		} else if time.Since(waitStart) >= s.cfg.RouteTimeout {
			return fmt.Errorf("%w: backups of partition %d did not acknowledge in %s", ErrUnavailable, pid, s.cfg.RouteTimeout)
		}
		select {
		case <-ch:
		case <-pch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ticks.C():
			// A coarse clock (no timer per waiting write): the deadline
			// is checked above, at most one tick late.
		case <-s.stop:
			return fmt.Errorf("%w: member shutting down", ErrUnavailable)
		}
	}
}

// serveReplicate runs on a backup: it applies a primary's batch, item by
// item, refusing items from a member that is not the partition's primary
// at that epoch in this member's committed table.
func (s *Service) serveReplicate(ctx context.Context, req *replicateRequest) replicateReply {
	t := s.cfg.Routing.Routing()
	if req.Version > t.Version {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.RouteTimeout)
		nt, err := s.cfg.Routing.WaitRouting(wctx, req.Version)
		cancel()
		if err != nil {
			return replicateReply{Code: CodeUnavailable, Message: fmt.Sprintf("routing version %d not reached here", req.Version)}
		}
		t = nt
	}
	if !t.Initialized() {
		return replicateReply{Code: CodeUnavailable, Message: "routing table not initialized"}
	}
	out := replicateReply{Results: make([]replResult, 0, len(req.Items))}
	for i := range req.Items {
		it := &req.Items[i]
		res := replResult{P: it.P}
		seq, err := s.applyItem(t, req.From, it)
		res.Seq = seq
		switch {
		case errors.Is(err, errChunkStaged):
			res.Partial = true
		case err != nil:
			res.Code, res.Message = replCode(err), err.Error()
		}
		out.Results = append(out.Results, res)
	}
	return out
}

var (
	errNotBackup   = errors.New("dataplane: not a backup of the partition at that epoch")
	errNotAttached = errors.New("dataplane: no copy of the partition from this primary at this epoch")
)

func replCode(err error) string {
	switch {
	case errors.Is(err, errNotBackup):
		return codeNotBackup
	case errors.Is(err, errNotAttached):
		return codeNotAttached
	case errors.Is(err, ErrSeqGap):
		return codeSeqGap
	}
	return codeFor(err)
}

func (s *Service) applyItem(t *metadata.RoutingTable, from metadata.NodeID, it *replItem) (uint64, error) {
	p, ok := t.Partition(it.P)
	if !ok {
		return 0, fmt.Errorf("%w: partition %d out of range", ErrInvalid, it.P)
	}
	switch {
	case it.Epoch < p.LeaderEpoch:
		return 0, fmt.Errorf("%w: partition %d is at epoch %d here, batch from %d", ErrFencedEpoch, it.P, p.LeaderEpoch, it.Epoch)
	case it.Epoch > p.LeaderEpoch || p.Primary != from || !slices.Contains(p.Backups, s.self):
		s.dropStaged(it.P)
		return 0, fmt.Errorf("%w: partition %d at epoch %d is led by %q with backups %v here; %s sent epoch %d",
			errNotBackup, it.P, p.LeaderEpoch, p.Primary, p.Backups, from, it.Epoch)
	}
	if it.Snap != nil {
		if it.Snap.Fence != it.Epoch {
			return 0, fmt.Errorf("%w: copy of partition %d fenced at %d, sent at epoch %d", ErrInvalid, it.P, it.Snap.Fence, it.Epoch)
		}
		snap := it.Snap
		if it.More || it.Chunk > 0 {
			whole, err := s.stageChunk(from, it)
			if err != nil {
				return 0, err
			}
			snap = whole
		}
		// Build the copy without the service lock (other partitions'
		// requests need it); swap it in under the lock, if this member's
		// role for the partition has not changed meanwhile.
		prep, err := s.engine.PrepareInstall(it.P, snap)
		if err != nil {
			return 0, err
		}
		s.mu.Lock()
		cur, _ := s.cfg.Routing.Routing().Partition(it.P)
		ok := s.mu.ready.get(it.P) == 0 && s.mu.pulling[it.P] == 0 && cur.LeaderEpoch == it.Epoch && cur.Primary == from
		if ok {
			prep.Commit()
			s.mu.backupAt[it.P] = it.Epoch
			s.mu.held[it.P] = 0
		}
		s.mu.Unlock()
		if !ok {
			return 0, fmt.Errorf("%w: partition %d moved on while its copy was built", errNotBackup, it.P)
		}
	}
	s.mu.Lock()
	if it.Resume && it.Snap == nil && s.mu.resumable[it.P] == it.Epoch && s.mu.ready.get(it.P) == 0 &&
		s.mu.pulling[it.P] == 0 && s.engine.Seq(it.P) == it.ResumeSeq {
		// Our own copy (we led the partition at the epoch before, and
		// are fenced) is the new primary's: same stream, same number.
		s.mu.backupAt[it.P] = it.Epoch
		s.mu.resumable[it.P] = 0
	}
	attached := s.mu.backupAt[it.P] == it.Epoch
	s.mu.Unlock()
	if !attached {
		return 0, fmt.Errorf("%w: partition %d at epoch %d", errNotAttached, it.P, it.Epoch)
	}
	return s.engine.ApplyReplicated(it.P, it.Epoch, it.Muts)
}
