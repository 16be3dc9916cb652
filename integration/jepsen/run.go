package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure one run.
type Options struct {
	TimeLimit time.Duration // how long the clients and the nemesis run
	Nemesis   string        // one of AllNemeses()
	Workloads []string      // some of AllWorkloads
	Seed      int64         // seeds every random choice (not the timing)
	Hosts     int           // members (default 5)
	Clients   int           // clients per workload (default 4)
	Keys      int           // register keys (default 3)
	Replicas  int           // --replicas of the cluster (default 3; 0 < n ≤ Hosts)
	Interval  time.Duration // nemesis off and on periods (default 5s)
	OutDir    string        // parent of the run folder (default ./jepsen-runs)
	Bin       string        // olric-raft binary; built (without -race) when empty
	Unsafe    []string      // --unsafe-test-fault values (tests of the checkers)
	Logf      func(format string, args ...any)
}

// Result is the outcome of a run.
type Result struct {
	Dir       string         `json:"dir"`
	Options   string         `json:"options"`
	Checks    []Check        `json:"checks"`
	Anomalies map[string]int `json:"anomalies"` // "workload/kind" → count
	Nemesis   int            `json:"nemesis_faults"`
	Duration  string         `json:"duration"`
	Unknown   []string       `json:"unknown,omitempty"` // checks that could not decide
	Errors    []string       `json:"errors,omitempty"`  // harness trouble (not anomalies)
}

// Valid reports whether the run found no anomaly.
func (r *Result) Valid() bool { return len(r.Anomalies) == 0 }

func (o *Options) defaults() error {
	if o.TimeLimit <= 0 {
		o.TimeLimit = 60 * time.Second
	}
	if o.Nemesis == "" {
		o.Nemesis = "partition-halves"
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []string{WorkloadRegister}
	}
	if len(o.Workloads) == 1 && o.Workloads[0] == "all" {
		o.Workloads = append([]string(nil), AllWorkloads...)
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 100000
	}
	if o.Hosts == 0 {
		o.Hosts = 5
	}
	if o.Clients == 0 {
		o.Clients = 4
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.Replicas < 1 || o.Replicas > o.Hosts {
		return fmt.Errorf("jepsen: --replicas %d with %d hosts", o.Replicas, o.Hosts)
	}
	if o.Keys == 0 {
		o.Keys = 3
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.OutDir == "" {
		o.OutDir = "jepsen-runs"
	}
	if o.Logf == nil {
		o.Logf = func(f string, a ...any) {
			fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05.000 ")+f+"\n", a...)
		}
	}
	ok := false
	for _, n := range nemeses {
		ok = ok || n == o.Nemesis
	}
	if !ok {
		return fmt.Errorf("jepsen: unknown nemesis %q (%s)", o.Nemesis, strings.Join(nemeses, ", "))
	}
	for _, w := range o.Workloads {
		if _, err := newWorkload(w, 1); err != nil {
			return err
		}
	}
	return nil
}

func (o *Options) String() string {
	s := fmt.Sprintf("--time-limit %s --nemesis %s --workload %s --seed %d --replicas %d", o.TimeLimit, o.Nemesis, strings.Join(o.Workloads, ","), o.Seed, o.Replicas)
	if len(o.Unsafe) > 0 {
		s += " --unsafe-test-fault " + strings.Join(o.Unsafe, ",")
	}
	return s
}

// moduleRoot finds the olric-raft module (for building the binary).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("jepsen: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("jepsen: not inside the olric-raft module; pass the binary")
	}
	return filepath.Dir(mod), nil
}

// Build compiles olric-raft (without -race) into dir.
func Build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "olric-raft")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/olric-raft")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("jepsen: go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Run runs one pass: it builds the hosts and starts the members, runs the
// workloads' clients and the nemesis for TimeLimit, heals everything, waits
// for the cluster to be whole, reads the final state, checks the history
// and writes the run folder. ctx cancels the run (the hosts are torn down
// all the same). The error is for harness trouble; anomalies are in the
// Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := CanRun(); err != nil {
		return nil, err
	}
	begin := time.Now()
	dir := filepath.Join(o.OutDir, fmt.Sprintf("%s-%s-%s-seed%d", begin.UTC().Format("20060102T150405"), o.Nemesis, strings.Join(o.Workloads, "+"), o.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	res := &Result{Dir: dir, Options: o.String(), Anomalies: map[string]int{}}
	logf := o.Logf
	logf("jepsen: %s → %s", o.String(), dir)

	if o.Bin == "" {
		tmp, err := os.MkdirTemp("", "olric-raft-jepsen-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		logf("building olric-raft (no -race)")
		if o.Bin, err = Build(tmp); err != nil {
			return nil, err
		}
	}
	extra := []string{"--replicas", fmt.Sprint(o.Replicas)}
	for _, u := range o.Unsafe {
		extra = append(extra, "--unsafe-test-fault", u)
	}
	hosts, err := NewHosts(o.Hosts, o.Bin, dir, extra, logf)
	if err != nil {
		return nil, err
	}
	defer hosts.Close()

	a := newAPI(5 * time.Second)
	defer a.close()
	hist := newHistory()
	rng := rand.New(rand.NewSource(o.Seed))
	var wls []workload
	for _, name := range o.Workloads {
		w, _ := newWorkload(name, o.Keys)
		wls = append(wls, w)
	}
	ctl := newAPI(35 * time.Second)
	defer ctl.close()
	nlog, err := os.Create(filepath.Join(dir, "nemesis.log"))
	if err != nil {
		return res, err
	}
	defer nlog.Close()
	cl := &cluster{hosts: hosts, api: a, ctl: ctl, nlog: nlog, rng: rand.New(rand.NewSource(rng.Int63())), hist: hist, logf: logf}
	cl.hot = func() (string, string) { return wls[0].hotKey(cl.rng) }

	if err := hosts.StartAll(); err != nil {
		return res, err
	}
	logf("waiting for %d members to form a whole cluster", o.Hosts)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err = cl.waitHealthy(wctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("jepsen: cluster did not form: %w (logs in %s)", err, dir)
	}
	logf("cluster whole; running %s for %s", strings.Join(o.Workloads, ","), o.TimeLimit)

	// Clients and nemesis.
	stop := make(chan struct{})
	e := &env{api: a, hosts: hosts.List, hist: hist, stop: stop}
	var wg sync.WaitGroup
	for _, w := range wls {
		for range o.Clients {
			c := &client{e: e, rng: rand.New(rand.NewSource(rng.Int63())), process: hist.NewProcess()}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.client(ctx, c)
			}()
		}
	}
	nctx, ncancel := context.WithTimeout(ctx, o.TimeLimit)
	nemErr := make(chan error, 1)
	go func() { nemErr <- cl.runNemesis(nctx, o.Nemesis, o.Interval) }()
	<-nctx.Done()
	ncancel()
	close(stop)
	if err := <-nemErr; err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	wg.Wait()
	logf("clients stopped; healing")
	cl.healAll()
	cl.event("heal", "network healed, every member running")

	// Final reads once the cluster is whole again.
	fctx, fcancel := context.WithTimeout(ctx, 90*time.Second)
	if err := cl.waitHealthy(fctx); err != nil {
		res.Errors = append(res.Errors, "cluster not whole after heal: "+err.Error())
		logf("cluster not whole after heal: %v", err)
	}
	for _, w := range wls {
		w.final(fctx, e)
	}
	fcancel()
	cl.saveRouting(ctx, filepath.Join(dir, "routing-final.json"))

	ops := hist.Ops()
	if err := WriteJSONL(filepath.Join(dir, "history.jsonl"), ops); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	for _, op := range ops {
		if op.Workload == "nemesis" && op.F == "start" {
			res.Nemesis++
		}
	}
	for _, w := range wls {
		logf("checking %s", w.name())
		c := w.check(ops, dir)
		for k, n := range c.Anomalies {
			res.Anomalies[w.name()+"/"+k] += n
		}
		if c.Unknown != "" {
			res.Unknown = append(res.Unknown, w.name()+": "+c.Unknown)
		}
		res.Checks = append(res.Checks, c)
	}
	if c, ok := checkNemesis(ops); ok {
		for k, n := range c.Anomalies {
			res.Anomalies["nemesis/"+k] += n
		}
		if c.Unknown != "" {
			res.Unknown = append(res.Unknown, "nemesis: "+c.Unknown)
		}
		res.Checks = append(res.Checks, c)
	}
	res.Duration = time.Since(begin).Round(time.Second).String()
	if b, err := json.MarshalIndent(res, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "summary.json"), append(b, '\n'), 0o644)
	}
	_ = os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(res.Summary()), 0o644)
	return res, nil
}

// Summary is a one-screen text summary.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jepsen %s\n", r.Options)
	fmt.Fprintf(&b, "run folder: %s (%s, %d nemesis faults)\n", r.Dir, r.Duration, r.Nemesis)
	fmt.Fprintf(&b, "%-9s %7s %7s %7s  %s\n", "workload", "ok", "fail", "info", "anomalies")
	for _, c := range r.Checks {
		var an []string
		for k, n := range c.Anomalies {
			an = append(an, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(an)
		a := "none"
		if len(an) > 0 {
			a = strings.Join(an, " ")
		}
		if c.Unknown != "" {
			a += " (unknown: " + c.Unknown + ")"
		}
		fmt.Fprintf(&b, "%-9s %7d %7d %7d  %s\n", c.Workload, c.OK, c.Fail, c.Info, a)
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "          note: %s\n", n)
		}
		for _, ex := range c.Examples {
			fmt.Fprintf(&b, "          %s\n", ex)
		}
		if c.Visualization != "" {
			fmt.Fprintf(&b, "          porcupine view: %s\n", c.Visualization)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "harness: %s\n", e)
	}
	switch {
	case !r.Valid():
		b.WriteString("INVALID: anomalies found\n")
	case len(r.Unknown) > 0:
		b.WriteString("UNKNOWN: no anomalies, but not every check could decide\n")
	default:
		b.WriteString("VALID: no anomalies\n")
	}
	return b.String()
}
