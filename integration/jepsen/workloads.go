package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names.
const (
	WorkloadRegister = "register"
	WorkloadSet      = "set"
	WorkloadCounter  = "counter"
	WorkloadLock     = "lock"
)

// AllWorkloads lists every workload.
var AllWorkloads = []string{WorkloadRegister, WorkloadSet, WorkloadCounter, WorkloadLock}

// DMaps of the workloads.
const (
	registerDMap = "jregister"
	setDMap      = "jset"
	counterDMap  = "jcounter"
	lockDMap     = "jlock"
)

// env is what a workload's clients share.
type env struct {
	api   *api
	hosts []*Host
	hist  *History
	next  atomic.Int64 // unique values
	stop  <-chan struct{}
}

func (e *env) uniq() int64 { return e.next.Add(1) }

func (e *env) stopped() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// client is one logical client: it picks a member at random for each op,
// and becomes a new process after every indeterminate op.
type client struct {
	e       *env
	rng     *rand.Rand
	process int
}

func (c *client) host() *Host { return c.e.hosts[c.rng.Intn(len(c.e.hosts))] }

// record completes op with its outcome and adds it to the history.
func (c *client) record(op Op, r apiResult, t Outcome) {
	op.Process = c.process
	op.Type = t
	op.Return = c.e.hist.Now()
	if t != OK {
		op.Error = r.describe()
	}
	c.e.hist.Add(op)
	if t == Info {
		c.process = c.e.hist.NewProcess()
	}
}

func (c *client) think() {
	time.Sleep(time.Duration(5+c.rng.Intn(20)) * time.Millisecond)
}

// workload generates operations and, after the run, reads the final state
// and checks the history.
type workload interface {
	name() string
	// client runs one client until e.stop closes.
	client(ctx context.Context, c *client)
	// hotKey is the key whose primary the primary nemeses target.
	hotKey(rng *rand.Rand) (dmap, key string)
	// final reads the final state after the heal (retrying until ctx ends).
	final(ctx context.Context, e *env)
	// check checks the history.
	check(ops []Op, dir string) Check
}

func newWorkload(name string, keys int) (workload, error) {
	switch name {
	case WorkloadRegister:
		return &registerWorkload{keys: keys}, nil
	case WorkloadSet:
		return &setWorkload{}, nil
	case WorkloadCounter:
		return &counterWorkload{}, nil
	case WorkloadLock:
		return &lockWorkload{}, nil
	}
	return nil, fmt.Errorf("jepsen: unknown workload %q (register, set, counter, lock)", name)
}

// ---- register ----

type registerWorkload struct {
	keys int
}

func (w *registerWorkload) name() string { return WorkloadRegister }

func (w *registerWorkload) key(i int) string { return fmt.Sprintf("r%d", i) }

func (w *registerWorkload) hotKey(rng *rand.Rand) (string, string) {
	return registerDMap, w.key(rng.Intn(w.keys))
}

type seen struct {
	found   bool
	value   string
	version uint64
}

func (w *registerWorkload) client(ctx context.Context, c *client) {
	last := map[string]seen{}
	for !c.e.stopped() {
		key := w.key(c.rng.Intn(w.keys))
		h := c.host()
		op := Op{Workload: WorkloadRegister, Key: key, Node: h.ID}
		p := c.rng.Float64()
		s, haveRead := last[key]
		switch {
		case p < 0.4 || (p >= 0.7 && !haveRead):
			op.F = "read"
			op.Call = c.e.hist.Now()
			r := c.e.api.do(ctx, http.MethodGet, h.HTTP(), keyPath(registerDMap, key), nil)
			found, v, ver, err := getValue(r)
			if err != nil {
				c.record(op, r, Fail) // a read changes nothing: drop it
				break
			}
			op.Found, op.Value, op.Version = found, v, ver
			last[key] = seen{found: found, value: v, version: ver}
			c.record(op, r, OK)
		case p < 0.7:
			op.F = "write"
			op.Value = strconv.FormatInt(c.e.uniq(), 10)
			op.Call = c.e.hist.Now()
			r := c.e.api.do(ctx, http.MethodPut, h.HTTP(), keyPath(registerDMap, key), map[string]any{"value": json.RawMessage(op.Value)})
			if r.outcome() == OK {
				op.Version, _ = uintField(r, "version")
			}
			c.record(op, r, r.outcome())
		default:
			op.F = "cas"
			op.Value = strconv.FormatInt(c.e.uniq(), 10)
			if s.found {
				op.Expect = s.value
			}
			op.Call = c.e.hist.Now()
			r := c.e.api.do(ctx, http.MethodPut, h.HTTP(), keyPath(registerDMap, key), map[string]any{"value": json.RawMessage(op.Value), "if_version": s.version})
			if r.outcome() == OK {
				op.Version, _ = uintField(r, "version")
			}
			c.record(op, r, r.outcome())
			delete(last, key) // read again before the next CAS
		}
		c.think()
	}
}

func (w *registerWorkload) final(context.Context, *env) {}

func (w *registerWorkload) check(ops []Op, dir string) Check {
	return CheckRegister(ops, dir, 2*time.Minute)
}

// ---- set ----

// setWorkload adds unique elements, each its own key of one DMap, and at
// the end lists the DMap with a scan.
type setWorkload struct {
	mu     sync.Mutex
	recent string // a recently added element (the hot key)
	fin    SetFinal
}

func (w *setWorkload) name() string { return WorkloadSet }

func (w *setWorkload) hotKey(*rand.Rand) (string, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recent == "" {
		return setDMap, "e0"
	}
	return setDMap, w.recent
}

func (w *setWorkload) client(ctx context.Context, c *client) {
	for !c.e.stopped() {
		n := c.e.uniq()
		h := c.host()
		op := Op{Workload: WorkloadSet, F: "add", Key: fmt.Sprintf("e%d", n), Value: strconv.FormatInt(n, 10), Node: h.ID}
		op.Call = c.e.hist.Now()
		r := c.e.api.do(ctx, http.MethodPut, h.HTTP(), keyPath(setDMap, op.Key), map[string]any{"value": n})
		c.record(op, r, r.outcome())
		w.mu.Lock()
		w.recent = op.Key
		w.mu.Unlock()
		c.think()
	}
}

// final lists the whole DMap with a scan (every page, from one member),
// retrying for up to 20 s; if no scan succeeds (some partition stays
// unavailable), it reads every attempted element with a GET instead, and
// the elements it cannot read are left out of the check.
func (w *setWorkload) final(ctx context.Context, e *env) {
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for attempt := 0; sctx.Err() == nil; attempt++ {
		h := e.hosts[attempt%len(e.hosts)]
		var all []string
		cursor, ok := "", true
		for {
			var page struct {
				Keys   []string `json:"keys"`
				Cursor string   `json:"cursor"`
			}
			code, err := e.api.getJSON(sctx, h.HTTP(), "/v1/dmaps/"+setDMap+"/keys?limit=1000&cursor="+url.QueryEscape(cursor), &page)
			if err != nil || code != http.StatusOK {
				ok = false
				break
			}
			all = append(all, page.Keys...)
			if page.Cursor == "" {
				break
			}
			cursor = page.Cursor
		}
		if ok {
			sort.Strings(all)
			w.mu.Lock()
			w.fin = SetFinal{Scanned: true, Elems: all}
			w.mu.Unlock()
			e.hist.Add(Op{Workload: WorkloadSet, F: "final-read", Type: OK, Node: h.ID, Value: fmt.Sprintf("scan: %d elements", len(all)), Call: e.hist.Now(), Return: e.hist.Now()})
			return
		}
		waitCtx(sctx, time.Second)
	}
	// Element by element.
	var keys []string
	for _, op := range e.hist.Ops() {
		if op.Workload == WorkloadSet && op.F == "add" {
			keys = append(keys, op.Key)
		}
	}
	fin := SetFinal{Unreadable: map[string]bool{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan string)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				var found, read bool
				// A partition left unavailable answers only after a
				// bounded wait: ask where the key lives first.
				var loc locate
				if code, err := e.api.getJSON(ctx, e.hosts[i%len(e.hosts)].HTTP(), "/v1/cluster/locate?dmap="+setDMap+"&key="+url.QueryEscape(k), &loc); err == nil && code == http.StatusOK && loc.State == "unavailable" {
					mu.Lock()
					fin.Unreadable[k] = true
					mu.Unlock()
					continue
				}
				for a := 0; a < 3 && ctx.Err() == nil && !read; a++ {
					r := e.api.do(ctx, http.MethodGet, e.hosts[(i+a)%len(e.hosts)].HTTP(), keyPath(setDMap, k), nil)
					f, _, _, err := getValue(r)
					found, read = f, err == nil
				}
				mu.Lock()
				switch {
				case !read:
					fin.Unreadable[k] = true
				case found:
					fin.Elems = append(fin.Elems, k)
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	sort.Strings(fin.Elems)
	w.mu.Lock()
	w.fin = fin
	w.mu.Unlock()
	e.hist.Add(Op{Workload: WorkloadSet, F: "final-read", Type: OK, Value: fmt.Sprintf("gets: %d present, %d unreadable", len(fin.Elems), len(fin.Unreadable)), Call: e.hist.Now(), Return: e.hist.Now()})
}

func (w *setWorkload) check(ops []Op, _ string) Check {
	w.mu.Lock()
	defer w.mu.Unlock()
	return CheckSet(ops, w.fin)
}

// ---- counter ----

type counterWorkload struct {
	mu      sync.Mutex
	value   int64
	finalOK bool
}

const counterKey = "c"

func (w *counterWorkload) name() string { return WorkloadCounter }

func (w *counterWorkload) hotKey(*rand.Rand) (string, string) { return counterDMap, counterKey }

func (w *counterWorkload) client(ctx context.Context, c *client) {
	for !c.e.stopped() {
		h := c.host()
		op := Op{Workload: WorkloadCounter, F: "incr", Key: counterKey, Value: "1", Node: h.ID}
		op.Call = c.e.hist.Now()
		r := c.e.api.do(ctx, http.MethodPost, h.HTTP(), keyPath(counterDMap, counterKey)+"/incr", map[string]any{"delta": 1})
		c.record(op, r, r.outcome())
		c.think()
	}
}

// final reads the counter, retrying for up to 20 s (its partition may
// have been left unavailable: then the check is unknown).
func (w *counterWorkload) final(ctx context.Context, e *env) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		h := e.hosts[attempt%len(e.hosts)]
		call := e.hist.Now()
		r := e.api.do(ctx, http.MethodGet, h.HTTP(), keyPath(counterDMap, counterKey), nil)
		found, v, _, err := getValue(r)
		if err == nil {
			var n int64
			if found {
				if n, err = strconv.ParseInt(v, 10, 64); err != nil {
					e.hist.Add(Op{Workload: WorkloadCounter, F: "final-read", Type: Fail, Error: "not a number: " + v, Call: call, Return: e.hist.Now()})
					return
				}
			}
			w.mu.Lock()
			w.value, w.finalOK = n, true
			w.mu.Unlock()
			e.hist.Add(Op{Workload: WorkloadCounter, F: "final-read", Key: counterKey, Value: strconv.FormatInt(n, 10), Found: found, Type: OK, Node: h.ID, Call: call, Return: e.hist.Now()})
			return
		}
		waitCtx(ctx, time.Second)
	}
}

func (w *counterWorkload) check(ops []Op, _ string) Check {
	w.mu.Lock()
	defer w.mu.Unlock()
	return CheckCounter(ops, w.value, w.finalOK)
}

// ---- lock ----

type lockWorkload struct{}

const lockKey = "l"

func (w *lockWorkload) name() string { return WorkloadLock }

func (w *lockWorkload) hotKey(*rand.Rand) (string, string) { return lockDMap, lockKey }

func (w *lockWorkload) client(ctx context.Context, c *client) {
	for !c.e.stopped() {
		h := c.host()
		op := Op{Workload: WorkloadLock, F: "lock", Key: lockKey, Node: h.ID}
		op.Call = c.e.hist.Now()
		r := c.e.api.do(ctx, http.MethodPost, h.HTTP(), keyPath(lockDMap, lockKey)+"/lock", map[string]any{"ttl_ms": 5000, "wait_ms": 1000})
		t := r.outcome()
		if t == OK {
			tok, err := uintField(r, "token")
			if err != nil {
				t = Info
			}
			op.Token = tok
		}
		c.record(op, r, t)
		if t == OK {
			time.Sleep(time.Duration(10+c.rng.Intn(40)) * time.Millisecond)
			h = c.host()
			un := Op{Workload: WorkloadLock, F: "unlock", Key: lockKey, Token: op.Token, Node: h.ID}
			un.Call = c.e.hist.Now()
			r := c.e.api.do(ctx, http.MethodPost, h.HTTP(), keyPath(lockDMap, lockKey)+"/unlock", map[string]any{"token": op.Token})
			c.record(un, r, r.outcome())
		}
		c.think()
	}
}

func (w *lockWorkload) final(context.Context, *env) {}

func (w *lockWorkload) check(ops []Op, _ string) Check { return CheckLock(ops) }
