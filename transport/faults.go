package transport

import "time"

// Faults decides, for test networks, whether bytes from one address reach
// another and after what delay. Production nodes use none (nil).
type Faults interface {
	// Link reports whether traffic from the member listening on fromAddr to
	// the one listening on toAddr is delivered now, and the one-way delay.
	Link(fromAddr, toAddr string) (deliver bool, delay time.Duration)
}
