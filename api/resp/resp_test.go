package resp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start serves c on 127.0.0.1:0 and returns a go-redis client.
func start(t *testing.T, c Cluster) (*Server, *redis.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, Options{Logger: quiet(), RequestTimeout: 5 * time.Second})
	// As a server on one CPU runs (GOMAXPROCS 1): its connections wait
	// for input through the ready queue (on Linux).
	s.useReadyQueue = true
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	for s.Addr() == nil {
		time.Sleep(time.Millisecond)
	}
	rc := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() {
		_ = rc.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		_ = s.Close() // idempotent
	})
	return s, rc
}

func wantErr(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error %v, want prefix %q", err, prefix)
	}
}

// must returns v, or panics (failing the test run) on err.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// exercise runs the command list against a server over c.
func exercise(t *testing.T, rc *redis.Client) {
	ctx := context.Background()
	if got := must(rc.Ping(ctx).Result()); got != "PONG" {
		t.Fatal(got)
	}
	if got := must(rc.Echo(ctx, "hi").Result()); got != "hi" {
		t.Fatal(got)
	}
	if got := must(rc.Do(ctx, "PING", "x").Result()); got != "x" {
		t.Fatal(got)
	}
	// GET/SET and options.
	if _, err := rc.Get(ctx, "k").Result(); err != redis.Nil {
		t.Fatal(err)
	}
	must(rc.Set(ctx, "k", "v1", 0).Result())
	if got := must(rc.Get(ctx, "k").Result()); got != "v1" {
		t.Fatal(got)
	}
	if _, err := rc.SetNX(ctx, "k", "v2", 0).Result(); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.Do(ctx, "SET", "k", "v2", "NX").Result(); err != redis.Nil {
		t.Fatalf("SET NX on existing: %v %v", got, err)
	}
	if _, err := rc.Do(ctx, "SET", "missing", "v", "XX").Result(); err != redis.Nil {
		t.Fatalf("SET XX on missing: %v", err)
	}
	if got := must(rc.Do(ctx, "SET", "k", "v3", "GET").Result()); got != "v1" {
		t.Fatal(got)
	}
	if got := must(rc.Do(ctx, "SET", "k", "v4", "EX", "100", "XX", "GET").Result()); got != "v3" {
		t.Fatal(got)
	}
	if ttl := must(rc.TTL(ctx, "k").Result()); ttl != 100*time.Second {
		t.Fatal(ttl)
	}
	if pttl := must(rc.PTTL(ctx, "k").Result()); pttl <= 99*time.Second || pttl > 100*time.Second {
		t.Fatal(pttl)
	}
	must(rc.Do(ctx, "SET", "k", "v5", "KEEPTTL").Result())
	if ttl := must(rc.TTL(ctx, "k").Result()); ttl <= 0 {
		t.Fatal("KEEPTTL lost the ttl", ttl)
	}
	must(rc.Set(ctx, "k", "v6", 0).Result())
	if ttl := must(rc.Do(ctx, "TTL", "k").Int()); ttl != -1 {
		t.Fatal(ttl)
	}
	if ttl := must(rc.Do(ctx, "PTTL", "nope").Int()); ttl != -2 {
		t.Fatal(ttl)
	}
	must(rc.Do(ctx, "SET", "px", "v", "PX", "100000").Result())
	must(rc.Do(ctx, "SET", "exat", "v", "EXAT", fmt.Sprint(time.Now().Add(time.Hour).Unix())).Result())
	must(rc.Do(ctx, "SET", "pxat", "v", "PXAT", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())).Result())
	if ttl := must(rc.TTL(ctx, "exat").Result()); ttl < 59*time.Minute {
		t.Fatal(ttl)
	}
	_, err := rc.Do(ctx, "SET", "k", "v", "EX", "1", "PX", "5").Result()
	wantErr(t, err, "ERR syntax error")
	_, err = rc.Do(ctx, "SET", "k", "v", "NX", "XX").Result()
	wantErr(t, err, "ERR syntax error")
	_, err = rc.Do(ctx, "SET", "k", "v", "EX", "x").Result()
	wantErr(t, err, "ERR value is not an integer or out of range")
	_, err = rc.Do(ctx, "SET", "k", "v", "EX", "0").Result()
	wantErr(t, err, "ERR invalid expire time in 'set' command")
	_, err = rc.Do(ctx, "GET").Result()
	wantErr(t, err, "ERR wrong number of arguments for 'get' command")
	_, err = rc.Do(ctx, "NOSUCH", "a").Result()
	wantErr(t, err, "ERR unknown command 'NOSUCH'")
	// DEL, EXISTS.
	must(rc.Set(ctx, "a", "1", 0).Result())
	must(rc.Set(ctx, "b", "2", 0).Result())
	if n := must(rc.Exists(ctx, "a", "b", "zz", "a").Result()); n != 3 {
		t.Fatal(n)
	}
	if n := must(rc.Del(ctx, "a", "b", "zz").Result()); n != 2 {
		t.Fatal(n)
	}
	// INCR family.
	if n := must(rc.Incr(ctx, "n").Result()); n != 1 {
		t.Fatal(n)
	}
	if n := must(rc.IncrBy(ctx, "n", 10).Result()); n != 11 {
		t.Fatal(n)
	}
	if n := must(rc.Decr(ctx, "n").Result()); n != 10 {
		t.Fatal(n)
	}
	if n := must(rc.DecrBy(ctx, "n", 20).Result()); n != -10 {
		t.Fatal(n)
	}
	must(rc.Set(ctx, "s", "abc", 0).Result())
	_, err = rc.Incr(ctx, "s").Result()
	wantErr(t, err, "ERR value is not an integer or out of range")
	_, err = rc.Do(ctx, "INCRBY", "n", "1.5").Result()
	wantErr(t, err, "ERR value is not an integer or out of range")
	// EXPIRE.
	if ok := must(rc.Expire(ctx, "n", time.Minute).Result()); !ok {
		t.Fatal("expire")
	}
	if ok := must(rc.Expire(ctx, "missing", time.Minute).Result()); ok {
		t.Fatal("expire missing")
	}
	if ok := must(rc.PExpire(ctx, "n", 1500*time.Millisecond).Result()); !ok {
		t.Fatal("pexpire")
	}
	if pttl := must(rc.PTTL(ctx, "n").Result()); pttl <= 0 || pttl > 1500*time.Millisecond {
		t.Fatal(pttl)
	}
	if n := must(rc.Do(ctx, "EXPIRE", "n", "-1").Int()); n != 1 {
		t.Fatal(n)
	}
	if n := must(rc.Exists(ctx, "n").Result()); n != 0 {
		t.Fatal("EXPIRE -1 kept the key")
	}
	// MSET/MGET.
	must(rc.MSet(ctx, "m1", "x", "m2", "y").Result())
	got := must(rc.MGet(ctx, "m1", "nope", "m2").Result())
	if len(got) != 3 || got[0] != "x" || got[1] != nil || got[2] != "y" {
		t.Fatal(got)
	}
	_, err = rc.Do(ctx, "MSET", "a").Result()
	wantErr(t, err, "ERR wrong number of arguments for 'mset' command")
	// Misc.
	must(rc.Do(ctx, "SELECT", "0").Result())
	_, err = rc.Do(ctx, "SELECT", "1").Result()
	wantErr(t, err, "ERR DB index is out of range")
	_, err = rc.Do(ctx, "AUTH", "x").Result()
	wantErr(t, err, "ERR AUTH <password> called without any password configured for the default user")
	if v := must(rc.Do(ctx, "COMMAND").Slice()); len(v) != 0 {
		t.Fatal(v)
	}
	if v := must(rc.Do(ctx, "CONFIG", "GET", "save").Slice()); len(v) != 2 || v[0] != "save" || v[1] != "" {
		t.Fatal(v)
	}
	if v := must(rc.Do(ctx, "CONFIG", "GET", "appendonly").Slice()); len(v) != 2 {
		t.Fatal(v)
	}
	if v := must(rc.Info(ctx).Result()); !strings.HasPrefix(v, "# Server\r\n") {
		t.Fatal(v)
	}
	// DM.*
	if v := must(rc.Do(ctx, "DM.PUT", "dm", "k", "v", "EX", "100").Result()); v != "OK" {
		t.Fatal(v)
	}
	if v := must(rc.Do(ctx, "DM.GET", "dm", "k").Text()); v != "v" {
		t.Fatal(v)
	}
	_, err = rc.Do(ctx, "DM.GET", "dm", "nope").Result()
	wantErr(t, err, "KEYNOTFOUND key not found")
	_, err = rc.Do(ctx, "DM.PUT", "dm", "k", "v", "NX").Result()
	wantErr(t, err, "KEYFOUND")
	_, err = rc.Do(ctx, "DM.PUT", "dm", "nope", "v", "XX").Result()
	wantErr(t, err, "KEYNOTFOUND")
	_, err = rc.Do(ctx, "DM.PUT", "dm", "k2", "v", "PX", "100000", "XX", "NX").Result()
	wantErr(t, err, "ERR syntax error")
	must(rc.Do(ctx, "DM.PUT", "dm", "k2", "v", "PXAT", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()), "NX").Result())
	must(rc.Do(ctx, "DM.EXPIRE", "dm", "k", "50").Result())
	must(rc.Do(ctx, "DM.PEXPIRE", "dm", "k", "50000").Result())
	_, err = rc.Do(ctx, "DM.EXPIRE", "dm", "nope", "5").Result()
	wantErr(t, err, "KEYNOTFOUND")
	if n := must(rc.Do(ctx, "DM.INCR", "dm", "c", "5").Int()); n != 5 {
		t.Fatal(n)
	}
	if n := must(rc.Do(ctx, "DM.DECR", "dm", "c", "7").Int()); n != -2 {
		t.Fatal(n)
	}
	if f := must(rc.Do(ctx, "DM.INCRBYFLOAT", "dm", "f", "1.5").Text()); f != "1.5" {
		t.Fatal(f)
	}
	if _, err := rc.Do(ctx, "DM.GETPUT", "dm", "g", "1").Result(); err != redis.Nil {
		t.Fatal(err)
	}
	if v := must(rc.Do(ctx, "DM.GETPUT", "dm", "g", "2").Text()); v != "1" {
		t.Fatal(v)
	}
	if n := must(rc.Do(ctx, "DM.DEL", "dm", "g", "f", "none").Int()); n != 2 {
		t.Fatal(n)
	}
	tok := must(rc.Do(ctx, "DM.LOCK", "dm", "l", "1", "PX", "10000").Text())
	_, err = rc.Do(ctx, "DM.LOCK", "dm", "l", "0", "EX", "10").Result()
	wantErr(t, err, "LOCKNOTACQUIRED")
	must(rc.Do(ctx, "DM.LOCKLEASE", "dm", "l", tok, "20").Result())
	must(rc.Do(ctx, "DM.PLOCKLEASE", "dm", "l", tok, "20000").Result())
	_, err = rc.Do(ctx, "DM.UNLOCK", "dm", "l", "12345").Result()
	wantErr(t, err, "NOSUCHLOCK")
	must(rc.Do(ctx, "DM.UNLOCK", "dm", "l", tok).Result())
	_, err = rc.Do(ctx, "DM.UNLOCK", "dm", "l", tok).Result()
	wantErr(t, err, "NOSUCHLOCK")
	// DM.SCAN, then DM.DESTROY.
	for i := range 30 {
		must(rc.Do(ctx, "DM.PUT", "scan", fmt.Sprint("key", i), "v").Result())
	}
	if keys := dmScanAll(t, rc, "scan", 7); len(keys) != 30 {
		t.Fatal(len(keys), keys)
	}
	must(rc.Do(ctx, "DM.DESTROY", "scan").Result())
	if keys := dmScanAll(t, rc, "scan", 7); len(keys) != 0 {
		t.Fatal(keys)
	}
	// Cluster.
	if rt := must(rc.Do(ctx, "CLUSTER.ROUTINGTABLE").Slice()); len(rt) == 0 {
		t.Fatal(rt)
	}
	ms := must(rc.Do(ctx, "CLUSTER.MEMBERS").Slice())
	if len(ms) == 0 || len(ms[0].([]any)) != 9 {
		t.Fatal(ms)
	}
	if st := must(rc.Do(ctx, "STATS").Text()); !strings.HasPrefix(st, "{") {
		t.Fatal(st)
	}
}

func dmScanAll(t *testing.T, rc *redis.Client, dmap string, count int) []string {
	t.Helper()
	var all []string
	cursor := "0"
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("scan does not end")
		}
		v := must(rc.Do(context.Background(), "DM.SCAN", dmap, cursor, "COUNT", count).Slice())
		cursor = v[0].(string)
		for _, k := range v[1].([]any) {
			all = append(all, k.(string))
		}
		if cursor == "0" {
			return all
		}
	}
}

func scanAll(t *testing.T, rc *redis.Client, match string, count int64) []string {
	t.Helper()
	var all []string
	var cursor uint64
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("scan does not end")
		}
		keys, next, err := rc.Scan(context.Background(), cursor, match, count).Result()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, keys...)
		if next == 0 {
			slices.Sort(all)
			return slices.Compact(all)
		}
		cursor = next
	}
}

func testScanAndPipeline(t *testing.T, rc *redis.Client) {
	ctx := context.Background()
	pipe := rc.Pipeline()
	cmds := make([]*redis.StatusCmd, 100)
	for i := range cmds {
		cmds[i] = pipe.Set(ctx, fmt.Sprintf("p%03d", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	pipe = rc.Pipeline()
	gets := make([]*redis.StringCmd, 100)
	for i := range gets {
		gets[i] = pipe.Get(ctx, fmt.Sprintf("p%03d", i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		if g.Val() != fmt.Sprint(i) {
			t.Fatalf("pipelined reply %d out of order: %q", i, g.Val())
		}
	}
	if keys := scanAll(t, rc, "p0*", 7); len(keys) != 100 {
		t.Fatal(len(keys))
	}
	if keys := scanAll(t, rc, "p09?", 1); len(keys) != 10 {
		t.Fatal(keys)
	}
	_, _, err := rc.Scan(ctx, 1<<63|999999, "", 10).Result()
	wantErr(t, err, "ERR invalid cursor")
}

func TestFakeCluster(t *testing.T) {
	fake := httpapitest.NewCluster(1, 3, 1)
	fake.Set(func(s *httpapitest.State) { s.ScanPage = 3 })
	_, rc := start(t, fake)
	exercise(t, rc)
	testScanAndPipeline(t, rc)
	// A data-plane outage answers TRYAGAIN.
	fake.Set(func(s *httpapitest.State) { s.DataErr = fmt.Errorf("%w: test", dataplaneUnavailable) })
	_, err := rc.Get(context.Background(), "k").Result()
	wantErr(t, err, "TRYAGAIN")
}

func TestRealNode(t *testing.T) {
	n := startRealNode(t, "r1")
	_, rc := start(t, n)
	exercise(t, rc)
	testScanAndPipeline(t, rc)
	testOlricScan(t, rc, n.Routing().PartitionCount)
}

func TestGarbage(t *testing.T) {
	s, rc := start(t, httpapitest.NewCluster(1, 3, 1))
	addr := s.Addr().String()
	inputs := []string{
		"*99999999999\r\n",
		"$-5\r\n",
		"*1\r\n$-5\r\n",
		"*1\r\n$9223372036854775807\r\nabc\r\n",
		"*1\r\n$99999999999999999999\r\n",
		"*-1\r\n",
		"*0\r\n",
		"*2\r\n$3\r\nGET\r\n:5\r\n",
		"*1\r\n$3\r\nGETX\r\n",
		"*1\r\n$+3\r\nGET\r\n",
		"*1\n",
		"\"unbalanced\r\n",
		strings.Repeat("x", 70<<10),
		"*1025\r\n",
	}
	r := rand.New(rand.NewSource(1))
	for range 20 {
		b := make([]byte, r.Intn(200))
		r.Read(b)
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write([]byte(in))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		c.Close()
		if v, err := rc.Ping(context.Background()).Result(); err != nil || v != "PONG" {
			t.Fatalf("after %.40q: %v %v", in, v, err)
		}
	}
	// A reply before the bad frame, then the protocol error.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Write([]byte("*1\r\n$4\r\nPING\r\n*1\r\n$-5\r\n"))
	got, _ := io.ReadAll(c)
	if string(got) != "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("%q", got)
	}
}

func FuzzExec(f *testing.F) {
	f.Add("SET\x00k\x00v\x00EX\x0010")
	f.Add("DM.LOCK\x00d\x00k\x001\x00PX\x00100")
	f.Add("SCAN\x000\x00MATCH\x00*\x00COUNT\x005")
	f.Add("DM.SCAN\x00d\x00123456789\x00COUNT\x00x")
	f.Add("DM.INCRBYFLOAT\x00d\x00k\x00NaN")
	f.Add("DM.SCAN\x002\x00d\x009223372036854775807\x00MATCH\x00^a+$\x00COUNT\x003\x00RC")
	f.Add("DM.GETPUT\x00d\x00k\x00v\x00RW")
	f.Add("DM.LOCK\x00d\x00k\x000.25\x00EX\x001.5")
	f.Add("STATS\x00CR")
	f.Add("CLUSTER.ROUTINGTABLE")
	s := New(httpapitest.NewCluster(1, 3, 1), Options{Logger: quiet(), RequestTimeout: time.Second})
	defer s.Close()
	f.Fuzz(func(t *testing.T, in string) {
		var args [][]byte
		for a := range strings.SplitSeq(in, "\x00") {
			args = append(args, []byte(a))
		}
		var out strings.Builder
		w := newWriter(&out)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.exec(ctx, w, args)
		if err := w.Flush(); err != nil || out.Len() == 0 {
			t.Fatalf("no reply: %v", err)
		}
	})
}

func FuzzGuard(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), 3)
	f.Add([]byte("*99999999999\r\n"), 1)
	f.Add([]byte("PING\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n"), 5)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		g := guard{maxArgs: 8, maxBulk: 64}
		if split < 0 || split > len(in) {
			split = len(in) / 2
		}
		n1, p1 := g.check(in[:split])
		if n1 < 0 || n1 > split || (p1 == "" && n1 != split) {
			t.Fatal(n1, p1)
		}
		if p1 == "" {
			n2, p2 := g.check(in[split:])
			if n2 < 0 || n2 > len(in)-split || (p2 == "" && n2 != len(in)-split) {
				t.Fatal(n2, p2)
			}
		}
	})
}
