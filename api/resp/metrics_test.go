package resp

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/olric-raft/olric-raft/api/httpapi/httpapitest"
)

type seen struct {
	command string
	failed  bool
}

type recordingObserver struct {
	mu  sync.Mutex
	all []seen
}

func (o *recordingObserver) Observe(command string, failed bool, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, seen{command, failed})
}

// TestMetricsObserveEveryCommand: the observer sees each command once, by
// its lower-case name, with failed set exactly when the reply was an error
// (a miss is not an error).
func TestMetricsObserveEveryCommand(t *testing.T) {
	obs := &recordingObserver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(httpapitest.NewCluster(1, 3, 1), Options{Logger: quiet(), Metrics: obs})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	defer func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}()
	rc := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("get missing: %v", err)
	}
	if err := rc.Incr(ctx, "k").Err(); err == nil {
		t.Fatal("incr of a string succeeded")
	}
	if err := rc.Do(ctx, "NOSUCHCMD").Err(); err == nil {
		t.Fatal("unknown command succeeded")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	var got []seen
	for _, c := range obs.all {
		if c.command != "hello" { // go-redis's handshake (answered NOPROTO)
			got = append(got, c)
		}
	}
	obs.all = got
	want := []seen{{"set", false}, {"get", false}, {"incr", true}, {"nosuchcmd", true}}
	if len(obs.all) != len(want) {
		t.Fatalf("observed %v, want %v", obs.all, want)
	}
	for i := range want {
		if obs.all[i] != want[i] {
			t.Errorf("command %d: observed %+v, want %+v", i, obs.all[i], want[i])
		}
	}
}

func TestCommandNamesAreTheDispatchersLowerCase(t *testing.T) {
	names := CommandNames()
	if len(names) < 30 {
		t.Fatalf("%d command names", len(names))
	}
	for _, n := range names {
		if commandName32([]byte(n)) != n {
			t.Errorf("%q is not its own lower-case name", n)
		}
	}
}
