package actors

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recordingInvoker is a MessageInvoker that records what it is given; a "panic" message panics.
type recordingInvoker struct {
	mu   sync.Mutex
	got  []string
	seen chan struct{} // one token per message handled or failure escalated
}

func (r *recordingInvoker) record(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.seen <- struct{}{}
}

func (r *recordingInvoker) InvokeSystemMessage(m any) { r.record(fmt.Sprintf("sys:%T", m)) }

func (r *recordingInvoker) InvokeUserMessage(m any) {
	if m == "panic" {
		panic("boom")
	}
	r.record(fmt.Sprint(m))
}

func (r *recordingInvoker) EscalateFailure(reason, m any) {
	r.record(fmt.Sprintf("failure:%v:%v", reason, m))
}

// wait waits for n more messages handled (or failures escalated) and returns everything recorded.
func (r *recordingInvoker) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-r.seen:
		case <-deadline:
			t.Fatalf("the mailbox delivered too few messages: %v", r.snapshot())
		}
	}
	return r.snapshot()
}

func (r *recordingInvoker) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestUserMailbox(t *testing.T) {
	cases := []struct {
		name       string
		throughput int
		post       func(mb actor.Mailbox)
		n          int // messages handled (or failures) to wait for
		want       []string
	}{
		{"user messages in order, one sender", 300, func(mb actor.Mailbox) {
			for i := range 5 {
				mb.PostUserMessage(i)
			}
		}, 5, []string{"0", "1", "2", "3", "4"}},
		{"a run yields after the throughput and goes on", 2, func(mb actor.Mailbox) {
			for i := range 7 {
				mb.PostUserMessage(i)
			}
		}, 7, []string{"0", "1", "2", "3", "4", "5", "6"}},
		{"Started waits for the next message and comes first", 300, func(mb actor.Mailbox) {
			mb.PostSystemMessage(&actor.Started{})
			mb.PostUserMessage("first")
		}, 2, []string{"sys:*actor.Started", "first"}},
		{"suspended: user messages wait for the resume, system messages do not", 300, func(mb actor.Mailbox) {
			mb.PostSystemMessage(&actor.SuspendMailbox{})
			mb.PostUserMessage("held")
			mb.PostSystemMessage(&actor.Stop{})
			mb.PostSystemMessage(&actor.ResumeMailbox{})
		}, 2, []string{"sys:*actor.Stop", "held"}},
		{"a panic is escalated with its message; the next messages still come", 300, func(mb actor.Mailbox) {
			mb.PostUserMessage("panic")
			mb.PostUserMessage("after")
		}, 2, []string{"failure:boom:panic", "after"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPool(c.throughput)
			t.Cleanup(p.Close)
			inv := &recordingInvoker{seen: make(chan struct{}, 100)}
			mb := &userMailbox{}
			mb.RegisterHandlers(inv, p)
			mb.Start()
			c.post(mb)
			if got := inv.wait(t, c.n); !slices.Equal(got, c.want) {
				t.Fatalf("delivered %v, want %v", got, c.want)
			}
			if n := mb.UserMessageCount(); n != 0 {
				t.Errorf("%d user messages left", n)
			}
		})
	}
}

// Without a first message, Started is not delivered on its own: a spawn schedules no run.
func TestUserMailboxSpawnSchedulesNothing(t *testing.T) {
	p := newPool(300)
	t.Cleanup(p.Close)
	mb := &userMailbox{}
	mb.RegisterHandlers(&recordingInvoker{seen: make(chan struct{}, 1)}, p)
	mb.PostSystemMessage(&actor.Started{})
	p.mu.Lock()
	queued := len(p.queue) - p.head
	p.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d runs scheduled after Started, want 0", queued)
	}
}
