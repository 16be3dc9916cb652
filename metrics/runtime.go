package metrics

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// processStart approximates the process start time: package init.
var processStart = time.Now()

// runtimeCollector reports the Go runtime, under the names Prometheus'
// Go client uses.
type runtimeCollector struct{}

// NewRuntimeCollector returns a collector of Go runtime statistics
// (goroutines, threads, heap, GC). It stops the world briefly on each
// scrape (runtime.ReadMemStats).
func NewRuntimeCollector() Collector { return runtimeCollector{} }

func (runtimeCollector) Describe() []Desc {
	return []Desc{
		{"go_info", "Go version the binary was built with.", KindGauge},
		{"go_goroutines", "Number of goroutines that currently exist.", KindGauge},
		{"go_threads", "Number of OS threads created.", KindGauge},
		{"go_memstats_alloc_bytes_total", "Total bytes allocated on the heap, even if freed.", KindCounter},
		{"go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", KindGauge},
		{"go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", KindGauge},
		{"go_memstats_heap_objects", "Number of allocated heap objects.", KindGauge},
		{"go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", KindGauge},
		{"go_memstats_last_gc_time_seconds", "Unix time of the last garbage collection.", KindGauge},
		{"go_gc_cycles_total", "Completed GC cycles.", KindCounter},
		{"go_gc_pause_seconds_total", "Total stop-the-world GC pause time.", KindCounter},
	}
}

func (runtimeCollector) Collect(emit func(Family)) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	emit(single("go_info", 1, Label{"version", runtime.Version()}))
	emit(single("go_goroutines", float64(runtime.NumGoroutine())))
	emit(single("go_threads", float64(pprof.Lookup("threadcreate").Count())))
	emit(single("go_memstats_alloc_bytes_total", float64(ms.TotalAlloc)))
	emit(single("go_memstats_heap_alloc_bytes", float64(ms.HeapAlloc)))
	emit(single("go_memstats_heap_inuse_bytes", float64(ms.HeapInuse)))
	emit(single("go_memstats_heap_objects", float64(ms.HeapObjects)))
	emit(single("go_memstats_sys_bytes", float64(ms.Sys)))
	emit(single("go_memstats_last_gc_time_seconds", float64(ms.LastGC)/1e9))
	emit(single("go_gc_cycles_total", float64(ms.NumGC)))
	emit(single("go_gc_pause_seconds_total", float64(ms.PauseTotalNs)/1e9))
}

// processCollector reports the process, under the names Prometheus' Go
// client uses. What the platform cannot tell is left out.
type processCollector struct{}

// NewProcessCollector returns a collector of this process' CPU time,
// memory and file descriptors (the latter two from /proc, on Linux).
func NewProcessCollector() Collector { return processCollector{} }

func (processCollector) Describe() []Desc {
	return []Desc{
		{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", KindCounter},
		{"process_resident_memory_bytes", "Resident memory size in bytes.", KindGauge},
		{"process_open_fds", "Number of open file descriptors.", KindGauge},
		{"process_max_fds", "Maximum number of open file descriptors.", KindGauge},
		{"process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", KindGauge},
	}
}

func (processCollector) Collect(emit func(Family)) {
	if cpu, ok := cpuSeconds(); ok {
		emit(single("process_cpu_seconds_total", cpu))
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		// size resident shared ...: in pages.
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				emit(single("process_resident_memory_bytes", float64(pages)*float64(os.Getpagesize())))
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		emit(single("process_open_fds", float64(len(fds))))
	}
	if m, ok := maxFDs(); ok {
		emit(single("process_max_fds", m))
	}
	emit(single("process_start_time_seconds", float64(processStart.UnixNano())/1e9))
}
