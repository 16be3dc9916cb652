package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Nemesis names.
var nemeses = []string{
	"none",
	"partition-halves", "partition-ring", "partition-bridge",
	"isolate-leader", "isolate-primary",
	"kill-random", "kill-leader", "kill-primary",
	"pause-random", "pause-leader", "pause-primary",
	"churn", "island",
	"combo",
	"all",
}

// Faults "combo" combines: one network fault and, at the same time, one
// process fault.
var (
	comboNetwork = []string{"partition-halves", "partition-ring", "partition-bridge", "isolate-leader", "isolate-primary"}
	comboProcess = []string{"kill-random", "kill-primary", "pause-random", "pause-leader"}
)

// AllNemeses lists the nemesis names ("all" picks one of the others at
// random for each cycle).
func AllNemeses() []string { return append([]string(nil), nemeses...) }

// FaultNemeses lists the nemeses that inject faults: all but "none" and
// "all" (what scripts/jepsen-ci.sh runs once each).
func FaultNemeses() []string { return append([]string(nil), nemeses[1:len(nemeses)-1]...) }

// cluster is what the nemeses act on.
type cluster struct {
	hosts *Hosts
	api   *api
	rng   *rand.Rand
	hist  *History
	logf  func(string, ...any)
	// hot returns the DMap and key whose primary the primary nemeses target.
	hot func() (string, string)
	// ctl sends the island nemesis's operator requests: its timeout is
	// above the server's budget for them (30 s), so that the member's own
	// answer arrives rather than the harness's timeout.
	ctl *api
	// nlog is the run folder's nemesis.log: every event, every operator
	// command with its exit status and output, every island answer.
	nlog   *os.File
	nlogMu sync.Mutex
}

// event records a nemesis action in the history.
func (c *cluster) event(kind, desc string) {
	now := c.hist.Now()
	c.hist.Add(Op{Workload: "nemesis", F: kind, Value: desc, Type: OK, Call: now, Return: now})
	c.logf("nemesis %s: %s", kind, desc)
	c.writeLog("%s: %s", kind, desc)
}

// writeLog appends a line (or several) to nemesis.log.
func (c *cluster) writeLog(format string, args ...any) {
	if c.nlog == nil {
		return
	}
	c.nlogMu.Lock()
	defer c.nlogMu.Unlock()
	fmt.Fprintf(c.nlog, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// leader asks the members for the Raft leader.
func (c *cluster) leader(ctx context.Context) (*Host, error) {
	for _, h := range c.shuffled() {
		if !h.Running() {
			continue
		}
		var lv leaderView
		code, err := c.api.getJSON(ctx, h.HTTP(), "/v1/cluster/leader", &lv)
		if err == nil && code == http.StatusOK && lv.Leader.ID != "" {
			if l := c.hosts.Host(lv.Leader.ID); l != nil {
				return l, nil
			}
		}
	}
	return nil, errors.New("no leader known")
}

// primary asks the members for the primary of the hot key.
func (c *cluster) primary(ctx context.Context) (*Host, string, error) {
	dmap, key := c.hot()
	desc := dmap + "/" + key
	for _, h := range c.shuffled() {
		if !h.Running() {
			continue
		}
		var lv locate
		code, err := c.api.getJSON(ctx, h.HTTP(), "/v1/cluster/locate?dmap="+url.QueryEscape(dmap)+"&key="+url.QueryEscape(key), &lv)
		if err == nil && code == http.StatusOK && lv.Primary != "" {
			if p := c.hosts.Host(lv.Primary); p != nil {
				return p, desc, nil
			}
		}
	}
	return nil, desc, errors.New("no primary known for " + desc)
}

func (c *cluster) shuffled() []*Host {
	hs := append([]*Host(nil), c.hosts.List...)
	c.rng.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
	return hs
}

// partition cuts every pair of hosts that are not in the same group of
// connected (connected(a, b) reports whether a and b may talk).
func (c *cluster) partition(connected func(a, b *Host) bool) error {
	for i, a := range c.hosts.List {
		for _, b := range c.hosts.List[i+1:] {
			if !connected(a, b) {
				if err := c.hosts.Cut(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func ids(hs []*Host) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.ID)
	}
	return strings.Join(s, ",")
}

// fault applies one fault and returns how to undo it.
func (c *cluster) fault(ctx context.Context, name string) (string, func(), error) {
	if name == "all" {
		name = nemeses[1+c.rng.Intn(len(nemeses)-2)]
	}
	heal := func() {
		if err := c.hosts.Heal(); err != nil {
			c.logf("heal: %v", err)
		}
	}
	switch name {
	case "none":
		return "none", func() {}, nil
	case "partition-halves":
		hs := c.shuffled()
		k := len(hs) / 2
		side := map[*Host]int{}
		for i, h := range hs {
			if i < k {
				side[h] = 1
			}
		}
		err := c.partition(func(a, b *Host) bool { return side[a] == side[b] })
		return fmt.Sprintf("%s: [%s] | [%s]", name, ids(hs[:k]), ids(hs[k:])), heal, err
	case "partition-ring":
		// Each host talks to its two neighbours in a random ring: every
		// host sees a majority, no two see the same one.
		hs := c.shuffled()
		pos := map[*Host]int{}
		for i, h := range hs {
			pos[h] = i
		}
		n := len(hs)
		err := c.partition(func(a, b *Host) bool {
			d := (pos[a] - pos[b] + n) % n
			return d == 1 || d == n-1
		})
		return fmt.Sprintf("%s: ring %s", name, ids(hs)), heal, err
	case "partition-bridge":
		// Two halves that only one host (the bridge) sees both of.
		hs := c.shuffled()
		bridge := hs[0]
		rest := hs[1:]
		k := len(rest) / 2
		side := map[*Host]int{}
		for i, h := range rest {
			if i < k {
				side[h] = 1
			} else {
				side[h] = 2
			}
		}
		err := c.partition(func(a, b *Host) bool { return a == bridge || b == bridge || side[a] == side[b] })
		return fmt.Sprintf("%s: [%s] <- %s -> [%s]", name, ids(rest[:k]), bridge.ID, ids(rest[k:])), heal, err
	case "isolate-leader", "isolate-primary":
		var target *Host
		what := ""
		var err error
		if name == "isolate-leader" {
			target, err = c.leader(ctx)
			what = "leader"
		} else {
			target, what, err = c.primary(ctx)
			what = "primary of " + what
		}
		if err != nil {
			return name + ": " + err.Error(), func() {}, nil
		}
		err = c.partition(func(a, b *Host) bool { return a != target && b != target })
		return fmt.Sprintf("%s: %s (%s) cut off", name, target.ID, what), heal, err
	case "kill-random", "kill-leader", "kill-primary", "pause-random", "pause-leader", "pause-primary":
		var target *Host
		what := ""
		var err error
		switch {
		case strings.HasSuffix(name, "leader"):
			target, err = c.leader(ctx)
			what = "leader"
		case strings.HasSuffix(name, "primary"):
			target, what, err = c.primary(ctx)
			what = "primary of " + what
		default:
			target = c.hosts.List[c.rng.Intn(len(c.hosts.List))]
			what = "random"
		}
		if err != nil {
			return name + ": " + err.Error(), func() {}, nil
		}
		if strings.HasPrefix(name, "kill") {
			target.Kill()
			return fmt.Sprintf("%s: kill -9 %s (%s)", name, target.ID, what), func() {
				if err := c.hosts.Start(target); err != nil {
					c.logf("restart %s: %v", target.ID, err)
				}
			}, nil
		}
		target.Pause()
		return fmt.Sprintf("%s: SIGSTOP %s (%s)", name, target.ID, what), target.Resume, nil
	case "combo":
		// A network fault, then a process fault on top of it (the process
		// may be on either side); undone in reverse order.
		netName := comboNetwork[c.rng.Intn(len(comboNetwork))]
		procName := comboProcess[c.rng.Intn(len(comboProcess))]
		netDesc, netUndo, err := c.fault(ctx, netName)
		if err != nil {
			return "", nil, err
		}
		procDesc, procUndo, err := c.fault(ctx, procName)
		if err != nil {
			netUndo()
			return "", nil, err
		}
		return "combo: " + netDesc + " + " + procDesc, func() {
			procUndo()
			netUndo()
		}, nil
	case "churn":
		return c.churn(ctx)
	case "island":
		return c.island(ctx)
	}
	return "", nil, fmt.Errorf("jepsen: unknown nemesis %q (%s)", name, strings.Join(nemeses, ", "))
}

// healAll undoes everything: the network, paused and dead processes.
func (c *cluster) healAll() {
	if err := c.hosts.Heal(); err != nil {
		c.logf("heal: %v", err)
	}
	for _, h := range c.hosts.List {
		if h.Running() {
			h.Resume()
			continue
		}
		if err := c.hosts.Start(h); err != nil {
			c.logf("restart %s: %v", h.ID, err)
		}
	}
}

// runNemesis applies faults on a schedule until ctx ends: interval off,
// interval on (at least 3 s for a pause, three lease periods), then undo.
// After each fault it waits (bounded) for the cluster to be whole again
// before the next one, so that two faults in a row do not take every
// replica of a partition (which makes it unavailable by design).
func (c *cluster) runNemesis(ctx context.Context, name string, interval time.Duration) error {
	if _, _, err := c.validate(name); err != nil {
		return err
	}
	if name == "none" {
		<-ctx.Done()
		return nil
	}
	for {
		if !waitCtx(ctx, interval) {
			return nil
		}
		desc, undo, err := c.fault(ctx, name)
		if err != nil {
			c.healAll()
			return err
		}
		c.event("start", desc)
		on := interval
		if strings.Contains(desc, "SIGSTOP") && on < 3*time.Second {
			on = 3 * time.Second
		}
		waitCtx(ctx, on)
		undo()
		c.event("stop", desc)
		// Let the cluster refill its replicas before the next fault.
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err = c.waitHealthy(wctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.logf("cluster not whole after the fault: %v", err)
		}
	}
}

func (c *cluster) validate(name string) (string, func(), error) {
	for _, n := range nemeses {
		if n == name {
			return "", nil, nil
		}
	}
	return "", nil, fmt.Errorf("jepsen: unknown nemesis %q (%s)", name, strings.Join(nemeses, ", "))
}

// health reports why the cluster is not whole: every member ready, the
// routing table with every member alive and every partition active with
// a primary and its backups. The version is 0 unless every member is
// ready and alive.
func (c *cluster) health(ctx context.Context) (uint64, error) {
	for _, h := range c.hosts.List {
		var ready map[string]any
		code, err := c.api.getJSON(ctx, h.HTTP(), "/readyz", &ready)
		if err != nil || code != http.StatusOK {
			return 0, fmt.Errorf("%s not ready: %d %v", h.ID, code, err)
		}
	}
	var rt routing
	h := c.hosts.List[c.rng.Intn(len(c.hosts.List))]
	code, err := c.api.getJSON(ctx, h.HTTP(), "/v1/cluster/routing", &rt)
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("routing from %s: %d %v", h.ID, code, err)
	}
	alive := 0
	for _, m := range rt.Members {
		if m.State == "alive" {
			alive++
		}
	}
	if alive != len(c.hosts.List) {
		return 0, fmt.Errorf("v%d: %d of %d members alive", rt.Version, alive, len(c.hosts.List))
	}
	var bad []string
	for _, p := range rt.Partitions {
		if p.State != "active" || p.Primary == "" || len(p.Backups) != rt.Replicas-1 {
			bad = append(bad, fmt.Sprintf("%d(%s,%s,%d backups)", p.ID, p.State, p.Primary, len(p.Backups)))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return rt.Version, fmt.Errorf("v%d: %d partitions not whole, e.g. %s", rt.Version, len(bad), bad[0])
	}
	return rt.Version, nil
}

// waitHealthy waits until the cluster is whole and its routing version
// stayed the same for 3 s (backups refilled, nothing moving). It gives up
// early, with errNotWhole, when every member is alive and ready and the
// routing table has not changed for 10 s but some partitions are still not
// whole (e.g. unavailable: every replica was failed; the cluster never
// re-creates such a partition by itself).
func (c *cluster) waitHealthy(ctx context.Context) error {
	var last uint64
	var since time.Time
	var lastErr error
	for {
		v, err := c.health(ctx)
		switch {
		case v == 0:
			lastErr, last = err, 0
		case v != last:
			last, since, lastErr = v, time.Now(), err
		case err == nil && time.Since(since) >= 3*time.Second:
			return nil
		case err != nil && time.Since(since) >= 10*time.Second:
			return fmt.Errorf("%w: %v", errNotWhole, err)
		}
		if !waitCtx(ctx, 500*time.Millisecond) {
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return lastErr
		}
	}
}

// errNotWhole: the cluster settled with partitions that are not whole.
var errNotWhole = errors.New("cluster settled, not whole")

// saveRouting writes the routing table as one member sees it (the first
// that answers) to path, for the post-mortem.
func (c *cluster) saveRouting(ctx context.Context, path string) {
	for _, h := range c.hosts.List {
		var rt json.RawMessage
		code, err := c.api.getJSON(ctx, h.HTTP(), "/v1/cluster/routing", &rt)
		if err == nil && code == http.StatusOK {
			_ = os.WriteFile(path, rt, 0o644)
			return
		}
	}
}
