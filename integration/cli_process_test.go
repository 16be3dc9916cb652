package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// server is one olric-raft server process with its addresses.
type server struct {
	name                        string
	http, resp, cluster, gossip string
	cmd                         *exec.Cmd
	log                         *syncBuffer
	done                        chan struct{}
	err                         error
}

func startServer(t *testing.T, name string, extra ...string) *server {
	t.Helper()
	return startServerWithGossip(t, name, testcluster.FreeAddr(t), extra...)
}

// startServerWithGossip starts a server whose gossip address is chosen by
// the caller (so members started together can list each other).
func startServerWithGossip(t *testing.T, name, gossip string, extra ...string) *server {
	t.Helper()
	s := &server{
		name: name, http: testcluster.FreeAddr(t), resp: testcluster.FreeAddr(t),
		cluster: testcluster.FreeAddr(t), gossip: gossip,
		log: &syncBuffer{}, done: make(chan struct{}),
	}
	args := append([]string{"server",
		"--node-id", name, "--data-dir", t.TempDir(),
		"--http-addr", s.http, "--resp-addr", s.resp,
		"--cluster-addr", s.cluster, "--gossip-addr", s.gossip,
		"--timing", "dev", "--log-level", "warn",
	}, extra...)
	s.cmd = exec.Command(olricRaftBinary(t), args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, s.log.String())
		}
	})
	return s
}

// cli runs the olric-raft CLI against addr and returns stdout+stderr.
func cli(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(olricRaftBinary(t), append(args, "--address", "http://"+addr)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type membersView struct {
	Version uint64 `json:"routing_version"`
	Members []struct {
		ID           string `json:"id"`
		State        string `json:"state"`
		RaftSuffrage string `json:"raft_suffrage"`
		Leader       bool   `json:"leader"`
		Primaries    int    `json:"primaries"`
		Backups      int    `json:"backups"`
	} `json:"members"`
}

// members runs `olric-raft members -o json` against addr.
func members(t *testing.T, addr string) (membersView, error) {
	var mv membersView
	out, err := cli(t, addr, "members", "-o", "json")
	if err != nil {
		return mv, fmt.Errorf("members: %v: %s", err, out)
	}
	return mv, json.Unmarshal([]byte(out), &mv)
}

// waitMembers waits until the member list at addr is exactly want (id ->
// state) and every listed alive member holds partitions.
func waitMembers(t *testing.T, addr string, want map[string]string) membersView {
	t.Helper()
	var mv membersView
	err := testcluster.Poll(30*time.Second, func() error {
		var err error
		mv, err = members(t, addr)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, m := range mv.Members {
			got[m.ID] = m.State
			if m.State == "alive" && m.Primaries == 0 {
				return fmt.Errorf("%s holds no primaries yet", m.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("members %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mv
}

// TestOperatorCLIJoinLeaveRemove drives membership the way an operator
// does, through the olric-raft CLI against real server processes: join
// two members to a bootstrapped one, make the leader leave (leadership is
// handed over first), kill -9 a member and remove it.
func TestOperatorCLIJoinLeaveRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	a := startServer(t, "a", "--bootstrap")
	b := startServer(t, "b")
	c := startServer(t, "c")
	d := startServer(t, "d")
	waitMembers(t, a.http, map[string]string{"a": "alive"})

	// join: b, c and d are told (through their own HTTP APIs) to join a.
	for _, s := range []*server{b, c, d} {
		out, err := cli(t, s.http, "join", a.gossip)
		if err != nil {
			t.Fatalf("join %s: %v: %s", s.name, err, out)
		}
	}
	mv := waitMembers(t, a.http, map[string]string{"a": "alive", "b": "alive", "c": "alive", "d": "alive"})
	voters := 0
	for _, m := range mv.Members {
		if m.RaftSuffrage == "voter" {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("voters = %d, want 3", voters)
	}

	// leave on the leader: it hands leadership over, leaves, and exits 0.
	byName := map[string]*server{"a": a, "b": b, "c": c, "d": d}
	var leader *server
	for _, m := range mv.Members {
		if m.Leader {
			leader = byName[m.ID]
		}
	}
	if leader == nil {
		t.Fatalf("no leader in %+v", mv)
	}
	out, err := cli(t, leader.http, "leave")
	if err != nil {
		t.Fatalf("leave %s: %v: %s", leader.name, err, out)
	}
	if !strings.Contains(out, "leaving "+leader.name+" [") || !strings.Contains(out, "handed over") {
		t.Fatalf("leave showed no progress bar: %s", out)
	}
	select {
	case <-leader.done:
		if leader.err != nil {
			t.Fatalf("%s exited with %v after leave", leader.name, leader.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after leave", leader.name)
	}
	var rest []*server
	want := map[string]string{}
	for _, s := range []*server{a, b, c, d} {
		if s != leader {
			rest = append(rest, s)
			want[s.name] = "alive"
		}
	}
	mv = waitMembers(t, rest[0].http, want)
	for _, m := range mv.Members {
		if m.Leader && m.ID == leader.name {
			t.Fatalf("left member still leader")
		}
	}

	// remove: refused for a live member with a hint; kill -9 one, it is
	// marked failed, then removed.
	if out, err := cli(t, rest[0].http, "remove", rest[1].name); err == nil || !strings.Contains(out, "member_alive") {
		t.Fatalf("remove of a live member: err=%v out=%s", err, out)
	}
	victim := rest[2]
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.done
	want[victim.name] = "failed"
	waitMembers(t, rest[0].http, want)
	if out, err := cli(t, rest[0].http, "remove", victim.name); err != nil {
		t.Fatalf("remove %s: %v: %s", victim.name, err, out)
	}
	delete(want, victim.name)
	waitMembers(t, rest[1].http, want)

	// The remaining members are healthy: ready, same version.
	for _, s := range rest[:2] {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s not ready: %v %v", s.name, resp, err)
		}
		resp.Body.Close()
	}
}
