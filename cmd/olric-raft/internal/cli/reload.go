package cli

import (
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// reloaders are the things the server reloads on SIGHUP: each a name and
// a function that reads its files again and swaps them in, or returns an
// error and keeps what it had. Adding one is a line in runServer:
//
//	reload.add("tls", provider.Reload)
//
// The functions run one after the other in the order added, in the
// goroutine of watchReload; each result is logged (info on success, error
// on failure, with the name). A failing function does not stop the others.
type reloaders struct {
	logger *slog.Logger

	mu struct {
		sync.Mutex
		list []reloader // guarded by mu
	}
}

type reloader struct {
	name string
	fn   func() error
}

func newReloaders(logger *slog.Logger) *reloaders {
	return &reloaders{logger: logger}
}

// add registers fn under name.
func (r *reloaders) add(name string, fn func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.list = append(r.mu.list, reloader{name: name, fn: fn})
}

// run calls every function and logs its result; it returns how many
// failed.
func (r *reloaders) run() int {
	r.mu.Lock()
	list := append([]reloader(nil), r.mu.list...)
	r.mu.Unlock()
	if len(list) == 0 {
		r.logger.Info("SIGHUP: nothing to reload")
		return 0
	}
	failed := 0
	for _, rl := range list {
		start := time.Now()
		if err := rl.fn(); err != nil {
			failed++
			r.logger.Error("reload failed; keeping the previous version", "what", rl.name, "err", err)
			continue
		}
		r.logger.Info("reloaded", "what", rl.name, "took", time.Since(start).Round(time.Microsecond))
	}
	return failed
}

// isReloadSignal reports whether sig asks for a reload.
func isReloadSignal(sig os.Signal) bool { return sig == syscall.SIGHUP }

// watchReload reads signals from in: on SIGHUP it runs r, any other signal
// is passed on to the returned channel (what runServer waits on for
// SIGINT/SIGTERM). stop ends the goroutine and waits for it; runServer
// calls it before it returns.
func watchReload(in <-chan os.Signal, r *reloaders) (out <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 2)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case sig := <-in:
				if isReloadSignal(sig) {
					r.run()
					continue
				}
				select {
				case ch <- sig:
				case <-done:
					return
				}
			}
		}
	}()
	var once sync.Once
	return ch, func() {
		once.Do(func() { close(done) })
		<-exited
	}
}
