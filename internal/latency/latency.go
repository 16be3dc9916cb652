// Package latency is a lock-free, fixed-bucket latency histogram that the
// request paths of node and dataplane record into without importing
// Prometheus; the metrics package turns a Snapshot into a Prometheus
// histogram on each scrape.
//
// Observe is a few atomic adds (safe from any goroutine, never blocks);
// Snapshot reads the counters one by one, so a snapshot taken while
// observations run may count an observation in Count but not yet in its
// bucket (or the other way round): scrapes tolerate that, exact sums are
// not needed.
package latency

import (
	"sync/atomic"
	"time"
)

// Buckets are the upper bounds, in seconds, of every Histogram: 100µs to
// 10s, roughly ×2.5 apart (the range from a local apply to a Raft
// election).
var Buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// bounds are Buckets in nanoseconds.
var bounds = func() []int64 {
	b := make([]int64, len(Buckets))
	for i, s := range Buckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// Histogram counts durations into Buckets. The zero value is ready to use.
type Histogram struct {
	counts [17]atomic.Uint64 // len(Buckets)+1: the last one is +Inf
	count  atomic.Uint64
	sumNs  atomic.Int64
}

// Observe records one duration (negative ones count as 0).
func (h *Histogram) Observe(d time.Duration) {
	ns := max(int64(d), 0)
	i := 0
	for i < len(bounds) && ns > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(ns)
	h.count.Add(1)
}

// Since records the time elapsed since start.
func (h *Histogram) Since(start time.Time) { h.Observe(time.Since(start)) }

// Snapshot is a histogram's state: Cumulative[i] counts the observations
// ≤ Buckets[i] (Prometheus' convention).
type Snapshot struct {
	Count      uint64
	Sum        time.Duration
	Cumulative []uint64
}

// Snapshot returns the histogram's current counts.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Cumulative: make([]uint64, len(Buckets))}
	var run uint64
	for i := range Buckets {
		run += h.counts[i].Load()
		s.Cumulative[i] = run
	}
	run += h.counts[len(Buckets)].Load()
	s.Count = run
	s.Sum = time.Duration(h.sumNs.Load())
	return s
}
