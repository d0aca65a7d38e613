package scale

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Sentinel errors of Stream.Resize. Match them with errors.Is.
var (
	// ErrRefused: the API refused the resize itself — beyond twice or below half the open shards, more
	// than 10 calls in 24 hours, beyond the account's shard limit, or a stream that cannot be resized
	// (LimitExceededException, InvalidArgumentException, ValidationException). Asking again at once
	// would be refused again.
	ErrRefused = errors.New("scale: UpdateShardCount refused")
	// ErrBusy: the stream is being changed (ResourceInUseException): ask again once it is ACTIVE.
	ErrBusy = errors.New("scale: stream is not ACTIVE")
)

// KinesisAPI holds the Kinesis methods the Stream uses; *kinesis.Client implements it.
type KinesisAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	UpdateShardCount(ctx context.Context, in *kinesis.UpdateShardCountInput, opts ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// Stream reads a stream's state and resizes it.
type Stream struct {
	API  KinesisAPI
	Name string
}

// State returns the stream's status, capacity mode and open shard count (DescribeStreamSummary).
func (s *Stream) State(ctx context.Context) (StreamState, error) {
	out, err := s.API.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.Name)})
	if err != nil {
		return StreamState{}, fmt.Errorf("describe stream %s: %w", s.Name, err)
	}
	d := out.StreamDescriptionSummary
	if d == nil {
		return StreamState{}, fmt.Errorf("describe stream %s: no description in the answer", s.Name)
	}
	st := StreamState{Status: string(d.StreamStatus), OpenShards: int(aws.ToInt32(d.OpenShardCount))}
	if d.StreamModeDetails != nil && d.StreamModeDetails.StreamMode == ktypes.StreamModeOnDemand {
		st.OnDemand = true
	}
	return st, nil
}

// Resize asks for target open shards with UNIFORM_SCALING, once: the SDK's retries are off for this
// call (it would retry a LimitExceededException as throttling, and every attempt counts against the
// stream's limits); the caller decides again at its next interval. A refusal wraps ErrRefused, a stream
// in the middle of a change ErrBusy; both wrap the API's error too.
func (s *Stream) Resize(ctx context.Context, target int) error {
	_, err := s.API.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(s.Name),
		TargetShardCount: aws.Int32(int32(target)), ScalingType: ktypes.ScalingTypeUniformScaling},
		func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		return nil
	}
	var (
		limit    *ktypes.LimitExceededException
		invalid  *ktypes.InvalidArgumentException
		validate *ktypes.ValidationException
		inUse    *ktypes.ResourceInUseException
	)
	switch {
	case errors.As(err, &limit), errors.As(err, &invalid), errors.As(err, &validate):
		return fmt.Errorf("resize stream %s to %d shards: %w: %w", s.Name, target, ErrRefused, err)
	case errors.As(err, &inUse):
		return fmt.Errorf("resize stream %s to %d shards: %w: %w", s.Name, target, ErrBusy, err)
	}
	return fmt.Errorf("resize stream %s to %d shards: %w", s.Name, target, err)
}
