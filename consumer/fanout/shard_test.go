package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/clickfleet/clickfleet/consumer/fanout"
	"github.com/clickfleet/clickfleet/internal/retry"
)

// These tests give Shard scripted subscriptions (a fake at fanout's own Subscriber interface) for what
// the local stack's kinesis-mock cannot do: end a closed shard's subscription with ChildShards, break a
// stream with an error, refuse a subscription.

// answer is what one SubscribeToShard call gets: an error, or a stream of events ending with err.
type answer struct {
	subscribeErr error
	events       []ktypes.SubscribeToShardEvent
	err          error // the stream's end: nil for a clean end
	hang         bool  // after the events, send nothing until closed
}

// fakeSubscriber answers each Subscribe with its next answer and records the starting positions.
type fakeSubscriber struct {
	mu      sync.Mutex
	answers []answer
	froms   []string
	taken   int // events taken from the streams
}

func (f *fakeSubscriber) Subscribe(ctx context.Context, in *kinesis.SubscribeToShardInput) (fanout.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := string(in.StartingPosition.Type)
	if in.StartingPosition.SequenceNumber != nil {
		from += " " + *in.StartingPosition.SequenceNumber
	}
	f.froms = append(f.froms, from)
	if len(f.answers) == 0 {
		return nil, errors.New("fake: no more answers")
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	if a.subscribeErr != nil {
		return nil, a.subscribeErr
	}
	s := &fakeSub{events: make(chan ktypes.SubscribeToShardEventStream), closed: make(chan struct{})}
	go s.feed(f, a)
	return s, nil
}

func (f *fakeSubscriber) positions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.froms)
}

type fakeSub struct {
	events chan ktypes.SubscribeToShardEventStream
	mu     sync.Mutex
	err    error
	closed chan struct{}
	once   sync.Once
}

// feed sends the answer's events one at a time (the channel is unbuffered, as the SDK's is), then ends.
func (s *fakeSub) feed(f *fakeSubscriber, a answer) {
	for _, e := range a.events {
		select {
		case s.events <- &ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent{Value: e}:
			f.mu.Lock()
			f.taken++
			f.mu.Unlock()
		case <-s.closed:
			return
		}
	}
	if a.hang {
		<-s.closed
	}
	s.mu.Lock()
	s.err = a.err
	s.mu.Unlock()
	close(s.events)
}

func (s *fakeSub) Events() <-chan ktypes.SubscribeToShardEventStream { return s.events }
func (s *fakeSub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
func (s *fakeSub) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// event returns an event with one record per sequence number and the continuation cont ("" for none: the
// shard's end).
func event(cont string, seqs ...string) ktypes.SubscribeToShardEvent {
	e := ktypes.SubscribeToShardEvent{MillisBehindLatest: aws.Int64(0)}
	if cont != "" {
		e.ContinuationSequenceNumber = aws.String(cont)
	}
	for _, s := range seqs {
		e.Records = append(e.Records, ktypes.Record{SequenceNumber: aws.String(s), Data: []byte("r" + s)})
	}
	return e
}

// read runs Shard.Read over the answers from TRIM_HORIZON and returns the sequence numbers handled, in
// order, with Read's results.
func read(t *testing.T, f *fakeSubscriber, ctx context.Context) (seqs []string, ended bool, err error) {
	t.Helper()
	s := &fanout.Shard{Subscriber: f, ConsumerARN: "arn:consumer", ShardID: "shardId-000000000000",
		Backoff: retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond}, Refused: retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond}}
	ended, err = s.Read(ctx, fanout.Position{Type: ktypes.ShardIteratorTypeTrimHorizon}, func(e *ktypes.SubscribeToShardEvent) error {
		for _, r := range e.Records {
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		return nil
	})
	return seqs, ended, err
}

func TestShardResubscribesFromTheContinuation(t *testing.T) {
	end := event("", "9")
	end.ChildShards = []ktypes.ChildShard{{ShardId: aws.String("shardId-000000000001"), ParentShards: []string{"shardId-000000000000"}}}
	for _, tc := range []struct {
		name    string
		answers []answer
		froms   []string
		want    []string // default: 1 2 3 4 5 9
	}{
		{"Kinesis ends the subscription (five minutes)",
			[]answer{{events: []ktypes.SubscribeToShardEvent{event("2", "1", "2"), event("3", "3")}}, {events: []ktypes.SubscribeToShardEvent{event("5", "4", "5"), end}}},
			[]string{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 3"}, nil},
		{"the stream breaks mid-subscription",
			[]answer{{events: []ktypes.SubscribeToShardEvent{event("2", "1", "2")}, err: errors.New("http2: stream error: INTERNAL_ERROR")},
				{events: []ktypes.SubscribeToShardEvent{event("3", "3"), event("5", "4", "5"), end}}},
			[]string{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 2"}, nil},
		{"an empty event moves the continuation too",
			[]answer{{events: []ktypes.SubscribeToShardEvent{event("3", "1", "2", "3"), event("4")}, err: errors.New("connection reset")},
				{events: []ktypes.SubscribeToShardEvent{event("5", "5"), end}}},
			[]string{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 4"}, []string{"1", "2", "3", "5", "9"}},
		{"refused subscriptions are tried again",
			[]answer{{subscribeErr: &ktypes.ResourceInUseException{Message: aws.String("Another active subscription exists")}},
				{subscribeErr: &ktypes.LimitExceededException{Message: aws.String("Rate exceeded")}},
				{events: []ktypes.SubscribeToShardEvent{event("3", "1", "2", "3")}, err: &ktypes.ResourceInUseException{Message: aws.String("taken over")}},
				{events: []ktypes.SubscribeToShardEvent{event("5", "4", "5"), end}}},
			[]string{"TRIM_HORIZON", "TRIM_HORIZON", "TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 3"}, nil},
		{"an idle stream is renewed",
			[]answer{{events: []ktypes.SubscribeToShardEvent{event("3", "1", "2", "3")}, hang: true},
				{events: []ktypes.SubscribeToShardEvent{event("5", "4", "5"), end}}},
			[]string{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 3"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeSubscriber{answers: tc.answers}
				seqs, ended, err := read(t, f, t.Context())
				if err != nil || !ended {
					t.Fatalf("Read = %v, %v; want the shard's end and no error", ended, err)
				}
				want := tc.want
				if want == nil {
					want = []string{"1", "2", "3", "4", "5", "9"}
				}
				if !slices.Equal(seqs, want) {
					t.Errorf("records handled %v, want %v: each once, in order", seqs, want)
				}
				if got := f.positions(); !slices.Equal(got, tc.froms) {
					t.Errorf("subscriptions started at %v, want %v", got, tc.froms)
				}
			})
		})
	}
}

func TestShardStopsOnPermanentErrors(t *testing.T) {
	gone := &ktypes.ResourceNotFoundException{Message: aws.String("ConsumerARN arn:consumer not found")}
	isGone := func(err error) bool {
		var nf *ktypes.ResourceNotFoundException
		return errors.As(err, &nf)
	}
	noFanOut := func(err error) bool { return errors.Is(err, fanout.ErrUnsupported) && retry.IsPermanent(err) }
	for _, tc := range []struct {
		name    string
		answers []answer
		want    func(error) bool
	}{
		{"the subscription is refused", []answer{{subscribeErr: gone}}, isGone},
		{"the stream ends with it", []answer{{events: []ktypes.SubscribeToShardEvent{event("1", "1")}, err: gone}}, isGone},
		{"the endpoint sends no initial-response (not Kinesis' SubscribeToShard)",
			[]answer{{subscribeErr: errors.New("deserialize initial response: expected initial-response, got SubscribeToShardEvent")}}, noFanOut},
		{"the endpoint does not know SubscribeToShard",
			[]answer{{subscribeErr: &smithy.GenericAPIError{Code: "UnknownOperationException", Message: "SubscribeToShard"}}}, noFanOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeSubscriber{answers: tc.answers}
				_, ended, err := read(t, f, t.Context())
				if ended || !tc.want(err) || !strings.Contains(err.Error(), "shardId-000000000000") {
					t.Fatalf("Read = %v, %v; want a permanent error of its kind, naming the shard", ended, err)
				}
				if n := len(f.positions()); n != 1 {
					t.Errorf("%d subscriptions, want 1: a permanent error is not retried", n)
				}
			})
		})
	}
}

// Events are taken one at a time: while the handler works on one, the next stays with the server.
func TestShardTakesEventsOnlyAsFastAsTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []ktypes.SubscribeToShardEvent
		for i := 1; i <= 5; i++ {
			events = append(events, event(fmt.Sprint(i), fmt.Sprint(i)))
		}
		f := &fakeSubscriber{answers: []answer{{events: events, hang: true}}}
		release := make(chan struct{})
		var takenWhileBlocked int
		ctx, cancel := context.WithCancel(t.Context())
		s := &fanout.Shard{Subscriber: f, ConsumerARN: "arn:consumer", ShardID: "shardId-000000000000"}
		done := make(chan struct{})
		var handled atomic.Int32
		go func() {
			defer close(done)
			_, _ = s.Read(ctx, fanout.Position{Type: ktypes.ShardIteratorTypeLatest}, func(*ktypes.SubscribeToShardEvent) error {
				if handled.Add(1) == 1 {
					<-release
				}
				return nil
			})
		}()
		synctest.Wait() // the handler holds the first event; everything else is blocked
		f.mu.Lock()
		takenWhileBlocked = f.taken
		f.mu.Unlock()
		close(release)
		synctest.Wait()
		cancel()
		<-done
		if takenWhileBlocked != 1 {
			t.Fatalf("%d events taken while the handler held the first, want 1", takenWhileBlocked)
		}
		if n := handled.Load(); n != 5 {
			t.Fatalf("%d events handled after the handler returned, want all 5", n)
		}
	})
}
