package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/testcluster"
	"github.com/olric-raft/olric-raft/metadata"
)

// ackLog records, per key, the last acknowledged value and whether a later
// write to the key was indeterminate (then the key may hold either).
type ackLog struct {
	mu      sync.Mutex
	acked   map[string]string
	unsure  map[string]bool
	writes  atomic.Int64
	unavail atomic.Int64
	indet   atomic.Int64
}

func newAckLog() *ackLog {
	return &ackLog{acked: map[string]string{}, unsure: map[string]bool{}}
}

// writeLoad runs writers through the given members until stop, recording
// every outcome. Each writer owns its keys, so the last acknowledged value
// of a key is well defined.
func writeLoad(ctx context.Context, t *testing.T, via []*testcluster.Member, writers int, log *ackLog, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-k%d", w, i%64)
				val := fmt.Sprintf("w%d-v%d", w, i)
				m := via[(w+i)%len(via)]
				_, err := put(ctx, m, "orders", key, val)
				log.mu.Lock()
				switch {
				case err == nil:
					log.acked[key] = val
					delete(log.unsure, key)
					log.writes.Add(1)
				case errors.Is(err, dataplane.ErrUnavailable):
					log.unavail.Add(1)
					// Refused before it ran: the key keeps its old value.
				case errors.Is(err, dataplane.ErrIndeterminate):
					log.indet.Add(1)
					log.unsure[key] = true
				default:
					if ctx.Err() == nil {
						t.Errorf("put %s via %s: %v", key, m.Name, err)
					}
				}
				log.mu.Unlock()
				if err != nil && !errors.Is(err, dataplane.ErrIndeterminate) {
					time.Sleep(5 * time.Millisecond) // back off a refused write, like a client would
				}
			}
		}()
	}
	return &wg
}

// checkAcked reads every acknowledged key through every given member and
// fails on any value other than the last acknowledged one (or, for a key
// whose later write was indeterminate, on a missing key).
func checkAcked(ctx context.Context, t *testing.T, via []*testcluster.Member, log *ackLog) {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	keys := make([]string, 0, len(log.acked))
	for k := range log.acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lost := 0
	for _, key := range keys {
		want := log.acked[key]
		for _, m := range via {
			got, ok, err := get(ctx, m, "orders", key)
			if err != nil {
				t.Fatalf("read %s via %s: %v", key, m.Name, err)
			}
			if !ok || (got != want && !log.unsure[key]) {
				lost++
				if lost <= 5 {
					t.Errorf("acknowledged write lost: %s via %s = %q (found %v), last acknowledged %q", key, m.Name, got, ok, want)
				}
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost of %d keys", lost, len(keys))
	}
}

// keyLedBy returns a key of dmap whose partition member leads in tbl.
func keyLedBy(tbl *metadata.RoutingTable, dmap string, member metadata.NodeID) string {
	for i := 0; ; i++ {
		key := fmt.Sprintf("key%d", i)
		if p, _ := tbl.Locate(dmap, key); p.Primary == member {
			return key
		}
	}
}

// allServing reports nil once every partition is active with an in-sync
// primary on the member's table.
func allActive(tbl *metadata.RoutingTable) error {
	for _, p := range tbl.Partitions {
		if p.State != metadata.PartitionActive {
			return fmt.Errorf("partition %d is %s", p.ID, p.State)
		}
	}
	return nil
}

// TestReplicationKillAnyMemberLosesNoAcknowledgedWrite: with replicas=2 on
// three members under continuous writes, kill -9 (in process: stop without
// leaving) of the leader or of another member loses no acknowledged write:
// every partition the victim led is served by its promoted in-sync backup,
// none becomes unavailable.
func TestReplicationKillAnyMemberLosesNoAcknowledgedWrite(t *testing.T) {
	for _, victimIsLeader := range []bool{false, true} {
		name := "follower"
		if victimIsLeader {
			name = "leader"
		}
		t.Run(name, func(t *testing.T) {
			c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
			c.StartAll()
			c.WaitConverged(convergeTimeout)
			leader := c.Leader(convergeTimeout)
			victim := c.Members[(leader.Index+1)%3]
			if victimIsLeader {
				victim = leader
			}
			var survivors []*testcluster.Member
			for _, m := range c.Members {
				if m != victim {
					survivors = append(survivors, m)
				}
			}
			// Every backup in sync before the kill (a partition whose
			// only in-sync copy dies is unavailable, by design).
			c.WaitFor(convergeTimeout, "backups in sync", func() error {
				for _, p := range c.Members[0].Node().Routing().Partitions {
					if len(p.Syncing) > 0 {
						return fmt.Errorf("partition %d syncing %v", p.ID, p.Syncing)
					}
				}
				return nil
			})
			// Everything the victim sends arrives 20 ms late: a write it
			// acknowledged before its backup applied it would be lost
			// with it (asynchronous replication fails here every time).
			c.Net.SetDelay(string(victim.Name), "", 20*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
			defer cancel()
			log := newAckLog()
			var stop atomic.Bool
			wg := writeLoad(ctx, t, survivors, 6, log, &stop)
			waitWrites := func(n int64) {
				c.WaitFor(convergeTimeout, "writes to flow", func() error {
					if log.writes.Load() < n {
						return fmt.Errorf("%d writes acknowledged", log.writes.Load())
					}
					return nil
				})
			}
			waitWrites(300)
			killed := time.Now()
			c.Kill(victim.Index)
			c.Net.SetDelay(string(victim.Name), "", 0)
			c.WaitFor(convergeTimeout, "the victim failed over", func() error {
				tbl := survivors[0].Node().Routing()
				m, ok := tbl.Member(victim.Name)
				if ok && m.State != metadata.MemberFailed {
					return fmt.Errorf("victim is %s", m.State)
				}
				if err := allActive(tbl); err != nil {
					return err
				}
				for _, p := range tbl.Partitions {
					if p.Primary == victim.Name {
						return fmt.Errorf("partition %d still led by the victim", p.ID)
					}
				}
				return nil
			})
			failedOver := time.Since(killed)
			before := log.writes.Load()
			waitWrites(before + 300)
			stop.Store(true)
			wg.Wait()
			for _, m := range survivors {
				if err := allActive(m.Node().Routing()); err != nil {
					t.Fatalf("after one kill with replicas=2 on %s: %v", m.Name, err)
				}
			}
			checkAcked(ctx, t, survivors, log)
			t.Logf("%d writes acknowledged, %d refused (503), %d indeterminate; failover committed %s after the kill",
				log.writes.Load(), log.unavail.Load(), log.indet.Load(), failedOver.Round(time.Millisecond))
		})
	}
}

// TestReplicationBackupsCatchUpAndJoinTheInSyncSet: a cluster that started
// with data gets its new backups filled (syncing → in sync) after a
// member joins, and the joiner's copies answer after the old members are
// killed one by one... (here: after the primary of a key is killed, its
// promoted backup serves the key's last value).
func TestReplicationPromotedBackupServesLastValue(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 2*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	victim := c.Members[(leader.Index+1)%3]
	key := keyLedBy(tbl, "orders", victim.Name)
	for i := range 50 {
		if _, err := put(ctx, c.Members[leader.Index], "orders", key, fmt.Sprintf("v%d", i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	c.Kill(victim.Index)
	c.WaitFor(convergeTimeout, "the key served by the promoted backup", func() error {
		got, ok, err := get(ctx, leader, "orders", key)
		if err != nil {
			return err
		}
		if !ok || got != "v49" {
			t.Fatalf("after failover %s = %q (found %v), want v49", key, got, ok)
		}
		return nil
	})
	p, _ := leader.Node().Routing().Locate("orders", key)
	if p.State != metadata.PartitionActive || p.Primary == victim.Name || !p.Promoted {
		t.Fatalf("partition after failover: %+v", p)
	}
}

// TestReplicationCutOffPrimaryNeitherAcksNorServesStale: a primary cut off
// from everyone (the minority side of a partition) acknowledges no write
// from the moment it is cut off, and once the majority has promoted its
// backup and taken a newer write, it never serves the old value: its lease
// ran out before the leader failed it over. After the heal it rejoins
// empty and serves the new value.
func TestReplicationCutOffPrimaryNeitherAcksNorServesStale(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	victim := c.Members[(leader.Index+1)%3]
	key := keyLedBy(tbl, "orders", victim.Name)
	if _, err := put(ctx, leader, "orders", key, "old"); err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(string(victim.Name))

	// The cut-off member keeps trying to write and read, through itself.
	var (
		stop     atomic.Bool
		newAcked atomic.Bool
		wg       sync.WaitGroup
		acks     atomic.Int64
		stale    atomic.Int64
		reads    atomic.Int64
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := put(wctx, victim, "orders", fmt.Sprintf("minority-%d", i), "x")
			wcancel()
			if err == nil {
				acks.Add(1)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			after := newAcked.Load() // read only counts as stale if the new value was acked before it began
			got, ok, err := get(ctx, victim, "orders", key)
			if err == nil && ok && got == "old" && after {
				stale.Add(1)
			}
			if err == nil {
				reads.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// The majority fails the victim over and takes a newer write.
	c.WaitFor(convergeTimeout, "a new value written on the majority side", func() error {
		_, err := put(ctx, leader, "orders", key, "new")
		return err
	})
	newAcked.Store(true)
	// Keep the cut-off member busy for a while after that.
	deadline := time.Now().Add(2 * time.Second)
	c.WaitFor(convergeTimeout, "reads on the cut-off member to run", func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("still observing")
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	if n := acks.Load(); n > 0 {
		t.Errorf("the cut-off member acknowledged %d writes", n)
	}
	if n := stale.Load(); n > 0 {
		t.Errorf("the cut-off member served the old value %d times after the new one was acknowledged", n)
	}
	c.Net.Heal()
	c.WaitFor(convergeTimeout, "the healed member serves the new value", func() error {
		got, ok, err := get(ctx, victim, "orders", key)
		if err != nil {
			return err
		}
		if !ok || got != "new" {
			t.Fatalf("after heal %s via %s = %q (found %v), want new", key, victim.Name, got, ok)
		}
		return nil
	})
	t.Logf("cut-off member: %d successful reads (all before the failover), 0 acks", reads.Load())
}

// TestReplicationEveryReplicaGoneIsUnavailable: when both replicas of a
// written partition die at once, the partition answers 503 unavailable
// (never served empty), while partitions with a surviving in-sync replica
// keep their data.
func TestReplicationEveryReplicaGoneIsUnavailable(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{Replicas: 2, RaftVoters: 5})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	// Two members other than the leader, and a key on a partition held by
	// exactly those two.
	var a, b *testcluster.Member
	var lostKey string
	for i := 0; lostKey == ""; i++ {
		key := fmt.Sprintf("key%d", i)
		p, _ := tbl.Locate("orders", key)
		if p.Primary == leader.Name || len(p.Backups) != 1 || p.Backups[0] == leader.Name {
			continue
		}
		lostKey = key
		for _, m := range c.Members {
			switch m.Name {
			case p.Primary:
				a = m
			case p.Backups[0]:
				b = m
			}
		}
	}
	// Keys everywhere, written before the kill.
	const n = 300
	for i := range n {
		if _, err := put(ctx, leader, "orders", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	if _, err := put(ctx, leader, "orders", lostKey, "precious"); err != nil {
		t.Fatal(err)
	}
	c.Kill(a.Index)
	c.Kill(b.Index)
	c.WaitFor(convergeTimeout, "both failed", func() error {
		tb := leader.Node().Routing()
		for _, m := range []*testcluster.Member{a, b} {
			if mm, _ := tb.Member(m.Name); mm.State != metadata.MemberFailed {
				return fmt.Errorf("%s is %s", m.Name, mm.State)
			}
		}
		return nil
	})
	lostP, _ := leader.Node().Routing().Locate("orders", lostKey)
	c.WaitFor(convergeTimeout, "the partition held by both unavailable", func() error {
		p, _ := leader.Node().Routing().Partition(lostP.ID)
		if p.State != metadata.PartitionUnavailable {
			return fmt.Errorf("partition %d is %s", p.ID, p.State)
		}
		return nil
	})
	if _, _, err := get(ctx, leader, "orders", lostKey); !errors.Is(err, dataplane.ErrUnavailable) {
		t.Fatalf("get of a key whose every replica died = %v, want ErrUnavailable", err)
	}
	if _, err := put(ctx, leader, "orders", lostKey, "again"); !errors.Is(err, dataplane.ErrUnavailable) {
		t.Fatalf("put to a partition whose every replica died = %v, want ErrUnavailable", err)
	}
	// Every other key: either its partition lost both replicas too (then
	// unavailable) or it reads its value.
	tb := leader.Node().Routing()
	lost := 0
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		p, _ := tb.Locate("orders", key)
		got, ok, err := get(ctx, leader, "orders", key)
		if p.State == metadata.PartitionUnavailable {
			lost++
			if !errors.Is(err, dataplane.ErrUnavailable) {
				t.Fatalf("get %s on unavailable partition %d = %q %v %v", key, p.ID, got, ok, err)
			}
			continue
		}
		if err != nil || !ok || got != fmt.Sprintf("v%d", i) {
			t.Fatalf("get %s (partition %d, %s) = %q (found %v, err %v)", key, p.ID, p.State, got, ok, err)
		}
	}
	t.Logf("%d of %d keys on partitions that lost both replicas; the rest intact", lost, n)
}

// TestReplicationRestartedMemberIsRefilled: a member killed and restarted
// comes back empty with a new incarnation; it is never counted in sync for
// what it lost, it is filled from the primaries, and once it is in sync
// the other follower can die without losing a key.
func TestReplicationRestartedMemberIsRefilled(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	x := c.Members[(leader.Index+1)%3]
	y := c.Members[(leader.Index+2)%3]
	const n = 400
	for i := range n {
		if _, err := put(ctx, leader, "orders", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	oldInc := x.Node().Incarnation()
	c.Kill(x.Index)
	c.WaitFor(convergeTimeout, "x failed over", func() error {
		m, _ := leader.Node().Routing().Member(x.Name)
		if m.State != metadata.MemberFailed {
			return fmt.Errorf("x is %s", m.State)
		}
		return nil
	})
	c.Start(x.Index)
	c.WaitFor(convergeTimeout, "x back, refilled and in sync everywhere", func() error {
		tbl := leader.Node().Routing()
		m, _ := tbl.Member(x.Name)
		if m.State != metadata.MemberAlive || m.Incarnation == oldInc {
			return fmt.Errorf("x is %s at incarnation %s", m.State, m.Incarnation)
		}
		return inSyncEverywhere(tbl, 3)
	})
	c.Kill(y.Index)
	c.WaitFor(convergeTimeout, "y failed over", func() error {
		tbl := leader.Node().Routing()
		if m, _ := tbl.Member(y.Name); m.State != metadata.MemberFailed {
			return fmt.Errorf("y is %s", m.State)
		}
		return allActive(tbl)
	})
	for i := range n {
		got, ok, err := get(ctx, x, "orders", fmt.Sprintf("k%d", i))
		if err != nil || !ok || got != fmt.Sprintf("v%d", i) {
			t.Fatalf("after restart of x and death of y: k%d = %q (found %v, err %v)", i, got, ok, err)
		}
	}
}

// TestReplicationUnreachableBackupIsRemovedNotSkipped: when a primary
// cannot reach one of its in-sync backups (that backup is otherwise
// healthy), a write completes only after the leader committed that backup
// out of the in-sync set; when the primary then dies, the stale backup is
// not promoted: the partition is unavailable rather than missing the
// write.
func TestReplicationUnreachableBackupIsRemovedNotSkipped(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	// A partition whose primary and backup are both followers.
	var key string
	var primary, backup *testcluster.Member
	for i := 0; key == ""; i++ {
		k := fmt.Sprintf("key%d", i)
		p, _ := tbl.Locate("orders", k)
		if p.Primary == leader.Name || p.Backups[0] == leader.Name {
			continue
		}
		key = k
		for _, m := range c.Members {
			switch m.Name {
			case p.Primary:
				primary = m
			case p.Backups[0]:
				backup = m
			}
		}
	}
	if _, err := put(ctx, leader, "orders", key, "first"); err != nil {
		t.Fatal(err)
	}
	c.Net.Cut(string(primary.Name), string(backup.Name))
	if _, err := put(ctx, leader, "orders", key, "second"); err != nil {
		t.Fatalf("write with an unreachable backup: %v", err)
	}
	// Acknowledged, so the backup must be out of the in-sync set in the
	// committed table every member reads.
	p, _ := leader.Node().Routing().Locate("orders", key)
	if p.InSync(backup.Name) {
		t.Fatalf("write acknowledged while the unreachable backup %s is still in sync: %+v", backup.Name, p)
	}
	c.Kill(primary.Index)
	c.WaitFor(convergeTimeout, "the primary failed", func() error {
		if m, _ := leader.Node().Routing().Member(primary.Name); m.State != metadata.MemberFailed {
			return fmt.Errorf("primary is %s", m.State)
		}
		return nil
	})
	got, ok, err := get(ctx, leader, "orders", key)
	switch {
	case errors.Is(err, dataplane.ErrUnavailable):
		// The only in-sync copy died: correct.
	case err == nil && ok && got == "second":
		// A copy with the write was promoted: also correct.
	default:
		t.Fatalf("after the primary died: %s = %q (found %v, err %v); want unavailable or \"second\"", key, got, ok, err)
	}
}

// TestReplicationTwoMembersCutOffTogether: with replicas=3 on five
// members, cutting two members off at once (a 2|3 split) leaves every
// partition served by the majority with all its data: both minority
// members fail in one entry, so no partition is promoted to a member that
// is itself about to fail (which would reset the majority's copies to
// refill from it). Regression test for a Jepsen harness finding.
func TestReplicationTwoMembersCutOffTogether(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{Replicas: 3, RaftVoters: 5})
	c.StartAll()
	c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	c.WaitFor(convergeTimeout, "backups in sync", func() error {
		return inSyncEverywhere(leader.Node().Routing(), 5)
	})
	const n = 600
	for i := range n {
		if _, err := put(ctx, leader, "orders", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	var majority, minority []string
	for _, m := range c.Members {
		if m == leader || len(majority) < 3 && len(minority) == 2 {
			majority = append(majority, string(m.Name))
		} else if len(minority) < 2 {
			minority = append(minority, string(m.Name))
		} else {
			majority = append(majority, string(m.Name))
		}
	}
	c.Net.Partition(majority, minority)
	c.WaitFor(convergeTimeout, "the minority failed", func() error {
		tbl := leader.Node().Routing()
		for _, id := range minority {
			if m, _ := tbl.Member(metadata.NodeID(id)); m.State != metadata.MemberFailed {
				return fmt.Errorf("%s is %s", id, m.State)
			}
		}
		return nil
	})
	if err := allActive(leader.Node().Routing()); err != nil {
		t.Fatalf("after a 2|3 split with replicas=3: %v", err)
	}
	for i := range n {
		got, ok, err := get(ctx, leader, "orders", fmt.Sprintf("k%d", i))
		if err != nil || !ok || got != fmt.Sprintf("v%d", i) {
			t.Fatalf("after the split: k%d = %q (found %v, err %v)", i, got, ok, err)
		}
	}
}
