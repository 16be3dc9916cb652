package latency

import (
	"sync"
	"testing"
	"time"
)

func TestObserveBucketsCumulatively(t *testing.T) {
	var h Histogram
	h.Observe(50 * time.Microsecond)  // ≤ 100µs
	h.Observe(100 * time.Microsecond) // ≤ 100µs (bounds are inclusive)
	h.Observe(3 * time.Millisecond)   // ≤ 5ms
	h.Observe(time.Minute)            // +Inf only
	h.Observe(-time.Second)           // counts as 0
	s := h.Snapshot()
	if s.Count != 5 {
		t.Fatalf("count %d, want 5", s.Count)
	}
	if want := 50*time.Microsecond + 100*time.Microsecond + 3*time.Millisecond + time.Minute; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
	want := map[float64]uint64{.0001: 3, .00025: 3, .0025: 3, .005: 4, 10: 4}
	for i, b := range Buckets {
		if w, ok := want[b]; ok && s.Cumulative[i] != w {
			t.Errorf("bucket ≤%gs: %d, want %d", b, s.Cumulative[i], w)
		}
		if i > 0 && s.Cumulative[i] < s.Cumulative[i-1] {
			t.Errorf("bucket ≤%gs decreases", b)
		}
	}
}

func TestConcurrentObserve(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				h.Observe(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 8000 || s.Cumulative[len(Buckets)-1] != 8000 {
		t.Fatalf("count %d, last bucket %d, want 8000", s.Count, s.Cumulative[len(Buckets)-1])
	}
}
