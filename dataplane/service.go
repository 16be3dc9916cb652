package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/olric-raft/olric-raft/internal/strictmsgpack"
	"github.com/olric-raft/olric-raft/internal/workpool"
	"github.com/olric-raft/olric-raft/metadata"
)

// Routing is what the service needs from the control plane: the committed
// routing table and a way to wait for a newer one.
type Routing interface {
	ID() metadata.NodeID
	Routing() *metadata.RoutingTable
	WaitRouting(ctx context.Context, version uint64) (*metadata.RoutingTable, error)
}

// Caller sends cluster RPCs to other members (transport.Client).
type Caller interface {
	Call(ctx context.Context, addr, method string, req, resp any) error
}

// LossReporter tells the Raft leader that partition p, just given to this
// member at leader epoch epoch, cannot be filled: the member that held its
// data is gone. The leader then marks the partition unavailable (CP: never
// served empty as if nothing had been lost).
type LossReporter func(ctx context.Context, p uint32, epoch uint64) error

// Cluster RPC methods served by the service.
const (
	MethodDo       = "dmap.do"       // run a Request on its partition's primary
	MethodTransfer = "dmap.transfer" // new primary pulls a partition from the previous one
	MethodRelease  = "dmap.release"  // new primary has installed it: the previous one may drop it
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// PartitionCount of the cluster (from the routing table).
	PartitionCount uint32
	Engine         *Engine
	Routing        Routing
	Caller         Caller
	// ReportLost is called when a partition's previous primary is gone.
	ReportLost LossReporter
	// MarkWritten commits, through the Raft leader, that partition p (led
	// here at epoch) is about to take its first write, and returns the
	// routing version that records it. Required.
	MarkWritten func(ctx context.Context, p uint32, epoch uint64) (uint64, error)
	Logger      *slog.Logger
	// RouteTimeout bounds how long one request may spend waiting for routing
	// to settle (stale routing, a partition being handed over) before it
	// fails with ErrUnavailable. Default 3s.
	RouteTimeout time.Duration
	// TransferConcurrency bounds partitions pulled at once. Default 4.
	TransferConcurrency int
	// NeverSent tells whether a Caller error means the request surely did
	// not leave this member (so a write may be retried); nil: never sure.
	NeverSent func(error) bool
	// ReportReplicas commits replica-set changes through the Raft leader
	// (a backup caught up, or failed). Required.
	ReportReplicas ReplicaReporter
	// LeaseValid reports whether this member holds a current primary
	// lease (see package node). A primary serves nothing without one. Nil
	// means always (single-process tests only).
	LeaseValid func() bool
	// ReplicationTimeout bounds how long a backup may take to acknowledge
	// a batch before it is reported out of sync. Default 1s.
	ReplicationTimeout time.Duration
	// BackfillRate paces the copies sent to each new backup, in bytes per
	// second per backup member, so that filling backups (on a join, after
	// a failover) leaves room for client traffic. Default 256 MiB/s;
	// negative: unpaced.
	BackfillRate int64
	// BackfillChunkBytes bounds the entries of one chunk of a copy sent
	// to a new backup (a copy travels in as many chunks as it needs, so
	// that no call exceeds the transport's frame limit). Default
	// DefaultBackfillChunkBytes (4 MiB).
	BackfillChunkBytes int
	// UnsafeAckBeforeReplication answers requests without waiting for the
	// in-sync backups: a deliberate bug for checker tests only.
	UnsafeAckBeforeReplication bool
}

// DefaultBackfillRate is ServiceConfig.BackfillRate's default.
const DefaultBackfillRate = 256 << 20

// epochs holds a leader epoch per partition: written under Service.mu,
// readable without it.
type epochs []atomic.Uint64

func (e epochs) get(p uint32) uint64    { return e[p].Load() }
func (e epochs) set(p uint32, v uint64) { e[p].Store(v) }

// snapshot returns the epochs as they are now.
func (e epochs) snapshot() []uint64 {
	out := make([]uint64, len(e))
	for i := range e {
		out[i] = e[i].Load()
	}
	return out
}

// Service routes DMap requests to partition primaries and serves the
// partitions this member is primary of. See doc.go for the protocol.
type Service struct {
	cfg    ServiceConfig
	log    *slog.Logger
	engine *Engine
	self   metadata.NodeID

	mu struct {
		sync.Mutex
		// ready[p] is the leader epoch at which this member holds partition
		// p's data as its primary (0: not serving p). Written under mu,
		// read without it by requests (localApply).
		ready epochs
		// pulling[p] is the epoch a transfer goroutine is filling p for.
		pulling []uint64
		// held[p] is the last epoch at which this member was p's ready
		// primary (it may hand the data over to the next primary).
		held []uint64
		// marking[p] is closed when an in-flight MarkWritten for p ends.
		marking map[uint32]chan struct{}
		// backupAt[p] is the leader epoch at which this member installed
		// a copy of p from its primary and applies its stream (0: none).
		backupAt []uint64
		// resumable[p] is the epoch of the primary this member was just
		// promoted away from (it led p at the epoch before and fenced it
		// for this one): it may become that primary's backup without a
		// copy if their sequence numbers match (0: no).
		resumable []uint64
		// staging holds copies being received in chunks, by partition
		// (chunk.go).
		staging map[uint32]*stagedCopy
		// takeover[p] is when OnRouting gave p to this member at epoch
		// takeover[p].epoch from a previous primary: becomeReady records
		// the handoff pause from there (ServiceStats.HandoffPause).
		takeover []takeover
	}
	rep   replication
	stats serviceStats
	// moved[p] is closed forwardWatchAfter after partition p's leader
	// epoch changes (and replaced with the next epoch's): forwarded calls
	// made at that epoch are then given up (see forward). Kept by
	// watchEpochs; nil entries until it saw a table.
	moved []atomic.Pointer[epochSignal]
	// fwdQueues holds, by cluster address, the requests queued for each
	// primary (forward_batch.go).
	fwdQueues sync.Map
	// workers run the requests of a batch a peer forwarded here.
	workers *workpool.Pool
	// ticks wakes replication waits to check their deadline.
	ticks *broadcastTicker
	sem   chan struct{}
	// ctx is cancelled by Close: every transfer, release and loss report
	// runs under it, so Close never waits for a slow peer.
	ctx     context.Context
	cancel  context.CancelFunc
	stop    <-chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
}

// NewService returns a service; call OnRouting with every new table.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Engine == nil || cfg.Routing == nil || cfg.Caller == nil || cfg.PartitionCount == 0 || cfg.MarkWritten == nil || cfg.ReportReplicas == nil {
		return nil, fmt.Errorf("%w: service needs a partition count, an engine, routing, a caller, MarkWritten and ReportReplicas", ErrInvalid)
	}
	if cfg.Engine.PartitionCount() != cfg.PartitionCount {
		return nil, fmt.Errorf("%w: engine has %d partitions, service %d", ErrInvalid, cfg.Engine.PartitionCount(), cfg.PartitionCount)
	}
	if cfg.ReplicationTimeout <= 0 {
		cfg.ReplicationTimeout = time.Second
	}
	if cfg.BackfillRate == 0 {
		cfg.BackfillRate = DefaultBackfillRate
	}
	if cfg.BackfillChunkBytes <= 0 {
		cfg.BackfillChunkBytes = DefaultBackfillChunkBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RouteTimeout <= 0 {
		cfg.RouteTimeout = 3 * time.Second
	}
	if cfg.TransferConcurrency <= 0 {
		cfg.TransferConcurrency = 4
	}
	s := &Service{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "dataplane"),
		engine: cfg.Engine,
		self:   cfg.Routing.ID(),
		sem:    make(chan struct{}, cfg.TransferConcurrency),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stop = s.ctx.Done()
	n := cfg.PartitionCount
	s.mu.ready = make(epochs, n)
	s.mu.pulling = make([]uint64, n)
	s.mu.held = make([]uint64, n)
	s.mu.marking = make(map[uint32]chan struct{})
	s.mu.backupAt = make([]uint64, n)
	s.mu.resumable = make([]uint64, n)
	s.mu.staging = make(map[uint32]*stagedCopy)
	s.mu.takeover = make([]takeover, n)
	s.rep.resume = make(map[uint32]resumeHint)
	s.rep.parts = make([]repPart, n)
	s.rep.links = make(map[metadata.NodeID]*peerLink)
	s.rep.changed = make(chan struct{})
	s.rep.pending = make(map[reportKey]ReplicaReport)
	s.rep.reportCh = make(chan struct{}, 1)
	// Every mutation the engine makes as primary is replicated.
	cfg.Engine.OnMutation = s.onMutation
	s.wg.Add(1)
	go s.reportLoop()
	s.moved = make([]atomic.Pointer[epochSignal], n)
	s.workers = workpool.New(2 * maxForwardBatch)
	s.ticks = newBroadcastTicker()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.ticks.run(s.stop, min(cfg.RouteTimeout/10, 100*time.Millisecond))
	}()
	s.wg.Add(1)
	go s.watchEpochs()
	return s, nil
}

// epochSignal is closed forwardWatchAfter after its partition leaves
// leader epoch epoch.
type epochSignal struct {
	epoch uint64
	ch    chan struct{}
}

// watchEpochs keeps s.moved in step with the committed routing tables.
func (s *Service) watchEpochs() {
	defer s.wg.Done()
	for v := uint64(1); ; {
		t, err := s.cfg.Routing.WaitRouting(s.ctx, v)
		if err != nil {
			return
		}
		if t.Initialized() && len(t.Partitions) == len(s.moved) {
			for i := range t.Partitions {
				e := t.Partitions[i].LeaderEpoch
				old := s.moved[i].Load()
				if old != nil && old.epoch >= e {
					continue
				}
				s.moved[i].Store(&epochSignal{epoch: e, ch: make(chan struct{})})
				if old != nil {
					// A grace period, as a call that answers quickly is
					// not given up: only one stuck on a primary that no
					// longer leads (paused, cut off).
					time.AfterFunc(forwardWatchAfter, func() { close(old.ch) })
				}
			}
		}
		v = max(v, t.Version) + 1 // the table may not change with every applied index
	}
}

// Close stops the transfer goroutines and waits for them. Idempotent.
func (s *Service) Close() {
	s.closeMu.Do(s.cancel)
	s.wg.Wait()
	s.workers.Stop()
}

// OnRouting adapts the service to a newly committed routing table. The
// node calls it from one goroutine, in version order (it may skip
// versions: every decision is made from the table alone).
//
//  1. Partitions this member no longer leads are fenced at their new epoch
//     at once: an in-flight write of the old epoch cannot apply after this.
//  2. Partitions it newly leads are filled: fresh ones (no previous
//     primary) start empty; others are pulled from the previous primary,
//     which has fenced them; if that member is gone, the loss is reported
//     to the leader. Until filled, requests for them wait (bounded).
func (s *Service) OnRouting(t *metadata.RoutingTable) {
	if !t.Initialized() {
		return
	}
	var pulls []metadata.Partition
	latest := s.cfg.Routing.Routing() // t or newer
	if len(latest.Partitions) != len(t.Partitions) {
		latest = t
	}
	s.mu.Lock()
	now := time.Now() // the handoff pause of the partitions taken over starts here
	for i := range t.Partitions {
		p := t.Partitions[i]
		if p.Primary != s.self {
			s.mu.takeover[p.ID] = takeover{}
			if s.mu.ready.get(p.ID) != 0 {
				s.mu.held[p.ID] = s.mu.ready.get(p.ID)
				s.mu.ready.set(p.ID, 0)
			}
			s.engine.Fence(p.ID, p.LeaderEpoch)
			if s.mu.resumable[p.ID] != 0 && s.mu.resumable[p.ID] != p.LeaderEpoch {
				s.mu.resumable[p.ID] = 0
			}
			if s.mu.backupAt[p.ID] != 0 && !slices.Contains(p.Backups, s.self) &&
				s.mu.held[p.ID] == 0 && s.mu.pulling[p.ID] == 0 && !latest.Partitions[p.ID].Holds(s.self) &&
				!slices.Contains(latest.Partitions[p.ID].Backups, s.self) {
				// No longer a backup: the copy goes (unless the new
				// primary may still pull it from us, or we were promoted
				// and are still fencing the primary before us). t may be
				// behind the committed table the copy was installed
				// under (replication checks the newest): a copy the
				// newest table still gives us stays, or a backup
				// reported in sync would hold nothing.
				s.mu.backupAt[p.ID] = 0
				s.engine.Drop(p.ID)
			}
			continue
		}
		if s.mu.ready.get(p.ID) == p.LeaderEpoch || s.mu.pulling[p.ID] == p.LeaderEpoch {
			continue
		}
		if p.PrevPrimary == "" || !p.Written {
			// Fresh: first assignment, force-assigned after a loss, or never
			// written (no write was ever acknowledged: the first one waits
			// for the Written mark). Data held here from an earlier life of
			// the partition is stale.
			s.engine.Drop(p.ID)
			s.engine.Fence(p.ID, p.LeaderEpoch)
			s.mu.ready.set(p.ID, p.LeaderEpoch)
			s.mu.backupAt[p.ID] = 0
			s.mu.takeover[p.ID] = takeover{}
			continue
		}
		if p.PrevPrimary == s.self && s.mu.held[p.ID] == p.PrevEpoch && p.PrevEpoch != 0 {
			// We were its ready primary just before: keep serving.
			s.engine.Fence(p.ID, p.LeaderEpoch)
			s.mu.ready.set(p.ID, p.LeaderEpoch)
			s.mu.takeover[p.ID] = takeover{}
			continue
		}
		// Promoted from in-sync backup (p.Promoted, with our copy at the
		// previous epoch) or not, the partition waits for acquire: it
		// fences the previous primary, or pulls from it.
		s.mu.ready.set(p.ID, 0)
		s.mu.pulling[p.ID] = p.LeaderEpoch
		s.mu.takeover[p.ID] = takeover{epoch: p.LeaderEpoch, at: now}
		pulls = append(pulls, p)
	}
	s.mu.Unlock()
	for _, p := range pulls {
		s.wg.Add(1)
		go s.acquire(t, p)
	}
	s.syncReplication(t)
}

// acquire fills partition p (led by this member at p.LeaderEpoch) from its
// previous primary, retrying until it succeeds, the partition moves on, or
// the service closes. If the previous primary is gone (failed or removed)
// or never held the data, the loss is reported to the leader, which marks
// the partition unavailable (and refuses while the previous primary is
// alive: then pulling goes on). The transfer semaphore is held only while a
// pull is in flight, never across a backoff, so one stuck partition cannot
// starve the others.
func (s *Service) acquire(t *metadata.RoutingTable, p metadata.Partition) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if s.mu.pulling[p.ID] == p.LeaderEpoch {
			s.mu.pulling[p.ID] = 0
		}
		s.mu.Unlock()
	}()
	wait := 10 * time.Millisecond
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 500*time.Millisecond)
		}
		cur := s.cfg.Routing.Routing()
		cp, ok := cur.Partition(p.ID)
		movedOn := !ok || cp.Primary != s.self || cp.LeaderEpoch != p.LeaderEpoch
		promoted := s.promoted(p)
		if movedOn && !promoted {
			return // moved on; OnRouting takes it from here
		}
		prev, known := cur.Member(p.PrevPrimary)
		if promoted {
			// We hold every acknowledged write already. Serve once the
			// previous primary cannot: it is failed or removed (the
			// leader declares that only after its lease expired), or it
			// confirmed it fenced the partition at our epoch. If the
			// partition moved on meanwhile, our copy is still the one
			// the next primary needs: once the previous primary is
			// fenced we hold it for our epoch, and hand it over.
			var err error
			if known && prev.State != metadata.MemberFailed && prev.ID != s.self {
				err = s.fencePrevious(p, prev)
			}
			if err == nil && movedOn {
				s.mu.Lock()
				if s.mu.backupAt[p.ID] == p.PrevEpoch {
					s.mu.held[p.ID] = p.LeaderEpoch
				}
				s.mu.Unlock()
				s.log.Info("partition promoted and moved on before it served: holding it for the next primary",
					"partition", p.ID, "epoch", p.LeaderEpoch)
				return
			}
			if err == nil && s.becomeReady(p, nil) {
				s.log.Info("partition promoted from in-sync backup", "partition", p.ID, "epoch", p.LeaderEpoch,
					"previous_primary", p.PrevPrimary, "took", time.Since(start).Round(time.Millisecond))
				s.syncReplication(s.cfg.Routing.Routing())
				return
			}
			if err != nil && attempt%20 == 0 {
				s.log.Warn("fencing the previous primary", "partition", p.ID, "epoch", p.LeaderEpoch,
					"from", p.PrevPrimary, "attempt", attempt, "err", err)
			}
			continue
		}
		if !known || prev.State == metadata.MemberFailed {
			if s.reportLost(p, prev, known) {
				return
			}
			continue
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.stop:
			return
		}
		err := s.pull(p, prev)
		<-s.sem
		if err == nil {
			s.log.Info("partition handed over", "partition", p.ID, "epoch", p.LeaderEpoch, "from", prev.ID,
				"took", time.Since(start).Round(time.Millisecond))
			s.syncReplication(s.cfg.Routing.Routing())
			return
		}
		if errors.Is(err, errNotHolder) {
			// The previous primary never held the data at its epoch (it was
			// itself still filling it): the data is not there to take.
			if s.reportLost(p, prev, known) {
				return
			}
			continue
		}
		if attempt%20 == 0 {
			s.log.Warn("pulling partition from previous primary", "partition", p.ID, "epoch", p.LeaderEpoch,
				"from", p.PrevPrimary, "attempt", attempt, "err", err)
		}
	}
}

// reportLost reports partition p lost to the leader once, and reports
// whether the report was accepted (or made moot).
func (s *Service) reportLost(p metadata.Partition, prev metadata.Member, known bool) bool {
	state := "removed"
	if known {
		state = prev.State.String()
	}
	if s.cfg.ReportLost == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	err := s.cfg.ReportLost(ctx, p.ID, p.LeaderEpoch)
	cancel()
	if err != nil {
		s.log.Warn("reporting partition lost", "partition", p.ID, "epoch", p.LeaderEpoch, "err", err)
		return false
	}
	s.log.Error("partition data lost: its previous primary cannot hand it over; reported unavailable",
		"partition", p.ID, "epoch", p.LeaderEpoch, "previous_primary", p.PrevPrimary, "previous_state", state)
	return true
}

// transferRequest asks the previous primary for partition P as of leader
// epoch Epoch (the new primary's), once its routing reaches Version. With
// FenceOnly it only fences the partition there (the new primary was its
// in-sync backup and holds the data).
type transferRequest struct {
	P         uint32 `msgpack:"p"`
	Epoch     uint64 `msgpack:"e"`
	Version   uint64 `msgpack:"v"`
	FenceOnly bool   `msgpack:"fo,omitempty"`
}

// promoted reports whether partition p, now led here, was promoted from
// this member's in-sync copy: the FSM says the new primary was in sync,
// and the copy here is the one from the previous epoch's primary.
func (s *Service) promoted(p metadata.Partition) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.Promoted && p.PrevEpoch != 0 && s.mu.backupAt[p.ID] == p.PrevEpoch
}

// takeover is when this member was given a partition at a leader epoch
// from a previous primary (the zero value: none pending).
type takeover struct {
	epoch uint64
	at    time.Time
}

// becomeReady marks p (led here at p.LeaderEpoch) ready, after install
// (when not nil) replaced its data, unless the partition moved on. It is
// the only way a partition taken over from a previous primary becomes
// ready, so it records the handoff pause.
//
// The copy is built before the service lock is taken (every request and
// every other handover needs that lock; building a large partition takes
// a while) and swapped in under it, after the routing check, as Install
// would: building reads no state of the partition, so the check, the swap
// and the ready mark stay one atomic step.
func (s *Service) becomeReady(p metadata.Partition, install *PartitionSnapshot) bool {
	var prep *PreparedInstall
	if install != nil {
		var err error
		if prep, err = s.engine.PrepareInstall(p.ID, install); err != nil {
			s.log.Error("installing a partition copy", "partition", p.ID, "err", err)
			return false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cfg.Routing.Routing()
	if cp, ok := cur.Partition(p.ID); !ok || cp.Primary != s.self || cp.LeaderEpoch != p.LeaderEpoch {
		return false
	}
	if prep != nil {
		prep.Commit()
	}
	s.engine.Fence(p.ID, p.LeaderEpoch)
	s.mu.ready.set(p.ID, p.LeaderEpoch)
	s.mu.backupAt[p.ID] = 0
	if to := s.mu.takeover[p.ID]; to.epoch == p.LeaderEpoch {
		s.mu.takeover[p.ID] = takeover{}
		s.stats.handedOff(Handoff{Partition: p.ID, Epoch: p.LeaderEpoch, At: to.at, Pause: time.Since(to.at), Promoted: install == nil})
	}
	return true
}

// fencePrevious has the previous primary of p fence it at p's epoch: after
// that, it can neither take a write nor serve a read of the old epoch.
//
// When the previous primary will back the partition up and its sequence
// number equals ours, the two copies are the same (both are that
// primary's stream at the epoch before, up to that number): it resumes
// as our backup without a copy (see attach).
func (s *Service) fencePrevious(p metadata.Partition, prev metadata.Member) error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	var reply transferReply
	if err := s.cfg.Caller.Call(ctx, prev.ClusterAddr, MethodTransfer, &transferRequest{P: p.ID, Epoch: p.LeaderEpoch, FenceOnly: true}, &reply); err != nil {
		return err
	}
	if reply.Code != "" {
		return fmt.Errorf("fencing partition %d on %s refused: %s: %s", p.ID, prev.ID, reply.Code, reply.Message)
	}
	own := s.engine.Seq(p.ID)
	if reply.AckedEpoch == p.PrevEpoch && reply.AckedSeq > own {
		// Cannot happen while a backup is reported in sync only once it
		// holds every acknowledged write (replication.go); if it does,
		// say so loudly: acknowledged writes are missing here.
		s.stats.promotedBehind.Add(1)
		s.log.Error("promoted copy lacks acknowledged writes of the previous primary",
			"partition", p.ID, "epoch", p.LeaderEpoch, "previous_primary", prev.ID,
			"acknowledged_seq", reply.AckedSeq, "own_seq", own)
	}
	if reply.Resumable && reply.Seq == own {
		s.rep.mu.Lock()
		s.rep.resume[p.ID] = resumeHint{member: prev.ID, epoch: p.LeaderEpoch, seq: reply.Seq}
		s.rep.mu.Unlock()
	}
	return nil
}

type transferReply struct {
	Code     string             `msgpack:"code,omitempty"`
	Message  string             `msgpack:"msg,omitempty"`
	Snapshot *PartitionSnapshot `msgpack:"snap,omitempty"`
	// A fence-only answer from the primary of the epoch just before:
	// its sequence number for the partition once fenced, and whether it
	// may resume as a backup from there (Resumable).
	Seq       uint64 `msgpack:"seq,omitempty"`
	Resumable bool   `msgpack:"rs,omitempty"`
	// AckedSeq: the highest sequence number a request it answered at
	// epoch AckedEpoch left the partition at (a fence-only answer); the
	// promoted copy must be at least there.
	AckedEpoch uint64 `msgpack:"ae,omitempty"`
	AckedSeq   uint64 `msgpack:"as,omitempty"`
}

var errNotHolder = errors.New("dataplane: previous primary does not hold the partition")

func (s *Service) pull(p metadata.Partition, prev metadata.Member) error {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	var reply transferReply
	if err := s.cfg.Caller.Call(ctx, prev.ClusterAddr, MethodTransfer, &transferRequest{P: p.ID, Epoch: p.LeaderEpoch}, &reply); err != nil {
		return err
	}
	if reply.Code == codeNotHolder {
		return fmt.Errorf("%w: %s", errNotHolder, reply.Message)
	}
	if reply.Code != "" {
		return fmt.Errorf("transfer of partition %d refused: %s: %s", p.ID, reply.Code, reply.Message)
	}
	if reply.Snapshot == nil {
		return fmt.Errorf("transfer of partition %d: empty reply", p.ID)
	}
	s.stats.transferred.Add(uint64((&repItem{snap: reply.Snapshot}).size()))
	if err := reply.Snapshot.Validate(p.ID); err != nil {
		return err
	}
	if !s.becomeReady(p, reply.Snapshot) {
		return nil // moved on while we copied
	}
	cur := s.cfg.Routing.Routing()
	// Let the previous primary free its copy (best effort: it keeps a
	// stale, fenced copy if this is lost).
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rctx, rcancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer rcancel()
		_ = s.cfg.Caller.Call(rctx, prev.ClusterAddr, MethodRelease, &transferRequest{P: p.ID, Epoch: p.LeaderEpoch, Version: cur.Version}, nil)
	}()
	return nil
}

const codeNotHolder = "not_holder"

// serveTransfer runs on the previous primary: once its routing shows the
// partition led elsewhere at req.Epoch, it fences the partition at that
// epoch and returns a snapshot, taken under the partition lock after the
// fence, so no write of the old epoch can follow it.
func (s *Service) serveTransfer(ctx context.Context, req transferRequest) transferReply {
	// Wait until our own table shows the partition at the new epoch (not a
	// routing version: a member that is leaving is no longer in Raft and
	// may never see later versions).
	t := s.cfg.Routing.Routing()
	// (WaitRouting(v) returns once the log is applied through index v;
	// the table's version may stay below v, so v advances on its own.)
	for v := t.Version + 1; ; v = max(v, t.Version) + 1 {
		p, ok := t.Partition(req.P)
		if !ok && t.Initialized() {
			return transferReply{Code: CodeInvalid, Message: "no such partition"}
		}
		if ok && p.LeaderEpoch >= req.Epoch {
			break
		}
		var err error
		if t, err = s.cfg.Routing.WaitRouting(ctx, v); err != nil {
			return transferReply{Code: CodeUnavailable, Message: err.Error()}
		}
	}
	p, _ := t.Partition(req.P)
	if req.FenceOnly && p.LeaderEpoch >= req.Epoch && p.Primary != s.self {
		// Our table is past the epoch: fence, and the new primary may
		// serve. Our copy stays only if we are to back it up.
		s.mu.Lock()
		s.engine.Fence(p.ID, req.Epoch)
		var reply transferReply
		held := s.mu.held[p.ID]
		if s.mu.ready.get(p.ID) != 0 {
			held = s.mu.ready.get(p.ID) // (OnRouting may not have seen this table yet)
		}
		s.mu.ready.set(p.ID, 0)
		s.rep.mu.Lock()
		if rp := &s.rep.parts[p.ID]; rp.ackEpoch == held && held != 0 {
			reply.AckedEpoch, reply.AckedSeq = rp.ackEpoch, rp.maxAcked
		}
		s.rep.mu.Unlock()
		if p.PrevPrimary == s.self {
			if held == p.PrevEpoch && held != 0 && p.LeaderEpoch == req.Epoch && slices.Contains(p.Backups, s.self) {
				// We led it at the epoch before, and back it up now: we
				// may resume from our own copy if it matches.
				s.mu.resumable[p.ID] = req.Epoch
				reply.Seq, reply.Resumable = s.engine.Seq(p.ID), true
			}
			s.mu.held[p.ID] = 0
			if s.mu.backupAt[p.ID] == 0 && s.mu.pulling[p.ID] == 0 && !p.Holds(s.self) {
				s.engine.Drop(p.ID)
			}
		}
		s.mu.Unlock()
		return reply
	}
	if p.LeaderEpoch != req.Epoch || p.Primary == s.self || p.PrevPrimary != s.self {
		return transferReply{Code: CodeStaleRouting, Message: fmt.Sprintf("partition %d is at epoch %d led by %q (previously %q)", p.ID, p.LeaderEpoch, p.Primary, p.PrevPrimary)}
	}
	s.mu.Lock()
	held := s.mu.held[p.ID]
	if s.mu.ready.get(p.ID) != 0 { // OnRouting has not run for this table yet
		held = s.mu.ready.get(p.ID)
	}
	s.mu.Unlock()
	if held != p.PrevEpoch {
		return transferReply{Code: codeNotHolder, Message: fmt.Sprintf("held partition %d at epoch %d, not %d", p.ID, held, p.PrevEpoch)}
	}
	snap, err := s.engine.Snapshot(p.ID, req.Epoch)
	if err != nil {
		return transferReply{Code: CodeUnavailable, Message: err.Error()}
	}
	return transferReply{Snapshot: snap}
}

// PendingHandover counts the partitions this member led that their new
// primaries have not taken over yet: pulled (and released), or fenced here
// after a promotion.
func (s *Service) PendingHandover() int {
	t := s.cfg.Routing.Routing()
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := 0
	for pid, h := range s.mu.held {
		if s.mu.ready.get(uint32(pid)) != 0 {
			h = s.mu.ready.get(uint32(pid)) // OnRouting has not seen the new table yet
		}
		// Still expected to be taken from us: the partition's current
		// primary took it over from us at the epoch we held (a
		// never-written partition is started afresh, not pulled).
		if p, ok := t.Partition(uint32(pid)); ok && h != 0 && p.Written && p.Primary != s.self && p.PrevPrimary == s.self && p.PrevEpoch == h {
			pending++
		}
	}
	return pending
}

// WaitHandedOver waits until every partition this member led has been
// taken over by its new primary (PendingHandover is 0), or ctx ends. A
// leaving member calls it before it stops serving transfers.
func (s *Service) WaitHandedOver(ctx context.Context) error {
	for {
		pending := s.PendingHandover()
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d partitions not yet taken over: %w", pending, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Service) serveRelease(req transferRequest) {
	t := s.cfg.Routing.Routing()
	p, ok := t.Partition(req.P)
	if !ok || p.Primary == s.self || p.LeaderEpoch < req.Epoch {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.ready.get(p.ID) == 0 && s.mu.pulling[p.ID] == 0 && !p.Holds(s.self) {
		s.engine.Drop(p.ID)
		s.mu.held[p.ID] = 0
		s.mu.backupAt[p.ID] = 0
	} else if s.mu.ready.get(p.ID) == 0 {
		s.mu.held[p.ID] = 0
	}
}

// rpcReply carries a request's result or its error code across the wire,
// with the routing version the receiver acted on.
type rpcReply struct {
	Code    string    `msgpack:"code,omitempty"`
	Message string    `msgpack:"msg,omitempty"`
	Version uint64    `msgpack:"rv,omitempty"`
	Resp    *Response `msgpack:"resp,omitempty"`
}

// errPartitionNotReady: this member leads the partition but is still
// filling it; the caller retries (bounded).
var errPartitionNotReady = errors.New("dataplane: partition is being handed over")

const codeNotReady = "partition_not_ready"

// ServeRPC is the cluster-port handler for the dmap.* methods.
func (s *Service) ServeRPC(ctx context.Context, method string, body []byte) ([]byte, error) {
	switch method {
	case MethodDo:
		return msgpack.Marshal(s.serveDo(ctx, body))
	case MethodDoBatch:
		return s.serveBatch(ctx, body)
	case MethodTransfer:
		var req transferRequest
		if err := strictmsgpack.Unmarshal(body, &req); err != nil {
			return msgpack.Marshal(transferReply{Code: CodeInvalid, Message: err.Error()})
		}
		return msgpack.Marshal(s.serveTransfer(ctx, req))
	case MethodRelease:
		var req transferRequest
		if err := strictmsgpack.Unmarshal(body, &req); err == nil {
			s.serveRelease(req)
		}
		return msgpack.Marshal(struct{}{})
	case MethodReplicate:
		var req replicateRequest
		if err := strictmsgpack.Unmarshal(body, &req); err != nil {
			return msgpack.Marshal(replicateReply{Code: CodeInvalid, Message: err.Error()})
		}
		return msgpack.Marshal(s.serveReplicate(ctx, &req))
	}
	return nil, fmt.Errorf("dataplane: unknown method %q", method)
}

// ReplyUnavailable encodes the reply a member sends for a dmap.* method
// when its data plane is not running yet (the request was not executed).
func ReplyUnavailable(message string) ([]byte, error) {
	return msgpack.Marshal(rpcReply{Code: CodeUnavailable, Message: message})
}

func codeFor(err error) string {
	if errors.Is(err, errPartitionNotReady) || errors.Is(err, errNoLease) {
		return codeNotReady
	}
	if c := CodeOf(err); c != "" {
		return c
	}
	return CodeUnavailable
}

// partitionOf returns the partition a request addresses.
func partitionOf(t *metadata.RoutingTable, req *Request) (uint32, error) {
	switch req.Op {
	case OpScan, OpDestroy:
		if req.Partition >= t.PartitionCount {
			return 0, fmt.Errorf("%w: partition %d out of range", ErrInvalid, req.Partition)
		}
		return req.Partition, nil
	}
	return metadata.PartitionOf(req.DMap, req.Key, t.PartitionCount), nil
}

// local serves req as the primary of its partition. It returns the routing
// version it acted on (so a forwarder told "stale" knows what to wait for).
func (s *Service) local(ctx context.Context, req *Request) (*Response, uint64, error) {
	var run localRun
	if err := s.localApply(ctx, req, &run); err != nil {
		return nil, run.version(), err
	}
	return s.localFinish(ctx, req, &run)
}

// localRun is a request applied here (localApply) whose answer waits for
// its backups (localFinish).
type localRun struct {
	t     *metadata.RoutingTable
	pid   uint32
	epoch uint64
	resp  *Response
	err   error // the engine's
	// batch, for the requests of one DoMany: their shared clock and
	// lease checks (nil: the request's own).
	batch *batchChecks
	// out, if not nil: storage for the engine's response (DoMany).
	out *Response
}

// batchChecks are the clock reading and lease checks that the requests a
// DoMany applies here share: the requests are applied one after the other
// within microseconds, then finished, so one lease check before the first
// apply stands for each one's, and one after the last apply for each
// read's check after its apply (a lease valid at some moment after a read
// was valid when it read).
type batchChecks struct {
	now               int64 // the engine's clock for every apply
	before, after     bool  // checked
	beforeOK, afterOK bool
}

// leaseBefore reports whether the lease is valid, checked once per batch
// before its first apply.
func (b *batchChecks) leaseBefore(s *Service) bool {
	if !b.before {
		b.before, b.beforeOK = true, s.leaseValid()
	}
	return b.beforeOK
}

// leaseAfter reports whether the lease is valid, checked once per batch
// after its last apply.
func (b *batchChecks) leaseAfter(s *Service) bool {
	if !b.after {
		b.after, b.afterOK = true, s.leaseValid()
	}
	return b.afterOK
}

func (r *localRun) version() uint64 {
	if r.t == nil {
		return 0
	}
	return r.t.Version
}

// localApply runs the checks of a request served here as primary and
// applies it to the engine; an error means it was not applied (nothing to
// finish). Apart from a partition's first write (a Raft commit), it does
// not block: requests of a batch are applied one after the other, then
// finished.
func (s *Service) localApply(ctx context.Context, req *Request, run *localRun) error {
	t := s.cfg.Routing.Routing()
	run.t = t
	if req.RoutingVersion > t.Version {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.RouteTimeout)
		nt, err := s.cfg.Routing.WaitRouting(wctx, req.RoutingVersion)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: routing version %d not reached here", ErrUnavailable, req.RoutingVersion)
		}
		t = nt
		run.t = t
	}
	if !t.Initialized() {
		return fmt.Errorf("%w: routing table not initialized", ErrUnavailable)
	}
	var pid uint32
	if req.pid != 0 && req.pid <= t.PartitionCount {
		pid = req.pid - 1 // computed by Do (the partition count never changes)
	} else {
		var err error
		if pid, err = partitionOf(t, req); err != nil {
			return err
		}
	}
	var err error
	p := &t.Partitions[pid]
	if p.Primary != s.self {
		return fmt.Errorf("%w: %s is not the primary of partition %d at version %d", ErrStaleRouting, s.self, pid, t.Version)
	}
	if req.LeaderEpoch != 0 && req.LeaderEpoch != p.LeaderEpoch {
		return fmt.Errorf("%w: partition %d is at epoch %d, request at %d", ErrStaleRouting, pid, p.LeaderEpoch, req.LeaderEpoch)
	}
	// Without the lock: becomeReady stores the epoch (atomically) after
	// the data is in place.
	if s.mu.ready.get(pid) != p.LeaderEpoch {
		return fmt.Errorf("%w: partition %d at epoch %d", errPartitionNotReady, pid, p.LeaderEpoch)
	}
	if leased := (run.batch == nil && s.leaseValid()) || (run.batch != nil && run.batch.leaseBefore(s)); !leased {
		return fmt.Errorf("%w: %s holds no current primary lease (cut off from the Raft leader?)", errNoLease, s.self)
	}
	if req.Op.IsWrite() && req.Op != OpDestroy && !p.Written {
		if t, err = s.ensureWritten(ctx, pid, p.LeaderEpoch); err != nil {
			run.t = t
			return err
		}
		run.t = t
	}
	run.pid, run.epoch = pid, p.LeaderEpoch
	var now int64
	if run.batch != nil {
		now = run.batch.now
	}
	run.resp, run.err = s.engine.doAt(ctx, pid, p.LeaderEpoch, req, now, run.out)
	if errors.Is(run.err, ErrFencedEpoch) {
		// The partition moved on between our routing check and the engine.
		return fmt.Errorf("%w: %w", ErrStaleRouting, run.err)
	}
	return nil
}

// localFinish answers a request localApply applied, once its backups
// hold the partition's state it saw.
func (s *Service) localFinish(ctx context.Context, req *Request, run *localRun) (*Response, uint64, error) {
	t, pid, epoch, resp, err := run.t, run.pid, run.epoch, run.resp, run.err
	// Whatever the result (a read, a write, a refused write): it reflects
	// the partition's state up to its current sequence number, which every
	// in-sync backup must hold before anyone is told.
	var werr error
	if !s.cfg.UnsafeAckBeforeReplication {
		werr = s.waitReplicated(ctx, pid, epoch)
	}
	if werr != nil {
		if req.Op.IsWrite() {
			return nil, t.Version, fmt.Errorf("%w: %w", ErrIndeterminate, werr)
		}
		if errors.Is(werr, errReplicaLost) {
			return nil, t.Version, fmt.Errorf("%w: %w", ErrStaleRouting, werr)
		}
		return nil, t.Version, fmt.Errorf("%w: %w", ErrUnavailable, werr)
	}
	if !req.Op.IsWrite() {
		if leased := (run.batch == nil && s.leaseValid()) || (run.batch != nil && run.batch.leaseAfter(s)); !leased {
			// The state read may be stale by now: another primary may
			// have been promoted after our lease ran out.
			return nil, t.Version, fmt.Errorf("%w: %s lost its primary lease during the read", errNoLease, s.self)
		}
		// The lease is current, so every failover committed before its
		// grant is in the committed table now (a grant counts only once
		// applied), and none can commit before the lease runs out. The
		// table this request started from may be older than that grant
		// (a member resuming from a pause renews its lease while a
		// request that loaded the old table waits for a CPU): check the
		// current one. Found by the Jepsen harness (pause-primary).
		if cp, ok := s.cfg.Routing.Routing().Partition(pid); !ok || cp.Primary != s.self || cp.LeaderEpoch != epoch {
			return nil, t.Version, fmt.Errorf("%w: partition %d moved on while it was read (now epoch %d, led by %q)", ErrStaleRouting, pid, cp.LeaderEpoch, cp.Primary)
		}
	}
	if resp != nil {
		resp.RoutingVersion = t.Version
	}
	return resp, t.Version, err
}

// errNoLease: this member is the partition's primary in its table but has
// no current lease: nothing is served (retried like a stale route, then
// 503).
var errNoLease = errors.New("dataplane: no primary lease")

func (s *Service) leaseValid() bool {
	return s.cfg.LeaseValid == nil || s.cfg.LeaseValid()
}

// ensureWritten has partition pid marked written in a committed routing
// entry before its first write is acknowledged, so that losing its holder
// is known to lose data. Concurrent first writes share one proposal.
func (s *Service) ensureWritten(ctx context.Context, pid uint32, epoch uint64) (*metadata.RoutingTable, error) {
	for {
		t := s.cfg.Routing.Routing()
		p := t.Partitions[pid]
		if p.Primary != s.self || p.LeaderEpoch != epoch {
			return t, fmt.Errorf("%w: partition %d moved while marking it written", ErrStaleRouting, pid)
		}
		if p.Written {
			return t, nil
		}
		s.mu.Lock()
		ch, busy := s.mu.marking[pid]
		if !busy {
			ch = make(chan struct{})
			s.mu.marking[pid] = ch
		}
		s.mu.Unlock()
		if busy {
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return t, ctx.Err()
			}
		}
		mctx, cancel := context.WithTimeout(ctx, s.cfg.RouteTimeout)
		version, err := s.cfg.MarkWritten(mctx, pid, epoch)
		if err == nil {
			_, err = s.cfg.Routing.WaitRouting(mctx, version)
		}
		cancel()
		s.mu.Lock()
		delete(s.mu.marking, pid)
		close(ch)
		s.mu.Unlock()
		if err != nil {
			return t, fmt.Errorf("%w: marking partition %d written: %v", errPartitionNotReady, pid, err)
		}
	}
}

// Do routes one request to its partition's primary — this member or another
// over the cluster RPC — and returns its result. While routing settles
// (stale routing, a partition being handed over, a primary unreachable) it
// retries for up to RouteTimeout, then fails with ErrUnavailable. A write
// whose outcome is unknown fails with ErrIndeterminate. Do sets req's
// routing fields (RoutingVersion, LeaderEpoch) as it goes: req belongs to
// the call until it returns.
func (s *Service) Do(ctx context.Context, req *Request) (*Response, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	var deadline time.Time // set on the first retry: the fast path reads no clock
	wait := 5 * time.Millisecond
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt == 1 {
			deadline = time.Now().Add(s.cfg.RouteTimeout)
		}
		if attempt > 0 {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
			}
			select {
			case <-ctx.Done():
				return nil, s.ctxErr(ctx, req, lastErr)
			case <-time.After(wait):
			}
			// Short: what is waited for (a handover, a fence, a commit)
			// takes milliseconds, and a long backoff would be the pause.
			wait = min(2*wait, 20*time.Millisecond)
		}
		t := s.cfg.Routing.Routing()
		if !t.Initialized() {
			lastErr = fmt.Errorf("%w: routing table not initialized", ErrUnavailable)
			continue
		}
		pid, err := partitionOf(t, req)
		if err != nil {
			return nil, err
		}
		p := &t.Partitions[pid]
		if p.State == metadata.PartitionUnavailable {
			return nil, fmt.Errorf("%w: partition %d has no replica left (see 'olric-raft status')", ErrUnavailable, pid)
		}
		// req itself carries the routing fields (no copy: a request is
		// ~200 bytes and every command passes here).
		fwd := req
		fwd.RoutingVersion, fwd.LeaderEpoch, fwd.pid = t.Version, p.LeaderEpoch, 0
		var (
			resp    *Response
			version uint64
		)
		if p.Primary == s.self {
			fwd.pid = pid + 1
			resp, version, err = s.local(ctx, fwd)
		} else {
			s.stats.forwarded.Add(1)
			resp, version, err = s.forward(ctx, t, pid, p.Primary, fwd)
		}
		if err == nil {
			return resp, nil
		}
		if final := s.afterAttempt(ctx, req, err); final != nil {
			return nil, final
		}
		lastErr = err
		if errors.Is(err, ErrStaleRouting) {
			if version > t.Version {
				if deadline.IsZero() {
					deadline = time.Now().Add(s.cfg.RouteTimeout)
				}
				wctx, cancel := context.WithDeadline(ctx, deadline)
				_, _ = s.cfg.Routing.WaitRouting(wctx, version)
				cancel()
			}
			wait = time.Millisecond
		}
	}
}

// afterAttempt classifies the error of one attempt at req: nil if it is
// to be retried (counted by reason), else the error to return.
func (s *Service) afterAttempt(ctx context.Context, req *Request, err error) error {
	switch {
	case errors.Is(err, ErrIndeterminate):
		return err // it may have happened: never retried as if it had not
	case errors.Is(err, ErrStaleRouting):
		s.stats.retries[RetryStaleRouting].Add(1)
	case errors.Is(err, errPartitionNotReady):
		s.stats.retries[RetryNotReady].Add(1)
	case errors.Is(err, errUnreachable):
		s.stats.retries[RetryUnreachable].Add(1)
	case errors.Is(err, errNoLease):
		s.stats.retries[RetryNoLease].Add(1)
	case errors.Is(err, errConnection):
		if req.Op.IsWrite() {
			return fmt.Errorf("%w: %w", ErrIndeterminate, err)
		}
		s.stats.retries[RetryConnection].Add(1)
	default:
		if ctx.Err() != nil {
			return s.ctxErr(ctx, req, err)
		}
		return err
	}
	return nil
}

func (s *Service) ctxErr(ctx context.Context, req *Request, last error) error {
	if req.Op.IsWrite() {
		return fmt.Errorf("%w: %w (last: %v)", ErrIndeterminate, ctx.Err(), last)
	}
	return fmt.Errorf("%w: %w (last: %v)", ErrUnavailable, ctx.Err(), last)
}

var (
	// errUnreachable: the request was never sent (dial failed): safe to retry.
	errUnreachable = errors.New("dataplane: primary unreachable")
	// errConnection: the request may have been sent; its outcome is unknown.
	errConnection = errors.New("dataplane: connection to primary failed")
)

// forward sends req to the member primary.
func (s *Service) forward(ctx context.Context, t *metadata.RoutingTable, pid uint32, primary metadata.NodeID, req *Request) (*Response, uint64, error) {
	m, ok := t.Member(primary)
	if !ok {
		return nil, t.Version, fmt.Errorf("%w: primary %s not in routing", ErrStaleRouting, primary)
	}
	var reply rpcReply
	// A primary that stopped answering (paused, cut off) is failed over
	// after its lease: once the routing table moves the partition on, the
	// call is given up (a write's outcome is then unknown; a read is
	// retried on the new primary) rather than waited out. The common case
	// waits on the partition's moved signal, its request queued with
	// others for the same member (forward_batch.go); otherwise (the signal
	// is not at t's epoch yet) a watcher starts after forwardWatchAfter.
	if int(pid) < len(s.moved) {
		if sig := s.moved[pid].Load(); sig != nil && sig.epoch == t.Partitions[pid].LeaderEpoch {
			r, err, movedOn := s.forwardQueued(ctx, m, req, sig.ch)
			if err != nil {
				return nil, t.Version, s.forwardErr(ctx, primary, err, movedOn)
			}
			return s.forwardReply(r)
		}
	}
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := time.AfterFunc(forwardWatchAfter, func() { s.watchMoved(callCtx, cancel, t, pid) })
	defer watch.Stop()
	if err := s.cfg.Caller.Call(callCtx, m.ClusterAddr, MethodDo, req, &reply); err != nil {
		return nil, t.Version, s.forwardErr(ctx, primary, err, errors.Is(context.Cause(callCtx), errMovedOn))
	}
	return s.forwardReply(&reply)
}

// forwardErr classifies the error of a forwarded call: never sent
// (unreachable), the caller's own context, or an unknown outcome (the
// partition moved on while the primary did not answer, or the connection
// failed).
func (s *Service) forwardErr(ctx context.Context, primary metadata.NodeID, err error, movedOn bool) error {
	if s.isNeverSent(err) {
		return fmt.Errorf("%w: %s: %v", errUnreachable, primary, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if movedOn {
		return fmt.Errorf("%w: %s: %v", errConnection, primary, errMovedOn)
	}
	return fmt.Errorf("%w: %s: %v", errConnection, primary, err)
}

// forwardReply turns a primary's reply into the response or its error.
func (s *Service) forwardReply(reply *rpcReply) (*Response, uint64, error) {
	if reply.Code == "" {
		if reply.Resp == nil {
			reply.Resp = &Response{}
		}
		return reply.Resp, reply.Version, nil
	}
	if reply.Code == codeNotReady {
		return nil, reply.Version, fmt.Errorf("%w: %s", errPartitionNotReady, reply.Message)
	}
	if sentinel := ErrorOf(reply.Code); sentinel != nil {
		return nil, reply.Version, fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(reply.Message, sentinel.Error()+": "))
	}
	return nil, reply.Version, fmt.Errorf("%w: %s: %s", ErrUnavailable, reply.Code, reply.Message)
}

// forwardWatchAfter is how long a forwarded request runs before the
// forwarder starts watching for its partition to move on.
const forwardWatchAfter = 100 * time.Millisecond

var errMovedOn = errors.New("dataplane: the partition moved on while its old primary did not answer")

// watchMoved cancels a forwarded call once a routing table newer than t
// gives partition pid another leader epoch, or when ctx ends.
func (s *Service) watchMoved(ctx context.Context, cancel context.CancelCauseFunc, t *metadata.RoutingTable, pid uint32) {
	epoch := t.Partitions[pid].LeaderEpoch
	for v := t.Version + 1; ; {
		nt, err := s.cfg.Routing.WaitRouting(ctx, v)
		if err != nil {
			return
		}
		if p, ok := nt.Partition(pid); ok && p.LeaderEpoch != epoch {
			cancel(errMovedOn)
			return
		}
		v = max(v, nt.Version) + 1 // the table may not change with every applied index
	}
}

func (s *Service) isNeverSent(err error) bool {
	return s.cfg.NeverSent != nil && s.cfg.NeverSent(err)
}

// Scan returns up to limit keys of dmap matching match, starting at cursor
// ("" for the beginning), and the cursor of the next page ("" when every
// partition has been walked). The cursor names a partition and a position
// in it, so a full scan visits every partition once, in order.
func (s *Service) Scan(ctx context.Context, dmap, match, cursor string, limit int) ([]string, string, error) {
	if limit <= 0 {
		limit = 100
	}
	if limit > MaxScanLimit {
		return nil, "", fmt.Errorf("%w: limit %d over %d", ErrInvalid, limit, MaxScanLimit)
	}
	pid, inner, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	t := s.cfg.Routing.Routing()
	if !t.Initialized() {
		return nil, "", fmt.Errorf("%w: routing table not initialized", ErrUnavailable)
	}
	if pid >= t.PartitionCount {
		return nil, "", fmt.Errorf("%w: cursor names partition %d of %d", ErrInvalid, pid, t.PartitionCount)
	}
	var keys []string
	for pid < t.PartitionCount && len(keys) < limit {
		resp, err := s.Do(ctx, &Request{Op: OpScan, DMap: dmap, Partition: pid, Match: match, Cursor: inner, Limit: limit - len(keys)})
		if err != nil {
			return keys, formatCursor(pid, inner), err
		}
		keys = append(keys, resp.Keys...)
		if resp.Cursor == "" {
			pid, inner = pid+1, ""
		} else {
			inner = resp.Cursor
		}
	}
	if pid >= t.PartitionCount {
		return keys, "", nil
	}
	return keys, formatCursor(pid, inner), nil
}

func formatCursor(pid uint32, inner string) string {
	return strconv.FormatUint(uint64(pid), 10) + ":" + inner
}

func parseCursor(c string) (uint32, string, error) {
	if c == "" {
		return 0, "", nil
	}
	ps, inner, ok := strings.Cut(c, ":")
	p, err := strconv.ParseUint(ps, 10, 32)
	if !ok || err != nil {
		return 0, "", fmt.Errorf("%w: malformed scan cursor", ErrInvalid)
	}
	return uint32(p), inner, nil
}

// Destroy removes dmap from every partition.
func (s *Service) Destroy(ctx context.Context, dmap string) error {
	if err := validateName(dmap); err != nil {
		return err
	}
	t := s.cfg.Routing.Routing()
	if !t.Initialized() {
		return fmt.Errorf("%w: routing table not initialized", ErrUnavailable)
	}
	errs := make([]error, t.PartitionCount)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for pid := range t.PartitionCount {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, errs[pid] = s.Do(ctx, &Request{Op: OpDestroy, DMap: dmap, Partition: pid})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func validateName(dmap string) error {
	if dmap == "" {
		return fmt.Errorf("%w: empty dmap name", ErrInvalid)
	}
	if len(dmap) > MaxDMapNameLen {
		return fmt.Errorf("%w: dmap name of %d bytes, limit %d", ErrTooLarge, len(dmap), MaxDMapNameLen)
	}
	return nil
}

// validateRequest checks what can be checked before routing (the engine
// checks everything again on the primary).
func validateRequest(req *Request) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", ErrInvalid)
	}
	if err := validateName(req.DMap); err != nil {
		return err
	}
	switch req.Op {
	case OpScan, OpDestroy:
	default:
		if req.Op < OpGet || req.Op > OpExists {
			return fmt.Errorf("%w: unknown operation %d", ErrInvalid, req.Op)
		}
		if req.Key == "" {
			return fmt.Errorf("%w: empty key", ErrInvalid)
		}
		if len(req.Key) > MaxKeyLen {
			return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(req.Key), MaxKeyLen)
		}
	}
	return nil
}

// DeleteMany deletes every key of keys in dmap — on every primary that
// holds one — and returns only when each delete has completed (Olric's
// multi-key delete returns after the first remote owner). It reports how
// many keys existed. On error some keys may have been deleted.
func (s *Service) DeleteMany(ctx context.Context, dmap string, keys []string) (int, error) {
	if err := validateName(dmap); err != nil {
		return 0, err
	}
	deleted := make([]bool, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := s.Do(ctx, &Request{Op: OpDelete, DMap: dmap, Key: k})
			if err != nil {
				errs[i] = fmt.Errorf("key %q: %w", k, err)
				return
			}
			deleted[i] = resp.Deleted
		}()
	}
	wg.Wait()
	n := 0
	for _, d := range deleted {
		if d {
			n++
		}
	}
	return n, errors.Join(errs...)
}
