package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// userMailbox is the user actors' mailbox (actor.WithMailbox), leaner than protoactor's default for a
// million mostly idle actors: one small struct instead of five objects (a ring buffer of ten slots, a
// lock-free system queue with a node per message), its queue allocated only while messages wait, and a
// run scheduled on the factory's pool without allocating. The Started message protoactor posts at spawn
// is delivered with the actor's first other message, so a spawn schedules no run of its own (a user actor
// does nothing on Started).
//
// As protoactor's: system messages go first; SuspendMailbox holds user messages until ResumeMailbox; a
// run handles at most the dispatcher's throughput before it yields; a panic in the actor is escalated
// to its supervisor.
type userMailbox struct {
	mu        sync.Mutex
	user      []any // user messages waiting, from head
	head      int
	sys       []any // system messages waiting
	scheduled bool  // a run is queued or running
	suspended bool
	invoker   actor.MessageInvoker
	disp      actor.Dispatcher
	pool      *pool // disp, when it is the factory's pool
}

var _ actor.Mailbox = (*userMailbox)(nil)

// RegisterHandlers is called by the spawner before any message is posted.
func (m *userMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.disp = invoker, dispatcher
	m.pool, _ = dispatcher.(*pool)
}

func (m *userMailbox) Start() {}

func (m *userMailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.user) - m.head
}

func (m *userMailbox) PostUserMessage(msg any) {
	m.mu.Lock()
	m.user = append(m.user, msg)
	m.post()
}

func (m *userMailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.sys = append(m.sys, msg)
	if _, started := msg.(*actor.Started); started {
		m.mu.Unlock() // delivered with the next message
		return
	}
	m.post()
}

// post schedules a run unless one is queued or running; m.mu is held and post releases it.
func (m *userMailbox) post() {
	start := !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	if start {
		m.schedule()
	}
}

func (m *userMailbox) schedule() {
	if m.pool != nil {
		m.pool.schedule(m)
		return
	}
	m.disp.Schedule(m.run)
}

// run handles waiting messages, then schedules itself again while some remain (it yielded after the
// throughput, or messages came after it looked).
func (m *userMailbox) run() {
	m.drain(m.disp.Throughput())
	m.mu.Lock()
	more := len(m.sys) > 0 || (!m.suspended && len(m.user) > m.head)
	m.scheduled = more
	m.mu.Unlock()
	if more {
		m.schedule()
	}
}

// drain handles up to limit messages, system messages first.
func (m *userMailbox) drain(limit int) {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	for range max(limit, 1) {
		var sys bool
		if msg, sys = m.next(); msg == nil {
			return
		}
		if !sys {
			m.invoker.InvokeUserMessage(msg)
			continue
		}
		switch msg.(type) {
		case *actor.SuspendMailbox:
			m.setSuspended(true)
		case *actor.ResumeMailbox:
			m.setSuspended(false)
		default:
			m.invoker.InvokeSystemMessage(msg)
		}
	}
}

// next takes the next message to handle: a system message, else a user message unless suspended; nil
// when there is none.
func (m *userMailbox) next() (msg any, sys bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sys) > 0 {
		msg = m.sys[0]
		n := copy(m.sys, m.sys[1:])
		m.sys[n] = nil
		if m.sys = m.sys[:n]; n == 0 {
			m.sys = nil
		}
		return msg, true
	}
	if m.suspended || m.head == len(m.user) {
		return nil, false
	}
	msg = m.user[m.head]
	m.user[m.head] = nil
	if m.head++; m.head == len(m.user) {
		m.user, m.head = nil, 0 // an idle actor keeps no queue
	}
	return msg, false
}

func (m *userMailbox) setSuspended(s bool) {
	m.mu.Lock()
	m.suspended = s
	m.mu.Unlock()
}
