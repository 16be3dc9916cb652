package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/embedded"
	"github.com/olric-raft/olric-raft/node"
)

// rssBytes reads this process's resident set size from /proc.
func rssBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	b.Skip("VmRSS not found")
	return 0
}

// BenchmarkMemberRSS1M loads 1M keys (16-byte keys, 100-byte values) into
// a single embedded member through its DMap API and reports the process's
// resident memory per key (RSS after loading minus RSS of the idle member:
// right after a GC, and once freed pages went back to the OS) and the
// longest GC pause while loading.
//
//	go test -run '^$' -bench MemberRSS1M -benchtime 1x ./embedded
func BenchmarkMemberRSS1M(b *testing.B) {
	const keys = 1_000_000
	for b.Loop() {
		cfg := node.DefaultConfig()
		cfg.NodeID = "rss"
		cfg.DataDir = b.TempDir()
		cfg.Timing = node.DevTiming()
		cfg.Bootstrap = true
		cfg.ClusterAddr = "127.0.0.1:0"
		cfg.GossipAddr = "127.0.0.1:0"
		cfg.Logger = slog.New(slog.DiscardHandler)
		m, err := embedded.Start(cfg, embedded.WithReadyTimeout(30*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		d := m.DMap("bench")
		value := []byte(strings.Repeat("v", 100))
		// Warm every partition (first writes commit a mark) before measuring.
		for i := range 5000 {
			if _, err := d.Put(ctx, fmt.Sprintf("warm-%011d", i), value); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		debug.FreeOSMemory()
		before := rssBytes(b)
		var gcBefore debug.GCStats
		debug.ReadGCStats(&gcBefore)
		start := time.Now()
		for i := range keys {
			if _, err := d.Put(ctx, fmt.Sprintf("key-%012d", i), value); err != nil { // 16 bytes
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		runtime.GC()
		loaded := rssBytes(b)
		debug.FreeOSMemory() // return freed pages, as the scavenger does over time
		after := rssBytes(b)
		var gcAfter debug.GCStats
		debug.ReadGCStats(&gcAfter)
		var maxPause time.Duration
		for i := range min(len(gcAfter.Pause), int(gcAfter.NumGC-gcBefore.NumGC)) {
			maxPause = max(maxPause, gcAfter.Pause[i])
		}
		b.ReportMetric(float64(loaded-before)/keys, "rss-loaded-B/key")
		b.ReportMetric(float64(after-before)/keys, "rss-B/key")
		b.ReportMetric(float64(after)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(maxPause.Microseconds())/1000, "max-gc-pause-ms")
		b.ReportMetric(float64(keys)/elapsed.Seconds(), "puts/s")
		_ = m.Close()
	}
}
