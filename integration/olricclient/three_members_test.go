package olricclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/olric-data/olric"
	"github.com/redis/go-redis/v9"
)

// cluster3 starts three members with --bootstrap-expect 3 --replicas 2
// and waits until each is ready and every partition has a primary and a
// backup on one routing version everywhere.
func cluster3(t *testing.T) []*server {
	t.Helper()
	var ss []*server
	for _, name := range []string{"a", "b", "c"} {
		ss = append(ss, newServer(t, name))
	}
	for i, s := range ss {
		var join []string
		for j, o := range ss {
			if j != i {
				join = append(join, o.gossip)
			}
		}
		s.start(t, "--bootstrap-expect", "3", "--replicas", "2", "--timing", "dev",
			"--join", strings.Join(join, ","))
	}
	err := poll(90*time.Second, func() error {
		var version uint64
		for _, s := range ss {
			if err := s.ready(); err != nil {
				return err
			}
			var rv routingView
			if _, err := getJSON(s.http, "/v1/cluster/routing", &rv); err != nil {
				return err
			}
			if version != 0 && rv.Version != version {
				return fmt.Errorf("routing versions differ: %d and %d", version, rv.Version)
			}
			version = rv.Version
			for _, p := range rv.Partitions {
				if p.Primary == "" || len(p.Backups) != 1 || p.State != "active" {
					return fmt.Errorf("%s: partition %d not settled: %+v", s.name, p.ID, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// respAddrs maps member ids to RESP addresses (GET /v1/cluster/members).
func respAddrs(t *testing.T, s *server) map[string]string {
	t.Helper()
	var mv membersView
	if _, err := getJSON(s.http, "/v1/cluster/members", &mv); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range mv.Members {
		out[m.ID] = m.RESPAddr
	}
	return out
}

func locate(s *server, dmap, key string) (locateView, error) {
	var lv locateView
	code, err := getJSON(s.http, "/v1/cluster/locate?dmap="+url.QueryEscape(dmap)+"&key="+url.QueryEscape(key), &lv)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("locate %s/%s: %d", dmap, key, code)
	}
	return lv, err
}

func totalForwarded(t *testing.T, ss []*server) float64 {
	t.Helper()
	var sum float64
	for _, s := range ss {
		if s.exited() {
			continue
		}
		n, err := forwarded(s.http)
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

// TestOlricClientThreeMembers: Olric's ClusterClient against three
// members routes by CLUSTER.ROUTINGTABLE; what it writes is readable over
// the HTTP API and over RESP from other members; with its default hasher
// (olric-raft places keys as Olric does) it sends every request to the
// key's primary; after a member is killed it recovers.
func TestOlricClientThreeMembers(t *testing.T) {
	registerOlricErrors(t)
	ss := cluster3(t)
	a, b, c := ss[0], ss[1], ss[2]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const dmapName = "olric-3"
	ids := respAddrs(t, a)

	cl := newClusterClient(t, []string{a.resp}, olric.WithRoutingTableFetchInterval(200*time.Millisecond))
	dm := must(cl.NewDMap(dmapName))

	t.Run("members and routing table", func(t *testing.T) {
		ms := must(cl.Members(ctx))
		var names []string
		leaders := 0
		for _, m := range ms {
			names = append(names, m.Name)
			if m.Coordinator {
				leaders++
			}
		}
		slices.Sort(names)
		want := []string{a.resp, b.resp, c.resp}
		slices.Sort(want)
		if !slices.Equal(names, want) || leaders != 1 {
			t.Fatalf("Members = %+v, want names %v and one coordinator", ms, want)
		}
		rt := must(cl.RoutingTable(ctx))
		var rv routingView
		if _, err := getJSON(b.http, "/v1/cluster/routing", &rv); err != nil {
			t.Fatal(err)
		}
		if len(rt) != len(rv.Partitions) {
			t.Fatalf("%d routes, %d partitions", len(rt), len(rv.Partitions))
		}
		for _, p := range rv.Partitions {
			r := rt[uint64(p.ID)]
			if len(r.PrimaryOwners) != 1 || r.PrimaryOwners[0] != ids[p.Primary] ||
				len(r.ReplicaOwners) != 1 || r.ReplicaOwners[0] != ids[p.Backups[0]] {
				t.Fatalf("partition %d: route %+v, want primary %s (%s), backup %s", p.ID, r, p.Primary, ids[p.Primary], ids[p.Backups[0]])
			}
		}
	})

	const n = 150
	keyOf := func(i int) string { return fmt.Sprint("key-", i) }
	valueOf := func(i int) string { return fmt.Sprint("value-", i) }

	t.Run("writes reach the primary directly", func(t *testing.T) {
		before := totalForwarded(t, ss)
		for i := range n {
			mustNil(t, dm.Put(ctx, keyOf(i), valueOf(i)))
		}
		for i := range n {
			if v := must(must(dm.Get(ctx, keyOf(i))).String()); v != valueOf(i) {
				t.Fatalf("%s = %q", keyOf(i), v)
			}
		}
		if d := totalForwarded(t, ss) - before; d != 0 {
			t.Errorf("%v of %d requests were forwarded: the client did not dial the primaries", d, 2*n)
		}
		// The address the client dials for each key is its primary's.
		rt := must(cl.RoutingTable(ctx))
		for i := range 30 {
			lv, err := locate(c, dmapName, keyOf(i))
			mustNil(t, err)
			h := xxhash.Sum64String(dmapName + keyOf(i)) // Olric's default hasher
			r := rt[h%uint64(len(rt))]
			if uint64(lv.Partition) != h%uint64(len(rt)) || r.PrimaryOwners[len(r.PrimaryOwners)-1] != ids[lv.Primary] {
				t.Fatalf("%s: client partition %d dials %v; locate says partition %d on %s (%s)",
					keyOf(i), h%uint64(len(rt)), r.PrimaryOwners, lv.Partition, lv.Primary, ids[lv.Primary])
			}
		}
	})

	t.Run("readable through other front ends", func(t *testing.T) {
		for i := range n {
			v, code, err := httpValue(b.http, dmapName, keyOf(i))
			if err != nil || code != http.StatusOK || string(v) != valueOf(i) {
				t.Fatalf("HTTP GET %s on b: %q %d %v", keyOf(i), v, code, err)
			}
		}
		rc := redis.NewClient(&redis.Options{Addr: c.resp, Protocol: 2, DisableIdentity: true})
		defer rc.Close()
		for i := range n {
			v, err := rc.Do(ctx, "DM.GET", dmapName, keyOf(i)).Text()
			if err != nil || v != valueOf(i) {
				t.Fatalf("DM.GET %s on c: %q %v", keyOf(i), v, err)
			}
		}
		if got := scanKeys(t, dm); len(got) != n {
			t.Errorf("Scan over three members: %d keys, want %d", len(got), n)
		}
		if got := scanKeys(t, dm, olric.Match("^key-1[0-4]$")); !slices.Equal(got, []string{"key-10", "key-11", "key-12", "key-13", "key-14"}) {
			t.Errorf("Scan(Match) = %v", got)
		}
	})

	t.Run("failover after SIGKILL", func(t *testing.T) {
		// Kill c; the keys whose primary was c fail over to their backups.
		var onC []int
		for i := range n {
			lv, err := locate(a, dmapName, keyOf(i))
			mustNil(t, err)
			if lv.Primary == "c" {
				onC = append(onC, i)
			}
		}
		if len(onC) == 0 {
			t.Fatal("no key has its primary on c")
		}
		killed := time.Now()
		c.kill()
		// Without any call from us, the client's periodic routing-table
		// fetch (every 200ms) lets it read and write those keys again.
		err := poll(60*time.Second, func() error {
			for _, i := range onC {
				gr, err := dm.Get(ctx, keyOf(i))
				if err != nil {
					return fmt.Errorf("Get %s: %w", keyOf(i), err)
				}
				if v, _ := gr.String(); v != valueOf(i) && v != valueOf(i)+"-new" {
					return fmt.Errorf("Get %s = %q after failover", keyOf(i), v)
				}
				if err := dm.Put(ctx, keyOf(i), valueOf(i)+"-new"); err != nil {
					return fmt.Errorf("Put %s: %w", keyOf(i), err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the client read and wrote the %d keys whose primary was c %v after the kill", len(onC), time.Since(killed).Round(time.Millisecond))
		// RefreshMetadata drops c once the members no longer list it;
		// then Delete and Destroy (sent to any member) work every time.
		err = poll(60*time.Second, func() error {
			if err := cl.RefreshMetadata(ctx); err != nil {
				return err
			}
			ms, err := cl.Members(ctx)
			if err != nil {
				return err
			}
			if len(ms) != 2 {
				return fmt.Errorf("members %+v", ms)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range onC {
			if v := must(must(dm.Get(ctx, keyOf(i))).String()); v != valueOf(i)+"-new" {
				t.Fatalf("%s = %q", keyOf(i), v)
			}
			if d := must(dm.Delete(ctx, keyOf(i))); d != 1 {
				t.Fatalf("Delete %s = %d", keyOf(i), d)
			}
			_, err := dm.Get(ctx, keyOf(i))
			if !errors.Is(err, olric.ErrKeyNotFound) {
				t.Fatalf("Get %s after Delete: %v", keyOf(i), err)
			}
		}
		rt := must(cl.RoutingTable(ctx))
		for id, r := range rt {
			for _, o := range append(slices.Clone(r.PrimaryOwners), r.ReplicaOwners...) {
				if o == c.resp {
					t.Errorf("partition %d still routes to the killed member: %+v", id, r)
				}
			}
		}
	})
}
