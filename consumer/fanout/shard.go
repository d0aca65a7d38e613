package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// Subscription is one open SubscribeToShard event stream; *kinesis.SubscribeToShardEventStream is one.
type Subscription interface {
	// Events delivers the stream's events; it is closed when the stream ends.
	Events() <-chan ktypes.SubscribeToShardEventStream
	// Err is why the stream ended: nil for a clean end (Kinesis ends every subscription after five
	// minutes).
	Err() error
	// Close ends the stream; safe to call more than once.
	Close() error
}

// Subscriber opens subscriptions.
type Subscriber interface {
	Subscribe(ctx context.Context, in *kinesis.SubscribeToShardInput) (Subscription, error)
}

// SDK returns the Subscriber of a Kinesis client.
func SDK(api API) Subscriber { return sdkSubscriber{api} }

type sdkSubscriber struct{ api API }

func (s sdkSubscriber) Subscribe(ctx context.Context, in *kinesis.SubscribeToShardInput) (Subscription, error) {
	out, err := s.api.SubscribeToShard(ctx, in, ownProtocol)
	if err != nil {
		return nil, err
	}
	return out.GetStream(), nil
}

// ownProtocol gives a subscription a protocol of its own, as the client's is by default (awsJson 1.1):
// the client's one protocol value is shared by all its calls, and its event stream codec keeps per-call
// state without synchronization (aws/smithy-go#714), a data race between concurrent subscriptions.
func ownProtocol(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

// Position is where a subscription starts: Type, with SequenceNumber for AT_ and AFTER_SEQUENCE_NUMBER
// and Timestamp for AT_TIMESTAMP.
type Position struct {
	Type           ktypes.ShardIteratorType
	SequenceNumber string
	Timestamp      time.Time
}

func (p Position) String() string {
	switch p.Type {
	case ktypes.ShardIteratorTypeAtSequenceNumber, ktypes.ShardIteratorTypeAfterSequenceNumber:
		return string(p.Type) + " " + p.SequenceNumber
	case ktypes.ShardIteratorTypeAtTimestamp:
		return string(p.Type) + " " + p.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	return string(p.Type)
}

func (p Position) starting() *ktypes.StartingPosition {
	sp := &ktypes.StartingPosition{Type: p.Type}
	switch p.Type {
	case ktypes.ShardIteratorTypeAtSequenceNumber, ktypes.ShardIteratorTypeAfterSequenceNumber:
		sp.SequenceNumber = aws.String(p.SequenceNumber)
	case ktypes.ShardIteratorTypeAtTimestamp:
		sp.Timestamp = aws.Time(p.Timestamp)
	}
	return sp
}

// Defaults of Shard's settings.
const (
	// DefaultIdleTimeout is how long a subscription may go without an event (Kinesis sends one every few
	// seconds, records or not) before it is taken for broken and renewed.
	DefaultIdleTimeout = 30 * time.Second
)

// Shard reads one shard through successive subscriptions of one stream consumer. Set the exported
// fields, then call Read; a Shard is used by one goroutine.
type Shard struct {
	// Subscriber opens the subscriptions. Required.
	Subscriber Subscriber
	// ConsumerARN is the registered stream consumer's ARN. Required.
	ConsumerARN string
	// ShardID is the shard to read. Required.
	ShardID string
	// Backoff paces subscriptions after a failed call or a broken stream. Default: 100ms doubling to 5s.
	Backoff retry.Backoff
	// Refused paces subscriptions Kinesis refused with ResourceInUseException (the previous subscription
	// is not released yet: up to 5 seconds on Kinesis) or LimitExceededException (more than one call per
	// second). Default: 1s doubling to 5s.
	Refused retry.Backoff
	// IdleTimeout renews a subscription that delivered no event for this long. Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// OnSubscribe, when set, is called after every SubscribeToShard call with its error (for metrics).
	OnSubscribe func(err error)
	// Logger receives a line per renewal that is not the routine one. Default: zap.NewNop().
	Logger *zap.Logger

	next Position
}

// Next is where a new subscription would start: the position Read started from until an event was
// handled, then after that event's continuation sequence number.
func (s *Shard) Next() Position { return s.next }

// Read subscribes from `from` and calls handle with every event, in order, one at a time, until ctx ends
// (it returns false and nil), the shard ends (an event without a continuation sequence number, as
// Kinesis sends at the end of a closed shard with its ChildShards: true and nil, after handle got that
// event), handle returns an error (false and that error), or a subscription fails with a permanent error
// (retry.IsPermanent: a missing consumer or shard, a denied call, a bad position; false and that error).
// Every other end of a subscription — Kinesis' five-minute end, a broken or idle stream, a refused
// subscription — is followed by a new one from Next, after a backoff unless it was a clean end.
func (s *Shard) Read(ctx context.Context, from Position, handle func(*ktypes.SubscribeToShardEvent) error) (bool, error) {
	s.defaults()
	s.next = from
	for ctx.Err() == nil {
		sub, err := s.subscribe(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			if err := s.afterFailedSubscribe(ctx, err); err != nil {
				return false, err
			}
			continue
		}
		s.Refused.Reset()
		ended, err := s.drain(ctx, sub, handle)
		_ = sub.Close()
		if ended || err != nil {
			return ended, err
		}
	}
	return false, nil
}

func (s *Shard) defaults() {
	if s.Refused.Initial == 0 {
		s.Refused.Initial, s.Refused.Max = time.Second, 5*time.Second
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
}

func (s *Shard) subscribe(ctx context.Context) (Subscription, error) {
	sub, err := s.Subscriber.Subscribe(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(s.ConsumerARN), ShardId: aws.String(s.ShardID), StartingPosition: s.next.starting()})
	if s.OnSubscribe != nil {
		s.OnSubscribe(err)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s to shard %s at %s: %w", s.ConsumerARN, s.ShardID, s.next, unsupported(err))
	}
	return sub, nil
}

// afterFailedSubscribe returns a permanent error, or pauses as the error says and returns nil.
func (s *Shard) afterFailedSubscribe(ctx context.Context, err error) error {
	var inUse *ktypes.ResourceInUseException
	var limit *ktypes.LimitExceededException
	switch {
	case errors.As(err, &inUse) || errors.As(err, &limit):
		s.Logger.Debug("subscription refused for now; subscribing again after a pause", zap.Error(err))
		_ = retry.Sleep(ctx, s.Refused.Next())
	case retry.IsPermanent(err):
		return err
	default:
		s.Logger.Warn("subscription failed; subscribing again after a backoff", zap.Error(err))
		_ = retry.Sleep(ctx, s.Backoff.Next())
	}
	return nil
}

// drain hands the subscription's events to handle until it ends: see Read. It returns false and nil when
// the subscription should be renewed.
func (s *Shard) drain(ctx context.Context, sub Subscription, handle func(*ktypes.SubscribeToShardEvent) error) (bool, error) {
	idle := time.NewTimer(s.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-idle.C:
			s.Logger.Warn("no event on the subscription; subscribing again", zap.Duration("idle", s.IdleTimeout), zap.Stringer("from", s.next))
			return false, nil
		case ev, ok := <-sub.Events():
			if !ok {
				return false, s.ended(ctx, sub.Err())
			}
			e, isEvent := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue // a member added to the API later
			}
			s.Backoff.Reset()
			if err := handle(&e.Value); err != nil {
				return false, err
			}
			cont := e.Value.ContinuationSequenceNumber
			if cont == nil {
				return true, nil
			}
			s.next = Position{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: *cont}
			idle.Reset(s.IdleTimeout)
		}
	}
}

// ended handles the end of a subscription's stream: nil to subscribe again (after a backoff when it
// broke), or a permanent error.
func (s *Shard) ended(ctx context.Context, err error) error {
	var inUse *ktypes.ResourceInUseException
	switch {
	case err == nil || ctx.Err() != nil:
		return nil // Kinesis' five-minute end, or ours
	case errors.As(err, &inUse):
		// Another subscription of this consumer took the shard over (a process that still thinks it holds
		// it): pause as for a refused one.
		s.Logger.Info("subscription taken over; subscribing again after a pause", zap.Error(err))
		_ = retry.Sleep(ctx, s.Refused.Next())
		return nil
	case retry.IsPermanent(err):
		return fmt.Errorf("subscription of %s to shard %s: %w", s.ConsumerARN, s.ShardID, err)
	}
	s.Logger.Warn("subscription broke; subscribing again after a backoff", zap.Stringer("from", s.next), zap.Error(err))
	_ = retry.Sleep(ctx, s.Backoff.Next())
	return nil
}
