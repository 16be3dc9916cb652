package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/metadata"
)

const etBenchPartitions = metadata.DefaultPartitionCount

// etBenchKeys returns n 16-byte keys and their partitions.
func etBenchKeys(n int) ([]string, []uint32) {
	keys := make([]string, n)
	parts := make([]uint32, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
		parts[i] = metadata.PartitionOf("bench", keys[i], etBenchPartitions)
	}
	return keys, parts
}

func etBenchEngine(b *testing.B, n int) (*Engine, []string, []uint32) {
	b.Helper()
	e, err := NewEngine(Config{}, etBenchPartitions, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	keys, parts := etBenchKeys(n)
	val := make([]byte, 100)
	ctx := context.Background()
	for i, k := range keys {
		if _, err := e.Do(ctx, parts[i], 1, &Request{Op: OpPut, DMap: "bench", Key: k, Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	return e, keys, parts
}

func BenchmarkEngineGet(b *testing.B) {
	e, keys, parts := etBenchEngine(b, 100_000)
	ctx := context.Background()
	req := &Request{Op: OpGet, DMap: "bench"}
	i := 0
	for b.Loop() {
		j := i % len(keys)
		req.Key = keys[j]
		if _, err := e.Do(ctx, parts[j], 1, req); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

func BenchmarkEnginePut(b *testing.B) {
	e, keys, parts := etBenchEngine(b, 100_000)
	ctx := context.Background()
	req := &Request{Op: OpPut, DMap: "bench", Value: make([]byte, 100)}
	i := 0
	for b.Loop() {
		j := i % len(keys)
		req.Key = keys[j]
		if _, err := e.Do(ctx, parts[j], 1, req); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

func BenchmarkEngineGetParallel(b *testing.B) {
	e, keys, parts := etBenchEngine(b, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &Request{Op: OpGet, DMap: "bench"}
		i := rand.IntN(len(keys))
		for pb.Next() {
			j := i % len(keys)
			req.Key = keys[j]
			if _, err := e.Do(ctx, parts[j], 1, req); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
}

func BenchmarkEnginePutParallel(b *testing.B) {
	e, keys, parts := etBenchEngine(b, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &Request{Op: OpPut, DMap: "bench", Value: make([]byte, 100)}
		i := rand.IntN(len(keys))
		for pb.Next() {
			j := i % len(keys)
			req.Key = keys[j]
			if _, err := e.Do(ctx, parts[j], 1, req); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
}

func BenchmarkEngineScan(b *testing.B) {
	e, _, _ := etBenchEngine(b, 100_000)
	ctx := context.Background()
	cursor := ""
	for b.Loop() {
		r, err := e.Do(ctx, 0, 1, &Request{Op: OpScan, DMap: "bench", Cursor: cursor, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		cursor = r.Cursor
	}
}

// BenchmarkEngineMemory1M loads 1M keys (16-byte keys, 100-byte values,
// 271 partitions) into one engine and reports the heap it takes per key
// (HeapInuse after a full GC, minus before) and GC pauses: the longest
// stop-the-world pause while loading and during a forced GC with every
// key live, and that forced GC's wall time. One load per run: use
// -benchtime=1x.
//
//	go test -run '^$' -bench EngineMemory1M -benchtime 1x ./dataplane/
func BenchmarkEngineMemory1M(b *testing.B) {
	const n = 1_000_000
	keys, parts := etBenchKeys(n)
	val := make([]byte, 100)
	ctx := context.Background()
	for b.Loop() {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		gcBefore := gcStats()

		e, err := NewEngine(Config{}, etBenchPartitions, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		req := &Request{Op: OpPut, DMap: "bench", Value: val}
		for i, k := range keys {
			req.Key = k
			if _, err := e.Do(ctx, parts[i], 1, req); err != nil {
				b.Fatal(err)
			}
		}
		load := time.Since(start)
		gcLoad := gcStats()

		gcStart := time.Now()
		runtime.GC()
		gcWall := time.Since(gcStart)
		runtime.GC()
		runtime.ReadMemStats(&after)
		gcAfter := gcStats()
		if st := e.Stats(); st.Keys != n {
			b.Fatalf("%d keys", st.Keys)
		}
		perKey := float64(after.HeapInuse-before.HeapInuse) / n
		b.ReportMetric(perKey, "heap-B/key")
		b.ReportMetric(float64(gcLoad.PauseQuantiles[4].Microseconds()), "max-load-pause-µs")
		b.ReportMetric(float64(gcAfter.Pause[0].Microseconds()), "forced-gc-pause-µs")
		b.ReportMetric(float64(gcWall.Milliseconds()), "forced-gc-wall-ms")
		b.ReportMetric(float64(gcLoad.NumGC-gcBefore.NumGC), "gcs-while-loading")
		b.ReportMetric(float64(load.Nanoseconds())/n, "load-ns/key")
		runtime.KeepAlive(e)
		_ = e.Close()
	}
}

func gcStats() debug.GCStats {
	s := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&s)
	return s
}
