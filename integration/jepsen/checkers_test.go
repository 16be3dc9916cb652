package jepsen

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func reg(p int, f, key, value, expect string, t Outcome, call, ret int64) Op {
	op := Op{Process: p, Workload: "register", F: f, Key: key, Value: value, Expect: expect, Type: t, Call: call * ms, Return: ret * ms}
	if f == "read" && value != "" {
		op.Found = true
	}
	if t == Fail && f == "cas" {
		op.Error = "409 version_mismatch"
	}
	return op
}

func TestCheckRegister(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want bool // linearizable
	}{
		{"empty read", []Op{reg(0, "read", "a", "", "", OK, 0, 1)}, true},
		{"write then read", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(1, "read", "a", "1", "", OK, 2, 3),
		}, true},
		{"stale read", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(0, "write", "a", "2", "", OK, 2, 3),
			reg(1, "read", "a", "1", "", OK, 4, 5),
		}, false},
		{"concurrent write may be seen or not", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 10),
			reg(1, "read", "a", "", "", OK, 1, 2),
			reg(2, "read", "a", "1", "", OK, 3, 4),
		}, true},
		{"indeterminate write seen late", []Op{
			reg(0, "write", "a", "1", "", Info, 0, 1),
			reg(1, "read", "a", "", "", OK, 2, 3),
			reg(1, "read", "a", "1", "", OK, 40, 41),
		}, true},
		{"indeterminate write never seen", []Op{
			reg(0, "write", "a", "1", "", Info, 0, 1),
			reg(1, "read", "a", "", "", OK, 40, 41),
		}, true},
		{"failed write seen", []Op{
			reg(0, "write", "a", "1", "", Fail, 0, 1),
			reg(1, "read", "a", "1", "", OK, 2, 3),
		}, false},
		{"cas ok", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(0, "cas", "a", "2", "1", OK, 2, 3),
			reg(1, "read", "a", "2", "", OK, 4, 5),
		}, true},
		{"cas refused although the value matched", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(0, "cas", "a", "2", "1", Fail, 2, 3),
		}, false},
		{"cas ok on the wrong value", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(0, "write", "a", "3", "", OK, 2, 3),
			reg(0, "cas", "a", "2", "1", OK, 4, 5),
		}, false},
		{"keys are independent", []Op{
			reg(0, "write", "a", "1", "", OK, 0, 1),
			reg(1, "read", "b", "", "", OK, 2, 3),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := CheckRegister(tt.ops, dir, 10*time.Second)
			if got := len(c.Anomalies) == 0; got != tt.want {
				t.Fatalf("linearizable = %v, want %v (%v)", got, tt.want, c.Anomalies)
			}
			_, err := os.Stat(filepath.Join(dir, "register.html"))
			if tt.want != (err != nil) {
				t.Errorf("visualization written = %v, want %v", err == nil, !tt.want)
			}
		})
	}
}

func add(key string, t Outcome) Op { return Op{Workload: "set", F: "add", Key: key, Type: t} }

func TestCheckSet(t *testing.T) {
	ops := []Op{add("e1", OK), add("e2", OK), add("e3", Info), add("e4", Fail), add("e5", Info)}
	c := CheckSet(ops, SetFinal{Scanned: true, Elems: []string{"e1", "e2", "e3"}})
	if len(c.Anomalies) != 0 || c.OK != 2 || c.Info != 2 || c.Fail != 1 {
		t.Fatalf("clean set: %+v", c)
	}
	c = CheckSet(ops, SetFinal{Scanned: true, Elems: []string{"e1", "e4", "e4", "e9"}})
	want := map[string]int{"lost": 1, "failed-but-present": 1, "duplicated": 1, "unexpected": 1}
	for k, n := range want {
		if c.Anomalies[k] != n {
			t.Errorf("%s = %d, want %d (%v)", k, c.Anomalies[k], n, c.Anomalies)
		}
	}
	c = CheckSet(ops, SetFinal{Elems: []string{"e1"}, Unreadable: map[string]bool{"e2": true}})
	if len(c.Anomalies) != 0 || c.Unknown == "" {
		t.Errorf("unreadable elements are not lost, only unknown: %+v", c)
	}
	if c := CheckSet(ops, SetFinal{}); c.Unknown == "" {
		t.Errorf("no final read: want unknown, got %+v", c)
	}
}

func TestCheckCounter(t *testing.T) {
	ops := []Op{
		{Workload: "counter", F: "incr", Type: OK},
		{Workload: "counter", F: "incr", Type: OK},
		{Workload: "counter", F: "incr", Type: Info},
		{Workload: "counter", F: "incr", Type: Fail},
	}
	for final, want := range map[int64]string{1: "lost-increments", 2: "", 3: "", 4: "phantom-increments"} {
		c := CheckCounter(ops, final, true)
		if want == "" && len(c.Anomalies) != 0 || want != "" && c.Anomalies[want] != 1 {
			t.Errorf("final %d: %v, want %q", final, c.Anomalies, want)
		}
	}
	if c := CheckCounter(ops, 0, false); c.Unknown == "" {
		t.Errorf("no final read: want unknown")
	}
}

func lockOps(p int, token uint64, acqCall, acqRet, unCall, unRet int64, unlocked bool) []Op {
	ops := []Op{{Process: p, Workload: "lock", F: "lock", Token: token, Type: OK, Call: acqCall * ms, Return: acqRet * ms}}
	if unCall > 0 {
		t := Fail
		if unlocked {
			t = OK
		}
		ops = append(ops, Op{Process: p, Workload: "lock", F: "unlock", Token: token, Type: t, Call: unCall * ms, Return: unRet * ms})
	}
	return ops
}

func TestCheckLock(t *testing.T) {
	cat := func(l ...[]Op) []Op {
		var out []Op
		for _, o := range l {
			out = append(out, o...)
		}
		return out
	}
	tests := []struct {
		name string
		ops  []Op
		want string
	}{
		{"in turn", cat(lockOps(0, 1, 0, 1, 5, 6, true), lockOps(1, 2, 2, 7, 9, 10, true)), ""},
		{"overlap", cat(lockOps(0, 1, 0, 1, 5, 6, true), lockOps(1, 2, 2, 3, 9, 10, true)), "overlap"},
		{"overlap unproven (unlock refused: lease expired)", cat(lockOps(0, 1, 0, 1, 5, 6, false), lockOps(1, 2, 2, 3, 9, 10, true)), ""},
		{"token order against real time", cat(lockOps(0, 5, 0, 1, 2, 3, true), lockOps(1, 4, 4, 5, 6, 7, true)), "token-order"},
		{"duplicate token", cat(lockOps(0, 5, 0, 1, 2, 3, true), lockOps(1, 5, 4, 5, 6, 7, true)), "duplicate-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := CheckLock(tt.ops)
			if tt.want == "" && len(c.Anomalies) != 0 || tt.want != "" && c.Anomalies[tt.want] == 0 {
				t.Fatalf("anomalies %v, want %q", c.Anomalies, tt.want)
			}
		})
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	ops := []Op{reg(0, "write", "a", "1", "", OK, 0, 1), reg(1, "read", "a", "1", "", OK, 2, 3)}
	if err := WriteJSONL(path, ops); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Value != "1" || !got[1].Found || got[0].Return != ms {
		t.Fatalf("round trip: %+v", got)
	}
}

func nem(f, key string, t Outcome, value, errText string, at int64) Op {
	return Op{Workload: "nemesis", F: f, Key: key, Node: "n1", Type: t, Value: value, Error: errText, Call: at * ms, Return: (at + 1) * ms}
}

func TestCheckNemesis(t *testing.T) {
	if _, ok := checkNemesis([]Op{reg(0, "write", "a", "1", "", OK, 0, 1), nem("start", "", OK, "kill-random: kill -9 n2", "", 0)}); ok {
		t.Error("a history without operator commands has a nemesis check")
	}
	clean := []Op{
		nem(fCLI, "n3", OK, "olric-raft leave --address http://10.77.0.3:3380", "exit 0", 0),
		nem(fCLI, "n2", Fail, "olric-raft remove n2 --address http://10.77.0.1:3380", "exit 1", 2),
		nem(fIslandRemove, "n2", Fail, "409 member_alive", "409 member_alive", 3),
		nem(fIslandRemove, "n3", Info, "context deadline exceeded", "context deadline exceeded", 4),
		nem(fIslandMembers, "", OK, "v9: n1=alive,n2=alive,n3=alive,n4=alive,n5=alive", "", 5),
	}
	c, ok := checkNemesis(clean)
	if !ok || len(c.Anomalies) != 0 || c.Unknown != "" || c.OK != 1 || c.Fail != 2 || c.Info != 1 {
		t.Errorf("clean: %v %+v", ok, c)
	}
	bad := append(append([]Op(nil), clean...),
		nem(fIslandRemove, "n4", OK, "200", "", 6),
		nem(fIslandMembers, "", OK, "v10: n1=alive,n2=alive,n3=alive,n5=alive", "missing n4", 7),
	)
	c, _ = checkNemesis(bad)
	if c.Anomalies[anomalyIslandCommit] != 1 || c.Anomalies[anomalyMemberMissing] != 1 {
		t.Errorf("bad: %+v", c)
	}
	c, _ = checkNemesis([]Op{nem(fIslandMembers, "", Info, "", "no member's routing table could be read after the heal", 1)})
	if c.Unknown == "" || len(c.Anomalies) != 0 {
		t.Errorf("unreadable: %+v", c)
	}
}

func TestNemesisNames(t *testing.T) {
	all := AllNemeses()
	if all[0] != "none" || all[len(all)-1] != "all" {
		t.Fatalf("none first, all last: %v", all)
	}
	faults := FaultNemeses()
	if len(faults) != len(all)-2 {
		t.Fatalf("FaultNemeses %v", faults)
	}
	for _, want := range []string{"churn", "island", "combo", "partition-halves", "kill-leader"} {
		found := false
		for _, n := range faults {
			found = found || n == want
		}
		if !found {
			t.Errorf("%s not in %v", want, faults)
		}
	}
	c := &cluster{}
	for _, n := range all {
		o := Options{Nemesis: n, Logf: t.Logf}
		if err := o.defaults(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if _, _, err := c.validate(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	o := Options{Nemesis: "churn-everything", Logf: t.Logf}
	if err := o.defaults(); err == nil {
		t.Error("unknown nemesis accepted")
	}
}
