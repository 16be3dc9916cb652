package workpool

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPoolRunsEveryTaskAndKeepsAtMostMax: every task runs once, however
// many are given at once; at most max goroutines are kept; Stop ends them
// (goleak checks), and tasks given after Stop still run.
func TestPoolRunsEveryTaskAndKeepsAtMostMax(t *testing.T) {
	p := New(4)
	var ran atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 20 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			<-release // all 20 in flight at once: 4 kept, 16 on their own
			ran.Add(1)
		})
	}
	close(release)
	wg.Wait()
	p.mu.Lock()
	kept := p.n
	p.mu.Unlock()
	if kept != 4 {
		t.Fatalf("%d goroutines kept, want 4", kept)
	}
	// Kept goroutines take later tasks.
	for range 100 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); ran.Add(1) })
	}
	wg.Wait()
	p.Stop()
	wg.Add(1)
	p.Go(func() { defer wg.Done(); ran.Add(1) })
	wg.Wait()
	if got := ran.Load(); got != 121 {
		t.Fatalf("%d tasks ran, want 121", got)
	}
	p.Stop() // idempotent
}
