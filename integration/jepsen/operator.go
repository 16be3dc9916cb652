package jepsen

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// The operator nemeses: churn (membership changes through the operator
// CLI while the workloads run) and island (operator removals sent to an
// isolated Raft leader, none of which may commit).

// History ops of the operator nemeses (workload "nemesis").
const (
	fCLI           = "cli"            // one olric-raft CLI invocation
	fExit          = "exit"           // a member's process ended after a leave
	fIslandRemove  = "island-remove"  // DELETE /v1/cluster/members/{id} sent to the isolated leader
	fIslandMembers = "island-members" // the routing table's members after the heal
	fNote          = "note"           // something the summary should mention
)

// Anomalies of the operator nemeses.
const (
	anomalyIslandCommit  = "island-commit"
	anomalyMemberMissing = "island-member-missing"
)

// cliResult is the outcome of one CLI invocation.
type cliResult struct {
	code int    // exit status (-1: killed, or it did not start)
	out  string // stdout and stderr
}

func (r cliResult) says(code string) bool { return strings.Contains(r.out, code) }

// cli runs `olric-raft args...` (the binary the members run) from the root
// namespace, which reaches every member over the bridge, and records the
// invocation, its exit status and its output in the history and in
// nemesis.log. key is the member the command is about.
func (c *cluster) cli(ctx context.Context, key string, args ...string) cliResult {
	call := c.hist.Now()
	cmd := exec.CommandContext(ctx, c.hosts.bin, args...)
	out, err := cmd.CombinedOutput()
	r := cliResult{code: -1, out: cleanOutput(out)}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if err != nil && r.code == 0 {
		r.code = -1
	}
	if err != nil && cmd.ProcessState == nil {
		r.out = strings.TrimSpace(r.out + " " + err.Error())
	}
	op := Op{Workload: "nemesis", F: fCLI, Key: key, Value: "olric-raft " + strings.Join(args, " "),
		Output: r.out, Error: fmt.Sprintf("exit %d", r.code), Call: call, Return: c.hist.Now()}
	switch {
	case r.code == 0:
		op.Type = OK
	case r.code == -1 || r.says("timeout") || r.says("unreachable"):
		// No answer, or one that says the change may still happen.
		op.Type = Info
	default:
		op.Type = Fail
	}
	c.hist.Add(op)
	c.logf("nemesis cli: %s → exit %d: %s", op.Value, r.code, oneLine(r.out))
	c.writeLog("cli: %s\n    exit %d after %s\n    %s", op.Value, r.code,
		time.Duration(op.Return-op.Call).Round(time.Millisecond), strings.ReplaceAll(r.out, "\n", "\n    "))
	return r
}

// cleanOutput turns the CLI's progress line (redrawn with \r) into lines
// and bounds the text.
func cleanOutput(b []byte) string {
	s := strings.ReplaceAll(string(b), "\r", "\n")
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(strings.TrimPrefix(l, "\x1b[K"), " \x1b[K")
		if l != "" && (len(lines) == 0 || lines[len(lines)-1] != l) {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, "\n")
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// note records something for the summary (nemesis notes).
func (c *cluster) note(format string, args ...any) {
	now := c.hist.Now()
	msg := fmt.Sprintf(format, args...)
	c.hist.Add(Op{Workload: "nemesis", F: fNote, Value: msg, Type: OK, Call: now, Return: now})
	c.logf("nemesis note: %s", msg)
	c.writeLog("note: %s", msg)
}

// churn takes one member out of the cluster through the operator CLI: a
// graceful leave, or kill -9 and remove. The undo starts it again with an
// empty data dir (a brand-new member); runNemesis then waits until the
// cluster is whole. Only one member is ever out (four of five stay) and
// only from a whole cluster.
func (c *cluster) churn(ctx context.Context) (string, func(), error) {
	noop := func() {}
	for _, h := range c.hosts.List {
		if !h.Running() {
			return "churn: skipped, " + h.ID + " is not running", noop, nil
		}
	}
	if _, err := c.health(ctx); err != nil {
		return "churn: skipped, cluster not whole: " + err.Error(), noop, nil
	}
	hs := c.shuffled()
	target, others := hs[0], hs[1:]
	if l, err := c.leader(ctx); err == nil && l == target {
		c.event("target", fmt.Sprintf("churn: %s, the Raft leader, goes next", target.ID))
	}
	// The operator's commands are not cut short by the end of the time
	// limit: a half-done leave or removal would leave the cluster in a
	// state no operator leaves it in. They are bounded all the same.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancel()
	restart := func() {
		if err := c.hosts.Start(target); err != nil {
			c.logf("restart %s: %v", target.ID, err)
		}
	}
	if c.rng.Intn(2) == 0 {
		return c.churnLeave(octx, target, restart)
	}
	return c.churnRemove(octx, target, others, restart)
}

// churnLeave: `olric-raft leave --address <target>`, then the target's
// process must exit 0.
func (c *cluster) churnLeave(ctx context.Context, target *Host, restart func()) (string, func(), error) {
	r := c.cli(ctx, target.ID, "leave", "--address", target.HTTP(), "--timeout", "45s")
	wait := 30 * time.Second
	if r.code != 0 {
		wait = 3 * time.Second
	}
	code, exited := target.WaitExit(wait)
	if exited {
		now := c.hist.Now()
		op := Op{Workload: "nemesis", F: fExit, Key: target.ID, Value: fmt.Sprintf("%s exited %d after the leave", target.ID, code),
			Type: OK, Call: now, Return: now}
		if code != 0 {
			op.Type, op.Error = Fail, fmt.Sprintf("exit %d", code)
		}
		c.hist.Add(op)
		c.writeLog("exit: %s", op.Value)
	}
	switch {
	case r.code == 0 && exited:
		if code != 0 {
			c.note("%s answered that it left, then exited %d (want 0)", target.ID, code)
		}
		target.SetFresh()
		return fmt.Sprintf("churn: %s left (olric-raft leave), exited %d", target.ID, code), restart, nil
	case r.code == 0:
		c.note("%s answered that it left but was still running %s later; killed", target.ID, wait)
		target.Kill()
		target.SetFresh()
		return fmt.Sprintf("churn: %s left (olric-raft leave), did not exit; killed", target.ID), restart, nil
	case exited:
		// Not confirmed as out: restarted with its Raft state, as an
		// operator would.
		c.note("leave of %s failed (exit %d: %s), yet its process exited %d", target.ID, r.code, oneLine(r.out), code)
		return fmt.Sprintf("churn: leave of %s failed (exit %d), process exited %d", target.ID, r.code, code), restart, nil
	default:
		return fmt.Sprintf("churn: leave of %s refused (exit %d: %s)", target.ID, r.code, oneLine(r.out)), func() {}, nil
	}
}

// churnRemove: kill -9 the target, then `olric-raft remove <id> --address
// <another member>`, retried while the leader refuses it (member_alive
// until the dead member's lease has expired and gossip declared it dead;
// no_leader, not_ready or a timeout during a failover).
func (c *cluster) churnRemove(ctx context.Context, target *Host, others []*Host, restart func()) (string, func(), error) {
	target.Kill()
	c.event("kill", fmt.Sprintf("churn: kill -9 %s, to remove it", target.ID))
	deadline := time.Now().Add(60 * time.Second)
	attempts, indeterminate := 0, false
	removed := false
	var last cliResult
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		via := others[i%len(others)]
		attempts++
		last = c.cli(ctx, target.ID, "remove", target.ID, "--address", via.HTTP(), "--timeout", "20s")
		if last.code == 0 {
			removed = true
			break
		}
		if indeterminate && last.says("not_found") {
			// An earlier attempt that timed out took effect.
			removed = true
			break
		}
		retry := last.says("member_alive") || last.says("no_leader") || last.says("not_ready") ||
			last.says("not_leader") || last.says("timeout") || last.says("unreachable") || last.says("unavailable")
		if !retry {
			break
		}
		indeterminate = indeterminate || last.says("timeout") || last.code == -1
		if !waitCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	if !removed {
		c.note("remove of %s did not succeed in %d attempts (last: exit %d: %s); restarted with its Raft state",
			target.ID, attempts, last.code, oneLine(last.out))
		return fmt.Sprintf("churn: kill -9 %s, remove failed after %d attempts", target.ID, attempts), restart, nil
	}
	target.SetFresh()
	return fmt.Sprintf("churn: kill -9 %s, removed (olric-raft remove, %d attempts)", target.ID, attempts), restart, nil
}

// island cuts the Raft leader off from every other member, as
// isolate-leader does, and then, while it is cut off, keeps sending it
// DELETE /v1/cluster/members/{id} for every other member (the harness
// still reaches it over the bridge). Nothing may commit: a 2xx answer is
// an anomaly. The undo heals the network, waits for the answers still in
// flight, waits until the cluster is whole and records every member's
// routing table: one that lost a member is an anomaly too.
func (c *cluster) island(ctx context.Context) (string, func(), error) {
	target, err := c.leader(ctx)
	if err != nil {
		return "island: " + err.Error(), func() {}, nil
	}
	heal := func() {
		if err := c.hosts.Heal(); err != nil {
			c.logf("heal: %v", err)
		}
	}
	if err := c.partition(func(a, b *Host) bool { return a != target && b != target }); err != nil {
		return "island: " + err.Error(), heal, err
	}
	// Requests in flight are not cut short by the end of the time limit:
	// their answers are what the nemesis checks.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	remove := func(id string) {
		defer wg.Done()
		call := c.hist.Now()
		r := c.ctl.do(rctx, http.MethodDelete, target.HTTP(), "/v1/cluster/members/"+url.PathEscape(id), nil)
		op := Op{Workload: "nemesis", F: fIslandRemove, Key: id, Node: target.ID, Type: r.outcome(),
			Value: r.describe(), Call: call, Return: c.hist.Now()}
		if op.Type != OK {
			op.Error = r.describe()
		}
		c.hist.Add(op)
		c.writeLog("island: DELETE /v1/cluster/members/%s on %s, sent at %.3fs → %s (%s, %s)", id, target.ID, secs(call),
			r.describe(), op.Type, time.Duration(op.Return-op.Call).Round(time.Millisecond))
	}
	// A round of removals every 250 ms without waiting for the answers: a
	// removal the island cannot forward waits (up to the server's 30 s)
	// for a leader, and the rounds cover the whole isolation: the first
	// few hundred ms while it still believes it leads, then after it
	// stepped down, then after gossip declared the others dead.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, h := range c.hosts.List {
				if h != target {
					wg.Add(1)
					go remove(h.ID)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	undo := func() {
		close(stop)
		heal()
		c.event("healed", fmt.Sprintf("island: %s reconnected; waiting for the answers in flight, then for a whole cluster", target.ID))
		// The answers still in flight (bounded by ctl's timeout).
		wg.Wait()
		cancel()
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer wcancel()
		if err := c.waitHealthy(wctx); err != nil {
			c.note("island: cluster not whole 60 s after the heal: %v", err)
		}
		c.checkMembers(wctx)
	}
	return fmt.Sprintf("island: %s (leader) cut off; removals of every other member sent to it", target.ID), undo, nil
}

// checkMembers records every member's routing table's members (island's
// check after the heal): each of the hosts must still be in it.
func (c *cluster) checkMembers(ctx context.Context) {
	read := 0
	for _, h := range c.hosts.List {
		var rt routing
		call := c.hist.Now()
		code, err := c.api.getJSON(ctx, h.HTTP(), "/v1/cluster/routing", &rt)
		if err != nil || code != http.StatusOK {
			continue
		}
		read++
		in := map[string]string{}
		var list []string
		for _, m := range rt.Members {
			in[m.ID] = m.State
			list = append(list, m.ID+"="+m.State)
		}
		sort.Strings(list)
		var missing []string
		for _, o := range c.hosts.List {
			if _, ok := in[o.ID]; !ok {
				missing = append(missing, o.ID)
			}
		}
		op := Op{Workload: "nemesis", F: fIslandMembers, Node: h.ID, Type: OK,
			Value: fmt.Sprintf("v%d: %s", rt.Version, strings.Join(list, ",")), Call: call, Return: c.hist.Now()}
		if len(missing) > 0 {
			op.Error = "missing " + strings.Join(missing, ",")
		}
		c.hist.Add(op)
		c.writeLog("island: routing of %s after the heal: %s %s", h.ID, op.Value, op.Error)
	}
	if read == 0 {
		now := c.hist.Now()
		c.hist.Add(Op{Workload: "nemesis", F: fIslandMembers, Type: Info, Error: "no member's routing table could be read after the heal",
			Call: now, Return: now})
		c.writeLog("island: no member's routing table could be read after the heal")
	}
}

// checkNemesis checks what the operator nemeses recorded: an operator
// removal that an isolated leader acknowledged (island-commit), a member
// missing from a routing table after an island heal
// (island-member-missing). It reports false when the history holds no
// operator command (no check to show). Its ok/fail/info count the
// operator commands (CLI invocations and island removals).
func checkNemesis(ops []Op) (Check, bool) {
	c := Check{Workload: "nemesis"}
	seen := false
	cli := map[string]int{}     // "leave exit 0" → count
	answers := map[string]int{} // "409 member_alive" → count
	for _, op := range ops {
		if op.Workload != "nemesis" {
			continue
		}
		switch op.F {
		case fCLI, fIslandRemove:
			seen = true
			switch op.Type {
			case OK:
				c.OK++
			case Fail:
				c.Fail++
			default:
				c.Info++
			}
			if op.F == fCLI {
				verb := strings.Fields(strings.TrimPrefix(op.Value, "olric-raft "))
				if len(verb) > 0 {
					cli[verb[0]+" "+op.Error]++
				}
				continue
			}
			ans := op.Error
			if op.Type == OK {
				ans = op.Value
			}
			answers[ans]++
			if op.Type == OK {
				c.anomaly(anomalyIslandCommit, "%s, cut off, answered %s to DELETE /v1/cluster/members/%s (%.3fs-%.3fs)",
					op.Node, op.Value, op.Key, secs(op.Call), secs(op.Return))
			}
		case fIslandMembers:
			seen = true
			switch {
			case op.Type != OK:
				c.Unknown = op.Error
			case op.Error != "":
				c.anomaly(anomalyMemberMissing, "routing table of %s after the heal (%.3fs): %s; %s",
					op.Node, secs(op.Call), op.Error, op.Value)
			}
		case fNote:
			c.Notes = append(c.Notes, op.Value)
		case fExit:
			if op.Type != OK {
				c.Notes = append(c.Notes, op.Value)
			}
		}
	}
	if len(cli) > 0 {
		c.Notes = append(c.Notes, "operator CLI: "+countList(cli))
	}
	if len(answers) > 0 {
		c.Notes = append(c.Notes, "removals sent to the isolated leader: "+countList(answers))
	}
	return c, seen
}

func secs(ns int64) float64 { return float64(ns) / 1e9 }

// countList prints a count map as "a ×2, b ×1", sorted.
func countList(m map[string]int) string {
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
