package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// API is the part of the Kinesis client enhanced fan-out uses; *kinesis.Client implements it.
type API interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	DeregisterStreamConsumer(ctx context.Context, in *kinesis.DeregisterStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, opts ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// Consumer is a stream consumer registered on a stream.
type Consumer struct {
	Name, ARN string
	// StreamARN is the ARN of the stream it reads.
	StreamARN string
}

// Defaults of EnsureConsumer's waits.
const (
	// DefaultActiveTimeout bounds the wait for a consumer to become ACTIVE (Kinesis takes seconds).
	DefaultActiveTimeout = 2 * time.Minute
	// describePoll paces DescribeStreamConsumer while waiting (Kinesis allows 20 calls per second per
	// stream).
	describePoll = 500 * time.Millisecond
)

// ErrNotActive is wrapped by EnsureConsumer's error when the consumer did not become ACTIVE in time.
var ErrNotActive = errors.New("fanout: stream consumer not ACTIVE")

// ErrUnsupported is wrapped, as a permanent error (retry.IsPermanent), by the errors of an endpoint that
// does not serve enhanced fan-out: one that does not know the operation (UnknownOperationException, as
// kinesalite answers), or answers SubscribeToShard without Kinesis' initial-response event (kinesis-mock's
// plain-HTTP port). Every retry would fail the same way.
var ErrUnsupported = errors.New("fanout: the endpoint does not serve enhanced fan-out")

// unsupported marks err with ErrUnsupported when it says the endpoint does not serve enhanced fan-out.
func unsupported(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException" || err != nil && strings.Contains(err.Error(), "expected initial-response") {
		return retry.Permanent(fmt.Errorf("%w: %w", ErrUnsupported, err))
	}
	return err
}

// EnsureConsumer returns the stream consumer named name on stream, registering it when there is none,
// once it is ACTIVE; created says it registered it. A consumer being deleted is waited out and registered
// again. It waits at most timeout (DefaultActiveTimeout when 0), then returns an error wrapping
// ErrNotActive; Kinesis' errors are returned wrapped, with the stream and consumer named (a missing
// stream is a *types.ResourceNotFoundException). Several processes may call it at once for the same
// consumer: one registers it, the others find it.
func EnsureConsumer(ctx context.Context, api API, stream, name string, timeout time.Duration) (c Consumer, created bool, err error) {
	if timeout <= 0 {
		timeout = DefaultActiveTimeout
	}
	sum, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return c, false, fmt.Errorf("describe stream %s: %w", stream, err)
	}
	c = Consumer{Name: name, StreamARN: aws.ToString(sum.StreamDescriptionSummary.StreamARN)}
	deadline := time.Now().Add(timeout)
	for {
		status, arn, err := describe(ctx, api, c.StreamARN, name)
		var notFound *ktypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			ok, err := register(ctx, api, c.StreamARN, name)
			if err != nil {
				return c, created, err
			}
			created = created || ok
			status = "absent"
		case err != nil:
			return c, created, err
		case status == ktypes.ConsumerStatusActive:
			c.ARN = arn
			return c, created, nil
		}
		if time.Now().After(deadline) {
			return c, created, fmt.Errorf("%w: consumer %s of stream %s is %s after %s", ErrNotActive, name, stream, status, timeout)
		}
		if err := retry.Sleep(ctx, describePoll); err != nil {
			return c, created, fmt.Errorf("consumer %s of stream %s: %w", name, stream, err)
		}
	}
}

// describe returns the status and ARN of the consumer named name on the stream.
func describe(ctx context.Context, api API, streamARN, name string) (ktypes.ConsumerStatus, string, error) {
	out, err := api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	if err != nil {
		return "", "", fmt.Errorf("describe consumer %s of stream %s: %w", name, streamARN, unsupported(err))
	}
	d := out.ConsumerDescription
	return d.ConsumerStatus, aws.ToString(d.ConsumerARN), nil
}

// register registers the consumer; false without an error when another process did first.
func register(ctx context.Context, api API, streamARN, name string) (bool, error) {
	_, err := api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	var inUse *ktypes.ResourceInUseException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &inUse):
		return false, nil // registered meanwhile, or still being deleted: describe it again
	}
	return false, fmt.Errorf("register consumer %s on stream %s: %w", name, streamARN, unsupported(err))
}

// Exists reports whether the consumer with this ARN is still registered: false with a nil error when
// Kinesis answers ResourceNotFoundException or the consumer is being deleted (deregistered).
func Exists(ctx context.Context, api API, consumerARN string) (bool, error) {
	out, err := api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
	var notFound *ktypes.ResourceNotFoundException
	switch {
	case err == nil:
		return out.ConsumerDescription.ConsumerStatus != ktypes.ConsumerStatusDeleting, nil
	case errors.As(err, &notFound):
		return false, nil
	}
	return false, fmt.Errorf("describe consumer %s: %w", consumerARN, err)
}

// Deregister deregisters the consumer with this ARN; one already gone is not an error.
func Deregister(ctx context.Context, api API, consumerARN string) error {
	_, err := api.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
	var notFound *ktypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("deregister consumer %s: %w", consumerARN, err)
	}
	return nil
}
