package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// keyPerPartition returns, for each partition, a key of dmap that lands in
// it.
func keyPerPartition(dmap string, count uint32) []string {
	keys := make([]string, count)
	found := uint32(0)
	for i := 0; found < count; i++ {
		k := fmt.Sprintf("probe-%d", i)
		p := metadata.PartitionOf(dmap, k, count)
		if keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// BenchmarkKillToServing measures the time from killing a member (no
// leave, no goodbye: its sockets close, as with kill -9) of three with
// replicas=2 until every partition it led answers a write again through a
// survivor (lease expiry + drift, the failover entry, the promoted
// backups fencing and serving). The victim is a follower, or the Raft
// leader (then a new leader is elected first and waits one lease period
// plus drift before it fails anyone over).
//
//	go test ./integration -run '^$' -bench KillToServing -benchtime 10x
func BenchmarkKillToServing(b *testing.B) {
	for _, tm := range timings() {
		for _, kind := range []string{"follower", "leader"} {
			b.Run(tm.name+"/"+kind, func(b *testing.B) { benchKillToServing(b, tm.t, kind == "leader") })
		}
	}
}

func benchKillToServing(b *testing.B, timing node.Timing, killLeader bool) {
	{
		{
			var ds []time.Duration
			for b.Loop() {
				b.StopTimer()
				c := testcluster.New(b, 3, testcluster.Options{Timing: &timing, Replicas: 2})
				c.StartAll()
				tbl := c.WaitConverged(convergeTimeout)
				leader := c.Leader(convergeTimeout)
				victim := c.Members[(leader.Index+1)%3]
				if killLeader {
					victim = leader
				}
				var via *testcluster.Member
				for _, m := range c.Members {
					if m != victim {
						via = m
						break
					}
				}
				keys := keyPerPartition("bench", tbl.PartitionCount)
				ctx, cancel := context.WithTimeout(context.Background(), 2*convergeTimeout)
				var led []string
				for pid, k := range keys {
					if tbl.Partitions[pid].Primary == victim.Name {
						led = append(led, k)
						if _, err := put(ctx, via, "bench", k, "before"); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				start := time.Now()
				c.Kill(victim.Index)
				var wg sync.WaitGroup
				for _, k := range led {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							if _, err := put(ctx, via, "bench", k, "after"); err == nil {
								return
							}
						}
					}()
				}
				wg.Wait()
				ds = append(ds, time.Since(start))
				b.StopTimer()
				if ctx.Err() != nil {
					b.Fatal("partitions not serving again in time")
				}
				cancel()
				c.CloseAll()
				b.StartTimer()
			}
			reportPercentiles(b, ds)
		}
	}
}

// BenchmarkJoinRebalance measures, with -keys keys (default 1M, 100-byte
// values) on three members with replicas=2, how long a fourth member's
// join takes until the routing table is balanced over four with every
// backup in sync, and the longest any single write took meanwhile, with
// writers running throughout. Since every member shares the same cores,
// that longest write mixes the handoff pause with CPU contention, so it
// also reports the handoff pause the new primaries measured
// (handoff-max-ms, handoff-p99-ms: ServiceStats.Handoffs made during the
// join) and the writes split by whether their partition changed primary
// during the join (moving-*-write-ms) or not (still-*-write-ms).
//
//	go test ./integration -run '^$' -bench JoinRebalance -benchtime 1x -timeout 30m
func BenchmarkJoinRebalance(b *testing.B) {
	n := *benchKeys
	value := make([]byte, 100)
	for b.Loop() {
		b.StopTimer()
		lan := LANTimingForBench()
		c := testcluster.New(b, 4, testcluster.Options{SeedBootstrap: true, Replicas: 2, Timing: &lan})
		for i := range 3 {
			c.Start(i)
		}
		c.WaitFor(convergeTimeout, "three members", func() error {
			if k := len(c.Members[0].Node().Routing().AliveMembers()); k != 3 {
				return fmt.Errorf("%d alive", k)
			}
			return nil
		})
		c.WaitConverged(convergeTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		loadStart := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := c.Members[w%3]
				for {
					i := next.Add(1) - 1
					if i >= int64(n) || ctx.Err() != nil {
						return
					}
					if _, err := m.Node().Do(ctx, &dataplane.Request{Op: dataplane.OpPut, DMap: "bench", Key: fmt.Sprintf("key-%09d", i), Value: value}); err != nil {
						b.Errorf("load: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.Logf("loaded %d keys in %s", n, time.Since(loadStart).Round(time.Millisecond))
		c.WaitFor(convergeTimeout, "backups in sync after loading", func() error {
			return inSyncEverywhere(c.Members[0].Node().Routing(), 3)
		})
		// Writers during the join: the longest single write is the pause.
		var stop atomic.Bool
		var mu sync.Mutex
		var lat []time.Duration
		byPart := map[uint32][]time.Duration{} // lat by the write's partition
		pcount := c.Members[0].Node().Routing().PartitionCount
		type slowWrite struct {
			d   time.Duration
			at  time.Time
			key string
		}
		var slow []slowWrite
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := c.Members[w%3]
				for i := 0; !stop.Load(); i++ {
					t0 := time.Now()
					key := fmt.Sprintf("key-%09d", (i*7919+w)%n)
					_, err := m.Node().Do(ctx, &dataplane.Request{Op: dataplane.OpPut, DMap: "bench", Key: key, Value: value})
					d := time.Since(t0)
					if err == nil {
						p := metadata.PartitionOf("bench", key, pcount)
						mu.Lock()
						lat = append(lat, d)
						byPart[p] = append(byPart[p], d)
						if d > 100*time.Millisecond {
							slow = append(slow, slowWrite{d: d, at: t0, key: key})
						}
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond) // writers warmed up (not a test: a benchmark's steady state)
		var prof *os.File
		if *rebalanceProfile != "" {
			var err error
			if prof, err = os.Create(*rebalanceProfile); err != nil {
				b.Fatal(err)
			}
			_ = pprof.StartCPUProfile(prof)
		}
		before := c.Members[0].Node().Routing()
		b.StartTimer()
		start := time.Now()
		c.Start(3)
		c.WaitFor(5*time.Minute, "balanced over four, all in sync", func() error {
			return inSyncEverywhere(c.Members[0].Node().Routing(), 4)
		})
		took := time.Since(start)
		b.StopTimer()
		if prof != nil {
			pprof.StopCPUProfile()
			_ = prof.Close()
		}
		stop.Store(true)
		wg.Wait()
		after := c.Members[0].Node().Routing()
		// The handoff pauses the new primaries measured during the join.
		var handoffs []time.Duration
		for _, m := range c.Members {
			st, ok := m.Node().ServiceStats()
			if !ok {
				continue
			}
			for _, h := range st.Handoffs {
				if !h.At.Before(start) {
					handoffs = append(handoffs, h.Pause)
				}
			}
		}
		slices.Sort(handoffs)
		// Client-observed writes, split by whether their partition changed
		// primary during the join.
		var moving, still []time.Duration
		for p, ds := range byPart {
			if before.Partitions[p].Primary != after.Partitions[p].Primary {
				moving = append(moving, ds...)
			} else {
				still = append(still, ds...)
			}
		}
		slices.Sort(moving)
		slices.Sort(still)
		slices.Sort(lat)
		slices.SortFunc(slow, func(a, b slowWrite) int { return int(b.d - a.d) })
		for _, sw := range slow[:min(len(slow), 5)] {
			p := metadata.PartitionOf("bench", sw.key, c.Members[0].Node().Routing().PartitionCount)
			b.Logf("slow write: %s, started %s after the join began, partition %d", sw.d.Round(time.Millisecond), sw.at.Sub(start).Round(time.Millisecond), p)
		}
		b.ReportMetric(float64(took.Milliseconds()), "rebalance-ms")
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-write-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-write-ms")
		}
		reportMaxP99(b, handoffs, "handoff")
		reportMaxP99(b, moving, "moving-%s-write")
		reportMaxP99(b, still, "still-%s-write")
		var handoffP50 time.Duration
		if len(handoffs) > 0 {
			handoffP50 = handoffs[len(handoffs)/2]
			b.ReportMetric(float64(handoffP50.Microseconds())/1000, "handoff-p50-ms")
		}
		b.Logf("join rebalanced %d keys in %s; %d writes meanwhile, longest %s; %d handoffs: max %s p99 %s p50 %s; "+
			"writes to moved partitions: %d, max %s p99 %s; to the others: %d, max %s p99 %s",
			n, took.Round(time.Millisecond), len(lat), lat[len(lat)-1],
			len(handoffs), maxOf(handoffs), p99Of(handoffs), handoffP50,
			len(moving), maxOf(moving), p99Of(moving), len(still), maxOf(still), p99Of(still))
		cancel()
		c.CloseAll()
		b.StartTimer()
	}
}

// reportMaxP99 reports the largest and the 99th percentile of sorted ds, in
// milliseconds, as name-max-ms and name-p99-ms (or, when name holds a %s,
// with max and p99 in its place and "-ms" after it); nothing if ds is
// empty.
func reportMaxP99(b *testing.B, ds []time.Duration, name string) {
	if len(ds) == 0 {
		return
	}
	unit := func(stat string) string {
		if strings.Contains(name, "%s") {
			return fmt.Sprintf(name, stat) + "-ms"
		}
		return name + "-" + stat + "-ms"
	}
	b.ReportMetric(float64(maxOf(ds).Microseconds())/1000, unit("max"))
	b.ReportMetric(float64(p99Of(ds).Microseconds())/1000, unit("p99"))
}

// maxOf and p99Of are the largest and the 99th percentile of sorted ds (0
// if empty).
func maxOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1]
}

func p99Of(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)*99/100]
}

// inSyncEverywhere reports nil once tbl has members alive members, each
// with its balanced share of primaries, every partition active and no
// backup syncing.
func inSyncEverywhere(tbl *metadata.RoutingTable, members int) error {
	if k := len(tbl.AliveMembers()); k != members {
		return fmt.Errorf("%d alive members", k)
	}
	for _, p := range tbl.Partitions {
		if p.State != metadata.PartitionActive || len(p.Syncing) > 0 {
			return fmt.Errorf("partition %d is %s, syncing %v", p.ID, p.State, p.Syncing)
		}
	}
	floor := int(tbl.PartitionCount) / members
	for id, l := range tbl.Loads() {
		if l.Primaries < floor {
			return fmt.Errorf("%s leads %d partitions", id, l.Primaries)
		}
	}
	return nil
}

var (
	benchKeys        = flag.Int("keys", 1_000_000, "keys loaded by BenchmarkJoinRebalance")
	rebalanceProfile = flag.String("rebalance-cpuprofile", "", "write a CPU profile of BenchmarkJoinRebalance's rebalance (not the loading) to this file")
)

// LANTimingForBench is the LAN timing profile (the one the README's
// numbers are for).
func LANTimingForBench() node.Timing { return node.LANTiming() }
