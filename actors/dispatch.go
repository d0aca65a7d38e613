package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// pool is the dispatcher of the user actors' mailboxes: a fixed set of goroutines (one per CPU) runs
// the mailboxes that have messages, instead of protoactor's default of a new goroutine each time an idle
// mailbox gets one — with one actor per user, nearly every message finds its mailbox idle. The queue is
// unbounded, so Schedule never blocks a sender (a ShardActor, a writer's reply, a geo callback). User
// actors never block in Receive, so the workers never stall.
//
// The workers start at the first Schedule and stop at Close; a Schedule after Close runs on a new
// goroutine, as protoactor's default does.
type pool struct {
	throughput int
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []runner
	head       int
	closed     bool
	start      sync.Once
	wg         sync.WaitGroup
}

var _ actor.Dispatcher = (*pool)(nil)

func newPool(throughput int) *pool {
	p := &pool{throughput: throughput}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// runner is a mailbox run: the user actors' mailboxes are runners themselves, so scheduling one
// allocates nothing; other mailboxes' runs are funcs.
type runner interface{ run() }

type runFunc func()

func (f runFunc) run() { f() }

// Throughput is how many messages a mailbox run processes before it yields.
func (p *pool) Throughput() int { return p.throughput }

// Schedule queues fn (a mailbox run) for a worker.
func (p *pool) Schedule(fn func()) { p.schedule(runFunc(fn)) }

// schedule queues r for a worker.
func (p *pool) schedule(r runner) {
	p.start.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			p.wg.Add(1)
			go p.work()
		}
	})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go r.run()
		return
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *pool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for p.head == len(p.queue) && !p.closed {
			p.cond.Wait()
		}
		if p.head == len(p.queue) {
			p.mu.Unlock()
			return
		}
		r := p.queue[p.head]
		p.queue[p.head] = nil
		if p.head++; p.head == len(p.queue) {
			p.queue, p.head = p.queue[:0], 0
		} else if p.head > 4096 && p.head*2 > len(p.queue) {
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue, p.head = p.queue[:n], 0
		}
		p.mu.Unlock()
		r.run()
	}
}

// Close runs what is queued, stops the workers and waits for them. Idempotent.
func (p *pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}
