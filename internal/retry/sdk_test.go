package retry_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// NoThrottleRetries gives throttling errors back at once and leaves every other error to the retryer it
// wraps.
func TestNoThrottleRetries(t *testing.T) {
	std := awsretry.NewStandard()
	r := retry.NoThrottleRetries(std)
	if _, ok := r.(aws.RetryerV2); !ok {
		t.Fatalf("%T lost the standard retryer's RetryerV2", r)
	}
	for _, code := range []string{"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException", "SlowDown"} {
		err := &smithy.GenericAPIError{Code: code}
		if !std.IsErrorRetryable(err) {
			t.Fatalf("the SDK's standard retryer does not retry %s: the premise of this test changed", code)
		}
		if r.IsErrorRetryable(err) {
			t.Errorf("%s is retried within the call", code)
		}
	}
	for _, err := range []error{&smithy.GenericAPIError{Code: "InternalFailure"}, &smithy.GenericAPIError{Code: "ResourceNotFoundException"},
		io.ErrUnexpectedEOF, errors.New("connection reset by peer")} {
		if got, want := r.IsErrorRetryable(err), std.IsErrorRetryable(err); got != want {
			t.Errorf("%v: retryable %v, the standard retryer says %v", err, got, want)
		}
	}
	if retry.NoThrottleRetries(nil) != nil {
		t.Error("a nil retryer did not stay nil")
	}
}

// As a per-call option of a Kinesis client, one throttled call is one call: the limits layer sees each
// GetShardIterator once, the refused ones included.
func TestNoThrottleRetriesPerCall(t *testing.T) {
	testenv.Kinesis(t)
	upstream := testenv.KinesisEmulatorURL(t)
	lim, err := faults.NewKinesisLimits(upstream, faults.LimitsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim)
	defer srv.Close()
	stream := testenv.Stream(t, kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(upstream) }), 1)
	via := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	noRetry := func(o *kinesis.Options) { o.Retryer = retry.NoThrottleRetries(o.Retryer) }
	refused := 0
	const calls = 8 // 5 per second per shard
	for range calls {
		_, err := via.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeLatest}, noRetry)
		var pt *ktypes.ProvisionedThroughputExceededException
		switch {
		case errors.As(err, &pt):
			refused++
		case err != nil:
			t.Fatal(err)
		}
	}
	st := lim.Stats("GetShardIterator", stream, "shardId-000000000000")
	if refused == 0 || st.Calls != calls || st.Throttled != refused {
		t.Fatalf("%d calls, %d refused; the layer saw %d calls, %d throttled: want each call once", calls, refused, st.Calls, st.Throttled)
	}
}
