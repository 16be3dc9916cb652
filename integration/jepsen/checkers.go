package jepsen

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// Check is the verdict of one workload's checker.
type Check struct {
	Workload      string         `json:"workload"`
	OK            int            `json:"ok"`
	Fail          int            `json:"fail"`
	Info          int            `json:"indeterminate"`
	Anomalies     map[string]int `json:"anomalies,omitempty"`
	Examples      []string       `json:"examples,omitempty"` // a few anomalies spelled out
	Notes         []string       `json:"notes,omitempty"`
	Unknown       string         `json:"unknown,omitempty"` // why the checker could not decide`
	Visualization string         `json:"visualization,omitempty"`
}

func (c *Check) anomaly(kind, format string, args ...any) {
	if c.Anomalies == nil {
		c.Anomalies = map[string]int{}
	}
	c.Anomalies[kind]++
	if len(c.Examples) < 10 {
		c.Examples = append(c.Examples, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (c *Check) count(ops []Op, workload string, fs ...string) {
	c.Workload = workload
	for _, op := range ops {
		if op.Workload != workload {
			continue
		}
		match := len(fs) == 0
		for _, f := range fs {
			match = match || op.F == f
		}
		if !match {
			continue
		}
		switch op.Type {
		case OK:
			c.OK++
		case Fail:
			c.Fail++
		case Info:
			c.Info++
		}
	}
}

// registerInput and registerOutput are porcupine's view of a register op.
type registerInput struct {
	F      string // read, write, cas
	Key    string
	Value  string // write/cas: the new value
	Expect string // cas: the value it requires ("" = no key)
}

type registerOutput struct {
	Type  Outcome
	Value string // read: the value found ("" = no key)
}

// RegisterModel is a per-key register with read, write and
// compare-and-set; the state is the key's current value ("" = absent).
// Values are unique, so a CAS "if_version n" is "if the value is the one
// read with version n". An indeterminate write or CAS may or may not have
// taken effect: its return is the end of the history, so porcupine may
// linearize it anywhere after its call, including after everything else.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(registerInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(registerInput), output.(registerOutput)
		switch in.F {
		case "read":
			return out.Value == s, s
		case "write":
			return true, in.Value
		case "cas":
			switch out.Type {
			case OK:
				return s == in.Expect, in.Value
			case Fail:
				return s != in.Expect, s
			default:
				if s == in.Expect {
					return true, in.Value
				}
				return true, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(registerInput), output.(registerOutput)
		show := func(v string) string {
			if v == "" {
				return "∅"
			}
			return v
		}
		switch in.F {
		case "read":
			return fmt.Sprintf("read %s → %s", in.Key, show(out.Value))
		case "write":
			return fmt.Sprintf("write %s=%s (%s)", in.Key, in.Value, out.Type)
		default:
			return fmt.Sprintf("cas %s %s→%s (%s)", in.Key, show(in.Expect), in.Value, out.Type)
		}
	},
	DescribeState: func(state any) string {
		if state.(string) == "" {
			return "∅"
		}
		return state.(string)
	},
}

// CheckRegister checks the register ops of ops for linearizability, key
// by key. A failed op is dropped (a failed read saw nothing; a failed
// write or CAS did not happen, except that a CAS refused with
// version_mismatch is kept: it says the value was not the expected one);
// an indeterminate write or CAS ends at the end of the history; an
// indeterminate read is dropped. On a violation (or when the search times
// out) it writes porcupine's HTML view to dir/register.html.
func CheckRegister(ops []Op, dir string, timeout time.Duration) Check {
	var c Check
	c.count(ops, "register", "read", "write", "cas")
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	var hist []porcupine.Operation
	infinite := int64(0)
	for _, op := range ops {
		if op.Workload != "register" {
			continue
		}
		in := registerInput{F: op.F, Key: op.Key, Value: op.Value, Expect: op.Expect}
		out := registerOutput{Type: op.Type}
		ret := op.Return
		switch op.F {
		case "read":
			if op.Type != OK {
				continue
			}
			in.Value = ""
			if op.Found {
				out.Value = op.Value
			}
		case "write", "cas":
			switch {
			case op.Type == Fail && op.F == "cas" && (op.Error == "409 version_mismatch" || op.Error == "409 key_exists"):
			case op.Type == Fail:
				continue
			case op.Type == Info:
				infinite++
				ret = end + 1_000_000_000 + infinite
			}
		default:
			continue
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Process, Input: in, Output: out, Call: op.Call, Return: ret, Metadata: op.Index})
	}
	if len(hist) == 0 {
		c.Notes = append(c.Notes, "no register operations")
		return c
	}
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, hist, timeout)
	switch res {
	case porcupine.Ok:
		return c
	case porcupine.Illegal:
		c.anomaly("nonlinearizable", "porcupine found no linearization (%d ops, %d open-ended)", len(hist), infinite)
	default:
		c.Unknown = fmt.Sprintf("porcupine gave up after %s", timeout)
	}
	if dir != "" {
		path := filepath.Join(dir, "register.html")
		if err := porcupine.VisualizePath(RegisterModel, info, path); err != nil {
			c.Notes = append(c.Notes, "visualization: "+err.Error())
		} else {
			c.Visualization = path
		}
	}
	return c
}

// SetFinal is the set's final read: a scan of the whole DMap when one
// succeeded (Scanned), else a GET of every attempted element, minus those
// that could not be read (Unreadable: their partition stayed unavailable).
type SetFinal struct {
	Scanned    bool
	Elems      []string
	Unreadable map[string]bool
}

// CheckSet compares the acknowledged adds with the final read: lost
// (acknowledged, missing), failed-but-present (refused for sure, yet
// there), unexpected (present, never attempted) and duplicated (listed
// twice) elements. Indeterminate adds may be present or not. Elements the
// final read could not read are left out, and noted.
func CheckSet(ops []Op, fin SetFinal) Check {
	var c Check
	c.count(ops, "set", "add")
	attempted := map[string]Outcome{}
	for _, op := range ops {
		if op.Workload == "set" && op.F == "add" {
			attempted[op.Key] = op.Type
		}
	}
	if !fin.Scanned && len(fin.Elems) == 0 && len(fin.Unreadable) == 0 && len(attempted) > 0 {
		c.Unknown = "no final read"
		return c
	}
	seen := map[string]int{}
	for _, e := range fin.Elems {
		seen[e]++
	}
	var keys []string
	for e := range attempted {
		keys = append(keys, e)
	}
	sort.Strings(keys)
	recovered, unreadableAcked := 0, 0
	for _, e := range keys {
		t := attempted[e]
		if fin.Unreadable[e] {
			if t == OK {
				unreadableAcked++
			}
			continue
		}
		switch {
		case t == OK && seen[e] == 0:
			c.anomaly("lost", "%s was acknowledged but is missing", e)
		case t == Fail && seen[e] > 0:
			c.anomaly("failed-but-present", "%s failed for sure but is present", e)
		case t == Info && seen[e] > 0:
			recovered++
		}
	}
	var present []string
	for e := range seen {
		present = append(present, e)
	}
	sort.Strings(present)
	for _, e := range present {
		if _, ok := attempted[e]; !ok {
			c.anomaly("unexpected", "%s was never attempted", e)
		}
		if seen[e] > 1 {
			c.anomaly("duplicated", "%s listed %d times", e, seen[e])
		}
	}
	how := "scan"
	if !fin.Scanned {
		how = "GET of each attempted element (no scan succeeded)"
	}
	c.Notes = append(c.Notes, fmt.Sprintf("final read by %s: %d present; %d indeterminate adds present", how, len(fin.Elems), recovered))
	if len(fin.Unreadable) > 0 {
		c.Unknown = fmt.Sprintf("%d elements unreadable (%d of them acknowledged): not checked", len(fin.Unreadable), unreadableAcked)
	}
	return c
}

// CheckCounter: the final value must lie within [acknowledged increments,
// attempted increments (acknowledged + indeterminate)].
func CheckCounter(ops []Op, final int64, finalOK bool) Check {
	var c Check
	c.count(ops, "counter", "incr")
	lo, hi := int64(c.OK), int64(c.OK+c.Info)
	if !finalOK {
		c.Unknown = "the final read never succeeded"
		return c
	}
	switch {
	case final < lo:
		c.anomaly("lost-increments", "final %d < %d acknowledged", final, lo)
	case final > hi:
		c.anomaly("phantom-increments", "final %d > %d attempted", final, hi)
	}
	c.Notes = append(c.Notes, fmt.Sprintf("final %d within [%d, %d]", final, lo, hi))
	return c
}

// CheckLock checks the lock workload: each successful acquisition has a
// unique fencing token; token order agrees with real time (a lock granted
// entirely before another was requested has the smaller token); and two
// holders whose unlock succeeded (so each held the lock from the return of
// its lock call to the call of its unlock) never overlap.
func CheckLock(ops []Op) Check {
	var c Check
	c.count(ops, "lock", "lock", "unlock")
	type hold struct {
		token           uint64
		acqCall, acqRet int64
		unlockCall      int64
		proven          bool
		process         int
	}
	var holds []*hold
	byKey := map[[2]uint64]*hold{} // (process, token)
	for _, op := range ops {
		if op.Workload != "lock" {
			continue
		}
		switch {
		case op.F == "lock" && op.Type == OK:
			h := &hold{token: op.Token, acqCall: op.Call, acqRet: op.Return, process: op.Process, unlockCall: math.MaxInt64}
			holds = append(holds, h)
			byKey[[2]uint64{uint64(op.Process), op.Token}] = h
		case op.F == "unlock" && op.Type == OK:
			if h := byKey[[2]uint64{uint64(op.Process), op.Token}]; h != nil {
				h.unlockCall, h.proven = op.Call, true
			}
		}
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].token < holds[j].token })
	for i := 1; i < len(holds); i++ {
		if holds[i].token == holds[i-1].token {
			c.anomaly("duplicate-token", "token %d granted twice", holds[i].token)
		}
	}
	ms := func(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) + "s" }
	for i, a := range holds {
		for _, b := range holds[i+1:] {
			if a.token == b.token {
				continue
			}
			// a.token < b.token: a was granted before b.
			if b.acqRet < a.acqCall {
				c.anomaly("token-order", "token %d (granted by %s) < token %d (requested at %s)", b.token, ms(b.acqRet), a.token, ms(a.acqCall))
			}
			if a.proven && b.proven && a.acqRet < b.unlockCall && b.acqRet < a.unlockCall {
				c.anomaly("overlap", "holders of tokens %d [%s, %s] and %d [%s, %s] overlap",
					a.token, ms(a.acqRet), ms(a.unlockCall), b.token, ms(b.acqRet), ms(b.unlockCall))
			}
		}
	}
	c.Notes = append(c.Notes, fmt.Sprintf("%d acquisitions", len(holds)))
	return c
}
