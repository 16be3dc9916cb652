//go:build !linux

package resp

import (
	"errors"
	"net"
)

// readyQueue exists on Linux only (readyqueue_linux.go); elsewhere the
// connections wait through the runtime's poller.
type readyQueue struct{}

type readWaiter struct{}

func newReadyQueue() *readyQueue                    { return nil }
func (q *readyQueue) close()                        {}
func (q *readyQueue) register(net.Conn) *readWaiter { return nil }
func (w *readWaiter) unregister()                   {}
func (w *readWaiter) read([]byte) (int, error)      { return 0, errQueueStopped }

var errQueueStopped = errors.New("resp: ready queue stopped")
