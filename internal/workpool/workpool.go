// Package workpool runs short tasks on goroutines that outlive them.
//
// A fresh goroutine starts with a small stack and grows it (copying it
// each time it doubles) as a task goes deep — through a request path of
// several packages and an encoder, say. Under load that copying costs a
// noticeable share of the CPU (about 7% of a member's in a profile of
// pipelined RESP commands). A Pool keeps the goroutines, and their grown
// stacks, between tasks.
package workpool

import "sync"

// Pool runs tasks on up to max kept goroutines; a task that finds none
// idle and the pool full runs on a goroutine of its own. The zero value
// is not usable: call New.
type Pool struct {
	tasks chan func()
	max   int

	mu      sync.Mutex
	n       int // goroutines started
	stopped bool
	wg      sync.WaitGroup
}

// New returns a pool keeping at most max goroutines.
func New(max int) *Pool {
	return &Pool{tasks: make(chan func()), max: max}
}

// Go runs task on an idle kept goroutine, a new kept one, or (the pool
// full, or stopped) a goroutine of its own. It never blocks.
func (p *Pool) Go(task func()) {
	select {
	case p.tasks <- task:
		return
	default:
	}
	p.mu.Lock()
	keep := !p.stopped && p.n < p.max
	if keep {
		p.n++
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if !keep {
		go task()
		return
	}
	go func() {
		defer p.wg.Done()
		task()
		for t := range p.tasks {
			if t == nil {
				return // Stop
			}
			t()
		}
	}()
}

// Stop ends the kept goroutines once their tasks are done and waits for
// them. Tasks given to Go from then on run on goroutines of their own.
func (p *Pool) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	n := p.n
	p.mu.Unlock()
	for range n {
		p.tasks <- nil // each kept goroutine takes one and ends
	}
	p.wg.Wait()
}
