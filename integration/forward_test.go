package integration

import (
	"context"
	"testing"
	"time"

	"github.com/olric-raft/olric-raft/internal/testcluster"
)

// stalledReadDeadline bounds the read in
// TestForwardedReadGivesUpOnStalledPrimary: below the transport's 10 s
// write timeout (after which the stalled primary's connection would break
// on its own), well above a failover in the dev timing (lease 1.5 s +
// 200 ms drift, then a Raft commit).
const stalledReadDeadline = 8 * time.Second

// TestForwardedReadGivesUpOnStalledPrimary: a member forwards a read to
// the key's primary, which then stops answering (everything it sends is
// held back, as if it were paused: its lease renewals too). Once the
// leader fails the partition over, the forwarder gives the stuck call up
// and reads from the promoted backup — it does not wait for the stalled
// connection to time out.
func TestForwardedReadGivesUpOnStalledPrimary(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Replicas: 2})
	c.StartAll()
	tbl := c.WaitConverged(convergeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*convergeTimeout)
	defer cancel()
	leader := c.Leader(convergeTimeout)
	victim := c.Members[(leader.Index+1)%3]
	forwarder := c.Members[(leader.Index+2)%3]
	key := keyLedBy(tbl, "orders", victim.Name)
	if _, err := put(ctx, leader, "orders", key, "v1"); err != nil {
		t.Fatal(err)
	}
	// Warm the forwarder's connection to the victim.
	if got, ok, err := get(ctx, forwarder, "orders", key); err != nil || !ok || got != "v1" {
		t.Fatalf("read before the stall: %q %v %v", got, ok, err)
	}

	c.Net.SetDelay(string(victim.Name), "", time.Hour)
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, stalledReadDeadline)
	defer rcancel()
	got, ok, err := get(rctx, forwarder, "orders", key)
	if err != nil {
		t.Fatalf("read through %s of a key led by the stalled %s: %v (after %v)", forwarder.Name, victim.Name, err, time.Since(start))
	}
	if !ok || got != "v1" {
		t.Fatalf("read after failover = %q (found %v), want v1", got, ok)
	}
	p, _ := forwarder.Node().Routing().Locate("orders", key)
	if p.Primary == victim.Name {
		t.Fatalf("the read was answered while %s still led the partition: %+v", victim.Name, p)
	}
	t.Logf("read answered by the promoted backup %v after the stall began", time.Since(start).Round(time.Millisecond))
	c.Net.Heal()
}
