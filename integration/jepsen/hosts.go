package jepsen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Network layout. Every name carries the prefix "orj" so that a stale run
// can be found and removed; the addresses are the harness's own /24.
const (
	nsPrefix     = "orj"
	bridgeName   = "orjbr0"
	subnetPrefix = "10.77.0."
	bridgeIP     = "10.77.0.254"
	lockPath     = "/run/olric-raft-jepsen.lock"

	httpPort    = 3380
	respPort    = 3320
	clusterPort = 3321
	gossipPort  = 3322
)

// ErrNotRoot is returned by NewHosts when the harness cannot create
// network namespaces.
var ErrNotRoot = errors.New("jepsen: needs root (network namespaces, a bridge, veth pairs)")

// Host is one member: a network namespace with one olric-raft process.
type Host struct {
	ID   string // node id, n1..n5
	Idx  int    // 1-based; the last octet of IP
	NS   string // network namespace
	IP   string
	dir  string // member folder under the run folder
	data string // --data-dir

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logFile *os.File
	paused  bool
	starts  int
	// fresh: the member left the cluster (leave, remove); its next start
	// wipes --data-dir so that it comes back as a brand-new member.
	fresh bool
	// exitCode is the last process's exit status (-1: killed by a signal).
	exitCode int
}

// SetFresh marks h to start with an empty data dir next time (a new
// member: it left the cluster or was removed from it).
func (h *Host) SetFresh() {
	h.mu.Lock()
	h.fresh = true
	h.mu.Unlock()
}

// WaitExit waits at most d for h's process to end and returns its exit
// status (-1 after a signal) and whether it ended.
func (h *Host) WaitExit(d time.Duration) (int, bool) {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done == nil {
		return 0, false
	}
	select {
	case <-done:
	case <-time.After(d):
		return 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exitCode, true
}

// HTTP is the member's HTTP API base URL, reachable from the root namespace.
func (h *Host) HTTP() string { return fmt.Sprintf("http://%s:%d", h.IP, httpPort) }

func (h *Host) gossip() string { return fmt.Sprintf("%s:%d", h.IP, gossipPort) }

// Hosts is the set of members and the network between them.
type Hosts struct {
	List    []*Host
	bin     string
	extra   []string // extra server flags (e.g. --unsafe-test-fault)
	logf    func(format string, args ...any)
	lock    *os.File
	mu      sync.Mutex
	cuts    map[[2]int]bool // blackholed directed pairs (from, to), 1-based
	started bool
}

// run executes a command and returns its combined output as an error on
// failure.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func output(args ...string) string {
	out, _ := exec.Command(args[0], args[1:]...).Output()
	return string(out)
}

// CanRun reports why the harness cannot run here, or nil.
func CanRun() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("jepsen: iproute2 (ip) not found: %w", err)
	}
	return nil
}

// NewHosts takes the harness lock (one run per machine), removes what a
// crashed earlier run left behind, and builds n namespaces on a bridge.
// Close tears everything down again.
func NewHosts(n int, bin, runDir string, extra []string, logf func(string, ...any)) (*Hosts, error) {
	if err := CanRun(); err != nil {
		return nil, err
	}
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("jepsen: %d hosts", n)
	}
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("jepsen: lock: %w", err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			break
		}
		if time.Now().After(deadline) {
			lf.Close()
			return nil, errors.New("jepsen: another run holds " + lockPath)
		}
		logf("waiting for another jepsen run to finish (%s)", lockPath)
		time.Sleep(2 * time.Second)
	}
	hs := &Hosts{bin: bin, extra: extra, logf: logf, lock: lf, cuts: map[[2]int]bool{}}
	CleanStale()
	if err := hs.setup(n, runDir); err != nil {
		hs.Close()
		return nil, err
	}
	return hs, nil
}

// CleanStale removes namespaces, veths and the bridge named like ours, and
// kills processes still running in those namespaces.
func CleanStale() {
	for _, line := range strings.Split(output("ip", "netns", "list"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		for _, pid := range strings.Fields(output("ip", "netns", "pids", f[0])) {
			var p int
			if _, err := fmt.Sscan(pid, &p); err == nil && p > 1 {
				_ = syscall.Kill(p, syscall.SIGCONT)
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		_ = run("ip", "netns", "del", f[0])
	}
	for _, line := range strings.Split(output("ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if strings.HasPrefix(name, nsPrefix) {
			_ = run("ip", "link", "del", name)
		}
	}
}

func (hs *Hosts) setup(n int, runDir string) error {
	if err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", bridgeIP+"/24", "dev", bridgeName); err != nil {
		return err
	}
	if err := run("ip", "link", "set", bridgeName, "up"); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		h := &Host{ID: fmt.Sprintf("n%d", i), Idx: i, NS: fmt.Sprintf("%s%d", nsPrefix, i), IP: fmt.Sprintf("%s%d", subnetPrefix, i)}
		h.dir = filepath.Join(runDir, h.ID)
		h.data = filepath.Join(h.dir, "data")
		if err := os.MkdirAll(h.data, 0o755); err != nil {
			return err
		}
		veth := fmt.Sprintf("%sv%d", nsPrefix, i)
		peer := fmt.Sprintf("%sp%d", nsPrefix, i)
		for _, c := range [][]string{
			{"ip", "netns", "add", h.NS},
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", peer},
			{"ip", "link", "set", peer, "netns", h.NS},
			{"ip", "link", "set", veth, "master", bridgeName},
			{"ip", "link", "set", veth, "up"},
			{"ip", "-n", h.NS, "link", "set", "lo", "up"},
			{"ip", "-n", h.NS, "link", "set", peer, "name", "eth0"},
			{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
			{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		} {
			if err := run(c...); err != nil {
				return err
			}
		}
		hs.List = append(hs.List, h)
	}
	return nil
}

// Host returns the member with node id id, or nil.
func (hs *Hosts) Host(id string) *Host {
	for _, h := range hs.List {
		if h.ID == id {
			return h
		}
	}
	return nil
}

// StartAll starts every member (first start: --bootstrap-expect N).
func (hs *Hosts) StartAll() error {
	hs.started = true
	for _, h := range hs.List {
		if err := hs.Start(h); err != nil {
			return err
		}
	}
	return nil
}

// Start starts h's process (again) with the same flags: it comes back with
// a new incarnation and empty data, its Raft state from --data-dir. A
// member marked fresh (SetFresh) starts with an empty --data-dir instead:
// a brand-new member which the same flags make join the running cluster
// (--bootstrap-expect does not bootstrap again: its peers answer that they
// hold Raft state, so it waits to be added, and stops waiting once the
// leader has added it; --join finds the members through gossip).
func (hs *Hosts) Start(h *Host) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		select {
		case <-h.done:
		default:
			return fmt.Errorf("jepsen: %s is running", h.ID)
		}
	}
	var join []string
	for _, o := range hs.List {
		if o != h {
			join = append(join, o.gossip())
		}
	}
	args := []string{"netns", "exec", h.NS, hs.bin, "server",
		"--node-id", h.ID,
		"--data-dir", h.data,
		"--http-addr", fmt.Sprintf("%s:%d", h.IP, httpPort),
		"--resp-addr", fmt.Sprintf("%s:%d", h.IP, respPort),
		"--cluster-addr", fmt.Sprintf("%s:%d", h.IP, clusterPort),
		"--gossip-addr", h.gossip(),
		"--bootstrap-expect", fmt.Sprint(len(hs.List)),
		"--join", strings.Join(join, ","),
		"--timing", "lan",
		"--log-level", "info",
	}
	args = append(args, hs.extra...)
	if h.logFile == nil {
		f, err := os.OpenFile(filepath.Join(h.dir, "member.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		h.logFile = f
	}
	h.starts++
	if h.fresh {
		if err := os.RemoveAll(h.data); err != nil {
			return fmt.Errorf("jepsen: wipe %s: %w", h.data, err)
		}
		if err := os.MkdirAll(h.data, 0o755); err != nil {
			return err
		}
		h.fresh = false
		fmt.Fprintf(h.logFile, "=== jepsen: %s data dir wiped: it starts as a new member\n", h.ID)
	}
	fmt.Fprintf(h.logFile, "=== jepsen: start #%d of %s at %s: ip %s\n", h.starts, h.ID, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = h.logFile, h.logFile
	// Its own process group, so that ^C on the harness does not reach the
	// members before the harness stops them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("jepsen: start %s: %w", h.ID, err)
	}
	done := make(chan struct{})
	h.cmd, h.done, h.paused = cmd, done, false
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		h.exitCode = cmd.ProcessState.ExitCode()
		fmt.Fprintf(h.logFile, "=== jepsen: %s exited at %s: %v\n", h.ID, time.Now().UTC().Format(time.RFC3339Nano), err)
		h.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether h's process is alive (paused counts as alive).
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (h *Host) Kill() {
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.paused = false
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (h *Host) Pause() { h.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process.
func (h *Host) Resume() { h.signal(syscall.SIGCONT, false) }

func (h *Host) signal(sig syscall.Signal, paused bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(sig)
	h.paused = paused
}

// Cut blackholes traffic between a and b in both directions.
func (hs *Hosts) Cut(a, b *Host) error {
	if err := hs.cutOne(a, b); err != nil {
		return err
	}
	return hs.cutOne(b, a)
}

func (hs *Hosts) cutOne(from, to *Host) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	k := [2]int{from.Idx, to.Idx}
	if hs.cuts[k] {
		return nil
	}
	if err := run("ip", "-n", from.NS, "route", "add", "blackhole", to.IP+"/32"); err != nil {
		return err
	}
	hs.cuts[k] = true
	return nil
}

// Cuts lists the current cuts as "n1-n3" pairs (each pair once).
func (hs *Hosts) Cuts() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var out []string
	for k := range hs.cuts {
		if k[0] < k[1] {
			out = append(out, fmt.Sprintf("n%d-n%d", k[0], k[1]))
		}
	}
	sort.Strings(out)
	return out
}

// Heal removes every blackhole route in every namespace.
func (hs *Hosts) Heal() error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var errs []error
	for k := range hs.cuts {
		from, to := hs.List[k[0]-1], hs.List[k[1]-1]
		if err := run("ip", "-n", from.NS, "route", "del", "blackhole", to.IP+"/32"); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(hs.cuts, k)
	}
	return errors.Join(errs...)
}

// Close stops every process (SIGKILL: the data is in memory and the run
// is over), removes the namespaces and the bridge, and drops the lock.
func (hs *Hosts) Close() {
	for _, h := range hs.List {
		h.Kill()
		h.mu.Lock()
		if h.logFile != nil {
			_ = h.logFile.Close()
			h.logFile = nil
		}
		h.mu.Unlock()
		// The Raft state is no use after the run and may be large.
		_ = os.RemoveAll(h.data)
	}
	CleanStale()
	if hs.lock != nil {
		_ = syscall.Flock(int(hs.lock.Fd()), syscall.LOCK_UN)
		_ = hs.lock.Close()
		hs.lock = nil
	}
}

// waitCtx sleeps d or until ctx is done; it reports whether ctx is still live.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
