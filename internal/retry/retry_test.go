package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/smithy-go"
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
		{"missing stream", api("ResourceNotFoundException", smithy.FaultClient), true},
		{"missing bucket", api("NoSuchBucket", smithy.FaultClient), true},
		{"access denied", api("AccessDeniedException", smithy.FaultUnknown), true},
		{"S3 access denied", api("AccessDenied", smithy.FaultUnknown), true},
		{"validation", api("ValidationException", smithy.FaultUnknown), true},
		{"kms disabled", api("KMSDisabledException", smithy.FaultUnknown), true},
		{"unknown client fault", api("SomethingNewException", smithy.FaultClient), true},
		{"unknown server fault", api("SomethingNewException", smithy.FaultServer), false},
		{"unknown code, unknown fault", api("SomethingNewException", smithy.FaultUnknown), false},
		{"throttled (client fault)", api("ProvisionedThroughputExceededException", smithy.FaultClient), false},
		{"kinesis limit", api("LimitExceededException", smithy.FaultClient), false},
		{"kms throttled", api("KMSThrottlingException", smithy.FaultClient), false},
		{"S3 slow down", api("SlowDown", smithy.FaultServer), false},
		{"table being created", api("ResourceInUseException", smithy.FaultClient), false},
		{"pg undefined table", &pgconn.PgError{Code: "42P01"}, true},
		{"pg auth failed", &pgconn.PgError{Code: "28P01"}, true},
		{"pg admin shutdown", &pgconn.PgError{Code: "57P01"}, false},
		{"pg connection failure", &pgconn.PgError{Code: "08006"}, false},
		{"pg serialization", &pgconn.PgError{Code: "40001"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := retry.IsPermanent(c.err); got != c.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
	if retry.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
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
