package jepsen

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one completed client operation (or nemesis event) of the history.
// Call and Return are nanoseconds since the start of the run.
type Op struct {
	Index    int     `json:"index"`
	Process  int     `json:"process"` // client process id; a new one after each indeterminate op
	Workload string  `json:"workload"`
	F        string  `json:"f"` // read, write, cas, add, incr, lock, unlock, final-read, nemesis
	Key      string  `json:"key,omitempty"`
	Value    string  `json:"value,omitempty"`  // written value, or the value read (JSON text)
	Found    bool    `json:"found,omitempty"`  // a read found the key
	Expect   string  `json:"expect,omitempty"` // cas: the value the write expects ("" = no key)
	Version  uint64  `json:"version,omitempty"`
	Token    uint64  `json:"token,omitempty"`
	Type     Outcome `json:"type"`
	Node     string  `json:"node,omitempty"` // the member the client asked
	Error    string  `json:"error,omitempty"`
	Output   string  `json:"output,omitempty"` // nemesis: an operator command's output
	Call     int64   `json:"call"`
	Return   int64   `json:"return"`
}

// History collects operations from concurrent clients.
type History struct {
	start time.Time
	procs atomic.Int64
	mu    sync.Mutex
	ops   []Op
}

func newHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// NewProcess returns a fresh process id.
func (h *History) NewProcess() int { return int(h.procs.Add(1)) - 1 }

// Add appends a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	op.Index = len(h.ops)
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the history sorted by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// WriteJSONL writes ops as JSON lines to path.
func WriteJSONL(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadJSONL reads a history written by WriteJSONL.
func ReadJSONL(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []Op
	dec := json.NewDecoder(f)
	for dec.More() {
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}
