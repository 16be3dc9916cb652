package olricclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/olric-data/olric"
)

// newClusterClient connects Olric's ClusterClient to addrs, retrying
// until the cluster answers (it fetches CLUSTER.MEMBERS and
// CLUSTER.ROUTINGTABLE on creation); it is closed at the end of the test.
func newClusterClient(t *testing.T, addrs []string, opts ...olric.ClusterClientOption) *olric.ClusterClient {
	t.Helper()
	opts = append([]olric.ClusterClientOption{olric.WithLogger(testLogger(t))}, opts...)
	var cl *olric.ClusterClient
	err := poll(60*time.Second, func() error {
		c, err := olric.NewClusterClient(addrs, opts...)
		if err != nil {
			return err
		}
		cl = c
		return nil
	})
	if err != nil {
		t.Fatalf("NewClusterClient(%v): %v", addrs, err)
	}
	t.Cleanup(func() {
		if err := cl.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return cl
}

// TestOlricClientSingleMember drives one `olric-raft server --dev` with
// every DMap and cluster call of Olric's ClusterClient.
func TestOlricClientSingleMember(t *testing.T) {
	s := newServer(t, "solo")
	s.start(t, "--dev")
	if err := poll(60*time.Second, s.ready); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := newClusterClient(t, []string{s.resp})
	dm, err := cl.NewDMap("olric-test")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("errors before Olric registers its prefixes", func(t *testing.T) {
		if registered {
			t.Skip("another test registered Olric's error prefixes already")
		}
		// Olric's own bug (see registerOlricErrors): the error is the
		// sentinel's text, not the sentinel.
		_, err := dm.Get(ctx, "missing")
		if err == nil || err.Error() != olric.ErrKeyNotFound.Error() || errors.Is(err, olric.ErrKeyNotFound) {
			t.Errorf("Get(missing) = %v", err)
		}
		mustNil(t, dm.Put(ctx, "nx", "v"))
		err = dm.Put(ctx, "nx", "v", olric.NX())
		if err == nil || err.Error() != olric.ErrKeyFound.Error() {
			t.Errorf("Put NX = %v", err)
		}
	})
	registerOlricErrors(t)

	t.Run("Put and Get", func(t *testing.T) {
		// The client encodes values as Redis does (strings as is, numbers
		// in decimal) and decodes what DM.GET ... RW answers.
		mustNil(t, dm.Put(ctx, "str", "hello"))
		mustNil(t, dm.Put(ctx, "int", 42))
		mustNil(t, dm.Put(ctx, "float", 2.5))
		mustNil(t, dm.Put(ctx, "bytes", []byte{0, 1, 2, 255}))
		mustNil(t, dm.Put(ctx, "bool", true))
		gr := must(dm.Get(ctx, "str"))
		if v := must(gr.String()); v != "hello" {
			t.Errorf("String() = %q", v)
		}
		if gr.TTL() != 0 {
			t.Errorf("TTL() = %d for a key without expiry", gr.TTL())
		}
		if v := must(must(dm.Get(ctx, "int")).Int()); v != 42 {
			t.Errorf("Int() = %d", v)
		}
		if v := must(must(dm.Get(ctx, "float")).Float64()); v != 2.5 {
			t.Errorf("Float64() = %v", v)
		}
		if v := must(must(dm.Get(ctx, "bytes")).Byte()); !slices.Equal(v, []byte{0, 1, 2, 255}) {
			t.Errorf("Byte() = %v", v)
		}
		if v := must(must(dm.Get(ctx, "bool")).Bool()); !v {
			t.Errorf("Bool() = %v", v)
		}
		var sv string
		mustNil(t, must(dm.Get(ctx, "str")).Scan(&sv))
		if sv != "hello" {
			t.Errorf("Scan = %q", sv)
		}
		// A key longer than Olric's 255-byte key limit still reads back.
		long := strings.Repeat("k", 300)
		mustNil(t, dm.Put(ctx, long, "long key"))
		if v := must(must(dm.Get(ctx, long)).String()); v != "long key" {
			t.Errorf("long key: %q", v)
		}
		_, err := dm.Get(ctx, "missing")
		wantErr(t, err, olric.ErrKeyNotFound)
	})

	t.Run("Put options", func(t *testing.T) {
		mustNil(t, dm.Put(ctx, "ex", "v", olric.EX(time.Hour)))
		ttl := must(dm.Get(ctx, "ex")).TTL() // expiry, unix milliseconds
		if d := time.Until(time.UnixMilli(ttl)); d < 59*time.Minute || d > time.Hour+time.Minute {
			t.Errorf("EX(1h): TTL() %d is %v from now", ttl, d)
		}
		mustNil(t, dm.Put(ctx, "ex-frac", "v", olric.EX(1500*time.Millisecond)))
		mustNil(t, dm.Put(ctx, "px", "v", olric.PX(300*time.Millisecond)))
		at := time.Now().Add(time.Hour)
		mustNil(t, dm.Put(ctx, "exat", "v", olric.EXAT(time.Duration(at.UnixNano()))))
		mustNil(t, dm.Put(ctx, "pxat", "v", olric.PXAT(time.Duration(at.UnixNano()))))
		for _, k := range []string{"exat", "pxat"} {
			ttl := must(dm.Get(ctx, k)).TTL()
			if d := time.UnixMilli(ttl).Sub(at); d < -time.Second || d > time.Second {
				t.Errorf("%s: expiry %v, want %v", k, time.UnixMilli(ttl), at)
			}
		}
		wantGone(t, dm, "px", 10*time.Second)
		wantGone(t, dm, "ex-frac", 10*time.Second)

		wantErr(t, dm.Put(ctx, "str", "again", olric.NX()), olric.ErrKeyFound)
		mustNil(t, dm.Put(ctx, "nx-new", "v", olric.NX()))
		wantErr(t, dm.Put(ctx, "xx-missing", "v", olric.XX()), olric.ErrKeyNotFound)
		mustNil(t, dm.Put(ctx, "str", "changed", olric.XX()))
		if v := must(must(dm.Get(ctx, "str")).String()); v != "changed" {
			t.Errorf("after XX: %q", v)
		}
		mustNil(t, dm.Put(ctx, "nx-ex", "v", olric.NX(), olric.EX(time.Hour)))
	})

	t.Run("Delete", func(t *testing.T) {
		mustNil(t, dm.Put(ctx, "d1", "v"))
		mustNil(t, dm.Put(ctx, "d2", "v"))
		if n := must(dm.Delete(ctx, "d1", "d2", "d-missing")); n != 2 {
			t.Errorf("Delete = %d, want 2", n)
		}
		if n := must(dm.Delete(ctx, "d1")); n != 0 {
			t.Errorf("Delete again = %d", n)
		}
		_, err := dm.Get(ctx, "d1")
		wantErr(t, err, olric.ErrKeyNotFound)
	})

	t.Run("Expire", func(t *testing.T) {
		mustNil(t, dm.Put(ctx, "e", "v"))
		mustNil(t, dm.Expire(ctx, "e", time.Hour))
		if ttl := must(dm.Get(ctx, "e")).TTL(); ttl == 0 {
			t.Error("Expire did not set an expiry")
		}
		mustNil(t, dm.Expire(ctx, "e", 300*time.Millisecond))
		wantGone(t, dm, "e", 10*time.Second)
		wantErr(t, dm.Expire(ctx, "e-missing", time.Second), olric.ErrKeyNotFound)
	})

	t.Run("Incr Decr IncrByFloat", func(t *testing.T) {
		if n := must(dm.Incr(ctx, "counter", 5)); n != 5 {
			t.Errorf("Incr = %d", n)
		}
		if n := must(dm.Incr(ctx, "counter", 10)); n != 15 {
			t.Errorf("Incr = %d", n)
		}
		if n := must(dm.Decr(ctx, "counter", 20)); n != -5 {
			t.Errorf("Decr = %d", n)
		}
		if n := must(must(dm.Get(ctx, "counter")).Int()); n != -5 {
			t.Errorf("Get after Decr = %d", n)
		}
		if f := must(dm.IncrByFloat(ctx, "fl", 1.5)); f != 1.5 {
			t.Errorf("IncrByFloat = %v", f)
		}
		if f := must(dm.IncrByFloat(ctx, "fl", -0.25)); f != 1.25 {
			t.Errorf("IncrByFloat = %v", f)
		}
		if f := must(must(dm.Get(ctx, "fl")).Float64()); f != 1.25 {
			t.Errorf("Get after IncrByFloat = %v", f)
		}
		mustNil(t, dm.Put(ctx, "not-a-number", "abc"))
		if _, err := dm.Incr(ctx, "not-a-number", 1); err == nil {
			t.Error("Incr of a string succeeded")
		}
	})

	t.Run("GetPut", func(t *testing.T) {
		gr, err := dm.GetPut(ctx, "gp", "first")
		if err != nil || gr != nil {
			t.Fatalf("GetPut on a missing key = %v, %v; want nil, nil", gr, err)
		}
		gr = must(dm.GetPut(ctx, "gp", "second"))
		if v := must(gr.String()); v != "first" {
			t.Errorf("previous = %q", v)
		}
		if v := must(must(dm.Get(ctx, "gp")).String()); v != "second" {
			t.Errorf("now = %q", v)
		}
	})

	t.Run("Lock", func(t *testing.T) {
		lc := must(dm.Lock(ctx, "lk", time.Second))
		// Held: a second Lock waits up to its deadline, then fails.
		start := time.Now()
		_, err := dm.Lock(ctx, "lk", 200*time.Millisecond)
		wantErr(t, err, olric.ErrLockNotAcquired)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("Lock gave up after %v, want about its 200ms deadline", d)
		}
		// Olric's Lock without a timeout does not expire after its
		// deadline: the lock outlives the 1s wait.
		time.Sleep(1200 * time.Millisecond)
		_, err = dm.Lock(ctx, "lk", 0)
		wantErr(t, err, olric.ErrLockNotAcquired)
		mustNil(t, lc.Lease(ctx, 10*time.Second))
		mustNil(t, lc.Unlock(ctx))
		wantErr(t, lc.Unlock(ctx), olric.ErrNoSuchLock)
		wantErr(t, lc.Lease(ctx, time.Second), olric.ErrNoSuchLock)
		// Free again.
		lc2 := must(dm.Lock(ctx, "lk", 0))
		mustNil(t, lc2.Unlock(ctx))
	})

	t.Run("LockWithTimeout", func(t *testing.T) {
		lc := must(dm.LockWithTimeout(ctx, "lt", 300*time.Millisecond, time.Second))
		_, err := dm.LockWithTimeout(ctx, "lt", time.Second, 0)
		wantErr(t, err, olric.ErrLockNotAcquired)
		// The lease ends after 300ms; waiting up to 2s acquires it.
		lc2 := must(dm.LockWithTimeout(ctx, "lt", time.Second, 2*time.Second))
		wantErr(t, lc.Unlock(ctx), olric.ErrNoSuchLock)
		// Lease with a fraction of a second extends the lock.
		mustNil(t, lc2.Lease(ctx, 1500*time.Millisecond))
		mustNil(t, lc2.Unlock(ctx))
	})

	t.Run("Scan", func(t *testing.T) {
		sdm := must(cl.NewDMap("olric-scan"))
		var want []string
		for i := range 120 {
			k := fmt.Sprintf("scan-%03d", i)
			want = append(want, k)
			mustNil(t, sdm.Put(ctx, k, i))
		}
		for i := range 15 {
			mustNil(t, sdm.Put(ctx, fmt.Sprintf("other-%d", i), i))
		}
		all := scanKeys(t, sdm)
		if len(all) != 135 {
			t.Errorf("Scan: %d keys, want 135", len(all))
		}
		// Olric's MATCH is a regular expression.
		got := scanKeys(t, sdm, olric.Match("^scan-"), olric.Count(7))
		if !slices.Equal(got, want) {
			t.Errorf("Scan(Match ^scan-): %d keys %v..., want %d", len(got), got[:min(5, len(got))], len(want))
		}
		if got := scanKeys(t, sdm, olric.Match(`^scan-0[0-4]5$`)); !slices.Equal(got, []string{"scan-005", "scan-015", "scan-025", "scan-035", "scan-045"}) {
			t.Errorf("Scan(Match regexp) = %v", got)
		}
		if got := scanKeys(t, sdm, olric.Match("nothing-matches")); len(got) != 0 {
			t.Errorf("Scan(no match) = %v", got)
		}

		t.Run("Destroy", func(t *testing.T) {
			mustNil(t, sdm.Destroy(ctx))
			if got := scanKeys(t, sdm); len(got) != 0 {
				t.Errorf("after Destroy: %d keys", len(got))
			}
			_, err := sdm.Get(ctx, "scan-001")
			wantErr(t, err, olric.ErrKeyNotFound)
		})
	})

	t.Run("Pipeline", func(t *testing.T) {
		pdm := must(cl.NewDMap("olric-pipe"))
		p := must(pdm.Pipeline())
		defer p.Close()
		var puts []*olric.FuturePut
		for i := range 20 {
			puts = append(puts, must(p.Put(ctx, fmt.Sprint("p", i), i)))
		}
		incr := must(p.Incr(ctx, "pc", 3))
		mustNil(t, p.Exec(ctx))
		for i, f := range puts {
			if err := f.Result(); err != nil {
				t.Errorf("put %d: %v", i, err)
			}
		}
		if n := must(incr.Result()); n != 3 {
			t.Errorf("pipelined Incr = %d", n)
		}
		p2 := must(pdm.Pipeline())
		defer p2.Close()
		get := p2.Get(ctx, "p7")
		del := p2.Delete(ctx, "p8")
		mustNil(t, p2.Exec(ctx))
		if v := must(must(get.Result()).Int()); v != 7 {
			t.Errorf("pipelined Get = %d", v)
		}
		if n := must(del.Result()); n != 1 {
			t.Errorf("pipelined Delete = %d", n)
		}
	})

	t.Run("cluster calls", func(t *testing.T) {
		if v := must(cl.Ping(ctx, s.resp, "")); v != "PONG" {
			t.Errorf("Ping = %q", v)
		}
		if v := must(cl.Ping(ctx, s.resp, "hello")); v != "hello" {
			t.Errorf("Ping(hello) = %q", v)
		}
		ms := must(cl.Members(ctx))
		if len(ms) != 1 || ms[0].Name != s.resp || !ms[0].Coordinator || ms[0].Birthdate <= 0 || ms[0].ID == 0 {
			t.Errorf("Members = %+v", ms)
		}
		rt := must(cl.RoutingTable(ctx))
		if len(rt) == 0 {
			t.Fatal("empty routing table")
		}
		for id, r := range rt {
			if len(r.PrimaryOwners) != 1 || r.PrimaryOwners[0] != s.resp || len(r.ReplicaOwners) != 0 {
				t.Fatalf("partition %d: %+v", id, r)
			}
		}
		st := must(cl.Stats(ctx, s.resp))
		if st.Member.Name != s.resp || st.ClusterCoordinator.Name != s.resp || len(st.ClusterMembers) != 1 ||
			len(st.Partitions) != len(rt) || st.Runtime != nil {
			t.Errorf("Stats: member %+v, coordinator %+v, %d members, %d partitions, runtime %v",
				st.Member, st.ClusterCoordinator, len(st.ClusterMembers), len(st.Partitions), st.Runtime != nil)
		}
		st = must(cl.Stats(ctx, s.resp, olric.CollectRuntime()))
		if st.Runtime == nil || st.Runtime.NumGoroutine == 0 || st.Runtime.MemStats.HeapAlloc == 0 {
			t.Errorf("Stats(CollectRuntime).Runtime = %+v", st.Runtime)
		}
		mustNil(t, cl.RefreshMetadata(ctx))
	})

	t.Run("unsupported: pub/sub", func(t *testing.T) {
		// DTopic and Pub/Sub are not part of olric-raft: the server answers
		// an unknown-command error.
		ps := must(cl.NewPubSub(olric.ToAddress(s.resp)))
		_, err := ps.Publish(ctx, "ch", "msg")
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("Publish: %v, want an unknown command error", err)
		}
		sub := ps.Subscribe(ctx, "ch")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("Subscribe: %v, want an unknown command error", err)
		}
	})
}

// scanKeys runs the client's Scan to the end and returns the keys sorted.
func scanKeys(t *testing.T, dm olric.DMap, opts ...olric.ScanOption) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it, err := dm.Scan(ctx, opts...)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	defer it.Close()
	var keys []string
	for it.Next() {
		keys = append(keys, it.Key())
	}
	if ctx.Err() != nil {
		t.Fatal("Scan did not finish within a minute")
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// wantGone waits until key is gone (expired).
func wantGone(t *testing.T, dm olric.DMap, key string, timeout time.Duration) {
	t.Helper()
	err := poll(timeout, func() error {
		_, err := dm.Get(context.Background(), key)
		if errors.Is(err, olric.ErrKeyNotFound) {
			return nil
		}
		return fmt.Errorf("%s still readable (err %v)", key, err)
	})
	if err != nil {
		t.Error(err)
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("error %v, want %v", err, target)
	}
}

// must returns v or panics on err (failing the test run with a stack).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
