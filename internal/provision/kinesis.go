package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer/fanout"
	"github.com/clickfleet/clickfleet/internal/retry"
)

// KinesisAPI is the part of the Kinesis client that provisioning uses.
type KinesisAPI interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, opts ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// StreamResult says what EnsureStream found or did.
type StreamResult struct {
	Name    string
	Created bool  // false: the stream existed already
	Shards  int32 // open shards now
}

// EnsureStream creates the stream with the given number of shards unless it exists, then waits until it
// is ACTIVE (up to the context's deadline, polling every 100 ms). An existing stream keeps its shards.
func EnsureStream(ctx context.Context, api KinesisAPI, name string, shards int32) (StreamResult, error) {
	res := StreamResult{Name: name}
	if shards < 1 {
		return res, fmt.Errorf("stream %s: shard count must be at least 1, got %d", name, shards)
	}
	_, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *ktypes.ResourceInUseException
	switch {
	case err == nil:
		res.Created = true
	case errors.As(err, &inUse):
	default:
		return res, fmt.Errorf("create stream %s: %w", name, err)
	}
	for {
		out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *ktypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			// Just created and not visible yet.
		case err != nil:
			return res, fmt.Errorf("describe stream %s: %w", name, err)
		case out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive:
			res.Shards = aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount)
			return res, nil
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return res, fmt.Errorf("stream %s is not ACTIVE yet: %w", name, err)
		}
	}
}

// ensureStreamConsumers registers each named stream consumer on stream unless it exists, and waits until
// it is ACTIVE; nothing without api.
func ensureStreamConsumers(ctx context.Context, api fanout.API, stream string, names []string, log *zap.Logger) error {
	if api == nil {
		return nil
	}
	for _, name := range names {
		c, created, err := fanout.EnsureConsumer(ctx, api, stream, name, 0)
		if err != nil {
			return fmt.Errorf("stream consumer %s: %w", name, err)
		}
		log.Info("stream consumer ready", zap.String("stream", stream), zap.String("consumer", c.Name), zap.String("consumer_arn", c.ARN), zap.Bool("created", created))
	}
	return nil
}
