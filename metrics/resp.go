package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/olric-raft/olric-raft/internal/latency"
)

// Family names of the RESP collector.
const (
	nameRESPCommands = "olric_raft_resp_commands_total"
	nameRESPDuration = "olric_raft_resp_command_duration_seconds"
)

var (
	descRESPCommands = family(nameRESPCommands, "RESP commands by command name (lower case; unknown names are \"other\") and result (ok, error: the reply was an error).", "command", "result")
	descRESPDuration = family(nameRESPDuration, "RESP command latency in seconds, from parsed to replied (buffered; pipelined replies are flushed together), by command.", "command")
)

// OtherCommand is the command label of names not known to the server.
const OtherCommand = "other"

// RESP records the commands of the RESP front end. It is lock-free on the
// request path (a few atomic adds per command: a pipelined client sends
// hundreds of thousands a second); its labels are bounded by the command
// names given to Registry.RESP. Safe for concurrent use.
type RESP struct {
	commands map[string]*respCommand // read-only after creation
	other    *respCommand
}

type respCommand struct {
	ok, failed atomic.Uint64
	latency    latency.Histogram
}

func newRESP(names []string) *RESP {
	r := &RESP{commands: make(map[string]*respCommand, len(names)), other: &respCommand{}}
	for _, n := range names {
		r.commands[n] = &respCommand{}
	}
	return r
}

// Observe records one command: its lower-case name, whether its reply was
// an error, and how long it took.
func (r *RESP) Observe(command string, failed bool, d time.Duration) {
	c := r.commands[command]
	if c == nil {
		c = r.other
	}
	if failed {
		c.failed.Add(1)
	} else {
		c.ok.Add(1)
	}
	c.latency.Observe(d)
}

// Describe implements prometheus.Collector.
func (r *RESP) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRESPCommands
	ch <- descRESPDuration
}

// Collect implements prometheus.Collector: commands never run have no
// series.
func (r *RESP) Collect(ch chan<- prometheus.Metric) {
	emit := func(name string, c *respCommand) {
		ok, failed := c.ok.Load(), c.failed.Load()
		if ok+failed == 0 {
			return
		}
		ch <- prometheus.MustNewConstMetric(descRESPCommands, prometheus.CounterValue, float64(ok), name, "ok")
		ch <- prometheus.MustNewConstMetric(descRESPCommands, prometheus.CounterValue, float64(failed), name, "error")
		ch <- histogram(descRESPDuration, c.latency.Snapshot(), name)
	}
	for name, c := range r.commands {
		emit(name, c)
	}
	emit(OtherCommand, r.other)
}
