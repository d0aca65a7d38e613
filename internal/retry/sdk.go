package retry

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
)

// NoThrottleRetries wraps an AWS SDK retryer so that a throttling error (the SDK's own list:
// ProvisionedThroughputExceededException, ThrottlingException, LimitExceededException, SlowDown …) comes
// back to the caller from the first attempt instead of being retried within the call; other errors are
// retried as r retries them. It is for loops that pace their calls themselves, such as a shard's
// GetRecords: the SDK's waits would hide the throttle from them, and its extra attempts would spend the
// very budget they keep to. Use it per call:
//
//	api.GetRecords(ctx, in, func(o *kinesis.Options) { o.Retryer = retry.NoThrottleRetries(o.Retryer) })
//
// A nil r stays nil.
func NoThrottleRetries(r aws.Retryer) aws.Retryer {
	switch r := r.(type) {
	case nil:
		return nil
	case aws.RetryerV2:
		return noThrottleV2{r}
	default:
		return noThrottle{r}
	}
}

type noThrottle struct{ aws.Retryer }

// IsErrorRetryable implements aws.Retryer.
func (n noThrottle) IsErrorRetryable(err error) bool {
	return !isThrottle(err) && n.Retryer.IsErrorRetryable(err)
}

type noThrottleV2 struct{ aws.RetryerV2 }

// IsErrorRetryable implements aws.Retryer.
func (n noThrottleV2) IsErrorRetryable(err error) bool {
	return !isThrottle(err) && n.RetryerV2.IsErrorRetryable(err)
}

// isThrottle reports whether the SDK counts err as throttling.
func isThrottle(err error) bool {
	return awsretry.IsErrorThrottles(awsretry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}
