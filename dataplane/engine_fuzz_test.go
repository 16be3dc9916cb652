package dataplane

import (
	"testing"
)

// FuzzEngine runs the bytes as operations (etDriver: writes with and
// without request ids, and retries of them) on a primary whose mutations
// feed a replica: no input panics, breaks the engine's bookkeeping (dedupe
// table included), answers a retry it holds a result for otherwise than
// recorded, or makes the replica differ (dedupe table included).
func FuzzEngine(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 5, 3, 0, 0, 1, 0, 0})
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15"))
	f.Add([]byte("\x0a\x00\x01\x02\x00\x05\x0b\x00\x01\x02\x00\x00\x10\x00\x00\x00\x00\xff\x12\x00\x00\x00\x00"))
	// incr k1 with a request id, retried twice; a put with an id, retried.
	f.Add([]byte("\x07\x00\x00\x01\x00\x01\x01\x14\x00\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00\x02\x00\x05\x01\x14\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		clk := newETClock()
		a, err := NewEngine(etDriverConfig(), 2, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		var rec etRecorder
		a.OnMutation = rec.hook
		drv := newETDriver(a, clk, in)
		drv.strict = true
		for !drv.done() {
			drv.step(t)
		}
		etCheckInvariants(t, a)
		b, _ := NewEngine(etDriverConfig(), 2, newETClock().Now)
		rec.replay(t, a, b)
	})
}
