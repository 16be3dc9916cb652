package dataplane

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/olric-raft/olric-raft/metadata"
)

// DoMany runs reqs as Do runs each of them, and sets resps[i] and errs[i]
// to reqs[i]'s result (resps and errs have len(reqs) elements). It is for
// requests that are all in flight together, such as a pipeline's commands
// on distinct keys: any order among them is a valid one.
//
// It uses no goroutine per request. The requests this member serves are
// applied one after the other and then wait for their backups (their
// mutations go out together, so the waits overlap); the others are all
// queued for their primaries first and then waited for, so they travel in
// batches (forward_batch.go). A request whose first attempt meets a
// routing change, a partition being handed over or an unreachable primary
// runs again through Do (several such concurrently); so does one that can
// block (a lock that waits, a scan).
//
// Like Do, DoMany sets the requests' routing fields: they belong to the
// call until it returns. A response resps[i] that is not nil on entry is
// storage the call may write reqs[i]'s response into (resps[i] is set to
// the response, which may be that storage): a caller that keeps Response
// values between batches spares an allocation per request.
func (s *Service) DoMany(ctx context.Context, reqs []*Request, resps []*Response, errs []error) {
	ip := manyItemsPool.Get().(*[]manyItem)
	items := slices.Grow((*ip)[:0], len(reqs))[:len(reqs)]
	defer func() {
		clear(items)
		*ip = items[:0]
		manyItemsPool.Put(ip)
	}()
	t := s.cfg.Routing.Routing()
	checks := &batchChecks{now: s.engine.nowNanos()}
	for i, req := range reqs {
		items[i].run.batch, items[i].run.out = checks, resps[i]
		s.startMany(ctx, t, req, &items[i])
	}
	var retry []int
	for i, req := range reqs {
		it := &items[i]
		var resp *Response
		var err error
		switch it.state {
		case manyFinal:
			resps[i], errs[i] = nil, it.err
			continue
		case manyViaDo:
			retry = append(retry, i)
			continue
		case manyLocal:
			resp, _, err = s.localFinish(ctx, req, &it.run)
		case manyRemote:
			var reply *rpcReply
			var movedOn bool
			reply, err, movedOn = awaitForward(ctx, it.call, it.abort)
			if err != nil {
				err = s.forwardErr(ctx, it.primary, err, movedOn)
			} else {
				resp, _, err = s.forwardReply(reply)
			}
		case manyFailed:
			err = it.err
		}
		if err == nil {
			resps[i], errs[i] = resp, nil
			continue
		}
		if final := s.afterAttempt(ctx, req, err); final != nil {
			resps[i], errs[i] = nil, final
			continue
		}
		retry = append(retry, i)
	}
	switch len(retry) {
	case 0:
	case 1:
		i := retry[0]
		resps[i], errs[i] = s.Do(ctx, reqs[i])
	default:
		var wg sync.WaitGroup
		for _, i := range retry {
			wg.Add(1)
			s.workers.Go(func() {
				defer wg.Done()
				resps[i], errs[i] = s.Do(ctx, reqs[i])
			})
		}
		wg.Wait()
	}
}

// manyItemsPool keeps DoMany's per-request state between calls.
var manyItemsPool = sync.Pool{New: func() any { return new([]manyItem) }}

// manyItem is one request of DoMany between its two passes.
type manyItem struct {
	state manyState
	err   error
	// manyLocal: applied here, to be finished.
	run localRun
	// manyRemote: queued for primary; abort is its partition's moved
	// signal.
	call    *fwdCall
	abort   <-chan struct{}
	primary metadata.NodeID
}

type manyState uint8

const (
	manyFinal  manyState = iota // err is the result (it was not run)
	manyViaDo                   // to run through Do
	manyLocal                   // applied here by localApply
	manyRemote                  // queued for its primary
	manyFailed                  // the first attempt failed with err
)

// startMany is DoMany's first pass over one request: it applies it here
// or queues it for its primary, as one attempt of Do would.
func (s *Service) startMany(ctx context.Context, t *metadata.RoutingTable, req *Request, it *manyItem) {
	if err := validateRequest(req); err != nil {
		it.state, it.err = manyFinal, err
		return
	}
	if !t.Initialized() || !req.Op.nonBlocking() {
		it.state = manyViaDo
		return
	}
	pid, err := partitionOf(t, req)
	if err != nil {
		it.state, it.err = manyFinal, err
		return
	}
	p := &t.Partitions[pid]
	if p.State == metadata.PartitionUnavailable {
		it.state, it.err = manyFinal, fmt.Errorf("%w: partition %d has no replica left (see 'olric-raft status')", ErrUnavailable, pid)
		return
	}
	req.RoutingVersion, req.LeaderEpoch, req.pid = t.Version, p.LeaderEpoch, 0
	if p.Primary == s.self {
		req.pid = pid + 1
		if err := s.localApply(ctx, req, &it.run); err != nil {
			it.state, it.err = manyFailed, err
			return
		}
		it.state = manyLocal
		return
	}
	// Queued like forward's common case: only while the partition's moved
	// signal is at this epoch (it ends the wait for a primary that stopped
	// answering); otherwise Do forwards it with a watcher.
	m, ok := t.Member(p.Primary)
	var sig *epochSignal
	if int(pid) < len(s.moved) {
		sig = s.moved[pid].Load()
	}
	if !ok || sig == nil || sig.epoch != p.LeaderEpoch {
		it.state = manyViaDo
		return
	}
	s.stats.forwarded.Add(1)
	c, err := s.enqueueForward(ctx, m, req)
	if err != nil {
		it.state, it.err = manyFailed, err
		return
	}
	it.state, it.call, it.abort, it.primary = manyRemote, c, sig.ch, p.Primary
}
