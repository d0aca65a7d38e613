package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/clickfleet/clickfleet/internal/retry"
)

func TestIsPermanentTable(t *testing.T) {
	api := func(code string, fault smithy.ErrorFault) error {
		return fmt.Errorf("operation X: %w", &smithy.GenericAPIError{Code: code, Message: "m", Fault: fault})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("connection reset by peer"), false},
		{"cancelled", fmt.Errorf("put: %w", context.Canceled), false},
		{"deadline", context.DeadlineExceeded, false},
		{"marked", fmt.Errorf("user u: %w", retry.Permanent(errors.New("malformed hash"))), true},
		{"unknown server fault", api("SomethingNewException", smithy.FaultServer), false},
		{"unknown code, unknown fault", api("SomethingNewException", smithy.FaultUnknown), false},
		// Not listed as permanent and not retryable for the SDK either: transient (the callers log each retry).
		{"unknown client fault", api("SomethingNewException", smithy.FaultClient), false},
		{"pg undefined table", &pgconn.PgError{Code: "42P01"}, true},
		{"pg auth failed", &pgconn.PgError{Code: "28P01"}, true},
		{"pg admin shutdown", &pgconn.PgError{Code: "57P01"}, false},
		{"pg connection failure", &pgconn.PgError{Code: "08006"}, false},
		{"pg serialization", &pgconn.PgError{Code: "40001"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkPermanent(t, c.err, c.want) })
	}
	if retry.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

// checkPermanent fails the test unless IsPermanent(err) is want.
func checkPermanent(t *testing.T, err error, want bool) {
	t.Helper()
	if got := retry.IsPermanent(err); got != want {
		t.Fatalf("IsPermanent(%v) = %v, want %v", err, got, want)
	}
}

// apiError is an AWS API error as the SDK returns it: the code, the fault the service models (S3's
// unmodeled codes come as FaultUnknown) and, when status is set, the HTTP response it arrived in.
func apiError(code string, fault smithy.ErrorFault, status int) error {
	var err error = &smithy.GenericAPIError{Code: code, Message: "m", Fault: fault}
	if status != 0 {
		err = &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}
	}
	return fmt.Errorf("operation error X: %w", err)
}

// AWS errors the SDK's standard retryer retries are transient whatever fault they report: throttling,
// request timeouts, 429 and 5xx answers, and the conflicts AWS documents as retryable.
func TestIsPermanentAWSTransient(t *testing.T) {
	cases := []awsCase{
		// AWS's answer when two conditional writes to one S3 key race; the PutObject docs say retry.
		{"S3 conditional request conflict", "ConditionalRequestConflict", 409},
		{"S3 conditional request conflict without a status", "ConditionalRequestConflict", 0},
		{"DynamoDB transaction conflict", "TransactionConflictException", 400},
		{"DynamoDB replicated write conflict", "ReplicatedWriteConflictException", 400},
		{"CloudWatch concurrent modification", "ConcurrentModificationException", 429},
		{"table being created", "ResourceInUseException", 400},
		{"Kinesis KMS throttling", "KMSThrottlingException", 400},
		{"throttling", "Throttling", 400},
		{"throttling exception", "ThrottlingException", 400},
		{"throttled exception", "ThrottledException", 400},
		{"request throttled exception", "RequestThrottledException", 400},
		{"too many requests", "TooManyRequestsException", 429},
		{"provisioned throughput exceeded", "ProvisionedThroughputExceededException", 400},
		{"transaction in progress", "TransactionInProgressException", 400},
		{"request limit exceeded", "RequestLimitExceeded", 400},
		{"bandwidth limit exceeded", "BandwidthLimitExceeded", 400},
		{"Kinesis limit exceeded", "LimitExceededException", 400},
		{"request throttled", "RequestThrottled", 400},
		{"S3 slow down", "SlowDown", 503},
		{"prior request not complete", "PriorRequestNotComplete", 400},
		{"EC2 throttled", "EC2ThrottledException", 400},
		{"request timeout", "RequestTimeout", 400},
		{"request timeout exception", "RequestTimeoutException", 400},
		{"unmodeled 429", "UnknownError", 429},
		{"internal error 500", "InternalError", 500},
		{"bad gateway", "UnknownError", 502},
		{"service unavailable", "ServiceUnavailable", 503},
		{"gateway timeout", "UnknownError", 504},
		// A 5xx is the server's fault whatever code it carries.
		{"a permanent code answered with 503", "AccessDenied", 503},
	}
	checkAWSCodes(t, cases, false)
}

// The AWS codes listed as permanent: a missing resource, a denied or unauthenticated call, a rejected
// request, a condition a retry cannot change, a KMS key that cannot be used.
func TestIsPermanentAWSPermanentList(t *testing.T) {
	cases := []awsCase{
		{"missing stream or table", "ResourceNotFoundException", 400},
		{"missing bucket", "NoSuchBucket", 404},
		{"missing key", "NoSuchKey", 404},
		{"HEAD of a missing key", "NotFound", 404},
		{"missing table (legacy)", "TableNotFoundException", 400},
		{"missing index", "IndexNotFoundException", 400},
		{"access denied", "AccessDeniedException", 400},
		{"S3 access denied", "AccessDenied", 403},
		{"unknown access key", "InvalidAccessKeyId", 403},
		{"bad signature", "SignatureDoesNotMatch", 403},
		{"unrecognized client", "UnrecognizedClientException", 400},
		{"expired token", "ExpiredTokenException", 400},
		{"validation", "ValidationException", 400},
		{"invalid argument", "InvalidArgumentException", 400},
		{"S3 invalid request", "InvalidRequest", 400},
		{"S3 entity too large", "EntityTooLarge", 400},
		{"condition failed", "ConditionalCheckFailedException", 400},
		{"transaction cancelled", "TransactionCanceledException", 400},
		{"expired iterator", "ExpiredIteratorException", 400},
		{"item collection too large", "ItemCollectionSizeLimitExceededException", 400},
		{"bucket owned by someone else", "BucketAlreadyExists", 409},
		{"KMS access denied", "KMSAccessDeniedException", 400},
		{"KMS key disabled", "KMSDisabledException", 400},
		{"KMS key missing", "KMSNotFoundException", 400},
		{"CloudWatch invalid parameter", "InvalidParameterValueException", 400},
	}
	checkAWSCodes(t, cases, true)
	for i := range cases {
		cases[i].name, cases[i].status = cases[i].name+" (no status)", 0
	}
	checkAWSCodes(t, cases, true)
}

// awsCase is an AWS error code answered with an HTTP status (0: none known).
type awsCase struct {
	name   string
	code   string
	status int
}

// checkAWSCodes checks IsPermanent is want for each case, reported as a client fault and as an unknown one.
func checkAWSCodes(t *testing.T, cases []awsCase, want bool) {
	t.Helper()
	for _, c := range cases {
		for _, fault := range []smithy.ErrorFault{smithy.FaultClient, smithy.FaultUnknown} {
			t.Run(fmt.Sprintf("%s/%s", c.name, fault), func(t *testing.T) { checkPermanent(t, apiError(c.code, fault, c.status), want) })
		}
	}
}

func TestBackoffBoundsAndCap(t *testing.T) {
	b := retry.Backoff{Initial: 40 * time.Millisecond, Max: 300 * time.Millisecond}
	upper := 40 * time.Millisecond
	for i := range 10 {
		d := b.Next()
		if d < upper/2 || d > upper {
			t.Fatalf("pause %d = %s, want within [%s, %s]", i, d, upper/2, upper)
		}
		upper = min(2*upper, 300*time.Millisecond)
	}
	b.Reset()
	if d := b.Next(); d > 40*time.Millisecond {
		t.Fatalf("after Reset the pause is %s, want at most the initial 40ms", d)
	}
	var zero retry.Backoff
	if d := zero.Next(); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("zero Backoff's first pause = %s, want within [50ms, 100ms]", d)
	}
}

func TestDo(t *testing.T) {
	fast := retry.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	transient := errors.New("connection refused")
	t.Run("retries transient errors until success", func(t *testing.T) {
		calls, retries := 0, 0
		err := retry.Do(context.Background(), retry.Policy{Backoff: fast, OnRetry: func(int, time.Duration, error) { retries++ }},
			func(context.Context) error {
				if calls++; calls < 4 {
					return transient
				}
				return nil
			})
		if err != nil || calls != 4 || retries != 3 {
			t.Fatalf("err %v after %d calls and %d retries, want nil after 4 and 3", err, calls, retries)
		}
	})
	t.Run("a permanent error ends it at once", func(t *testing.T) {
		calls := 0
		perm := &smithy.GenericAPIError{Code: "ResourceNotFoundException", Fault: smithy.FaultClient}
		err := retry.Do(context.Background(), retry.Policy{Backoff: fast}, func(context.Context) error { calls++; return perm })
		if !errors.Is(err, perm) || calls != 1 {
			t.Fatalf("err %v after %d calls, want the permanent error after 1", err, calls)
		}
	})
	t.Run("Stop ends it", func(t *testing.T) {
		lost := errors.New("lease lost")
		calls := 0
		err := retry.Do(context.Background(), retry.Policy{Backoff: fast, Stop: func(err error) bool { return errors.Is(err, lost) }},
			func(context.Context) error { calls++; return lost })
		if !errors.Is(err, lost) || calls != 1 {
			t.Fatalf("err %v after %d calls, want the stop error after 1", err, calls)
		}
	})
	t.Run("attempts bound it", func(t *testing.T) {
		calls := 0
		err := retry.Do(context.Background(), retry.Policy{Backoff: fast, Attempts: 3}, func(context.Context) error { calls++; return transient })
		if !errors.Is(err, transient) || calls != 3 {
			t.Fatalf("err %v after %d calls, want the last error after 3", err, calls)
		}
	})
	t.Run("the context's cause ends it", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		why := errors.New("shard handed off")
		calls := 0
		err := retry.Do(ctx, retry.Policy{Backoff: retry.Backoff{Initial: time.Hour, Max: time.Hour}}, func(context.Context) error {
			if calls++; calls == 1 {
				time.AfterFunc(10*time.Millisecond, func() { cancel(why) })
			}
			return transient
		})
		if !errors.Is(err, why) || calls != 1 {
			t.Fatalf("err %v after %d calls, want the cause after 1", err, calls)
		}
	})
}
