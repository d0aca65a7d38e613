package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// blocker runs until its context ends, then returns nil; it records that it was stopped.
func blocker(name string, stopped chan<- string) component {
	return component{name: name, run: func(ctx context.Context) error {
		<-ctx.Done()
		stopped <- name
		return nil
	}}
}

func TestRunGroup(t *testing.T) {
	boom := errors.New("boom")
	t.Run("the first failure stops the others and is returned, named", func(t *testing.T) {
		stopped := make(chan string, 2)
		err := runGroup(context.Background(), zap.NewNop(), blocker("a", stopped),
			component{name: "worker", run: func(context.Context) error { return boom }}, blocker("b", stopped))
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "worker: ") {
			t.Fatalf("err = %v, want boom named after its component", err)
		}
		if len(stopped) != 2 {
			t.Fatalf("%d of 2 other components stopped", len(stopped))
		}
	})
	t.Run("a component ending unasked is a failure", func(t *testing.T) {
		stopped := make(chan string, 1)
		err := runGroup(context.Background(), zap.NewNop(), blocker("a", stopped), component{name: "sync", run: func(context.Context) error { return nil }})
		if err == nil || !strings.Contains(err.Error(), "sync: stopped without being asked to") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a signal drains every component and returns nil", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan string, 2)
		time.AfterFunc(10*time.Millisecond, cancel)
		canceled := component{name: "c", run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
		if err := runGroup(ctx, zap.NewNop(), blocker("a", stopped), blocker("b", stopped), canceled); err != nil {
			t.Fatalf("err = %v, want nil after a clean stop", err)
		}
	})
	t.Run("an error while draining is returned", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := runGroup(ctx, zap.NewNop(), component{name: "w", run: func(ctx context.Context) error { <-ctx.Done(); return boom }})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	})
	t.Run("a component that does not stop is left after the grace", func(t *testing.T) {
		old := stopGrace
		stopGrace = 50 * time.Millisecond
		defer func() { stopGrace = old }()
		hang := make(chan struct{})
		defer close(hang)
		err := runGroup(context.Background(), zap.NewNop(), component{name: "w", run: func(context.Context) error { return boom }},
			component{name: "stuck", run: func(context.Context) error { <-hang; return nil }})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	})
}

// A library's setting error reaches the user as the flag and its variable, with the other settings its
// reason compares named as flags too; the libraries word it in their own field names.
func TestSettingErrorsNameTheFlags(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"lease setting through the consumer", []string{"consume", "--processor", "count", "--http-listen", "", "--failover-time", "10s", "--renew-interval", "8s"},
			"--renew-interval (CLICKFLEET_RENEW_INTERVAL): 8s must be positive and at most --failover-time/2 (5s)"},
		{"actors setting", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--flush-max-records", "-1"},
			"--flush-max-records (CLICKFLEET_FLUSH_MAX_RECORDS): must not be negative, got -1"},
		{"session row setting", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--session-close-delay", "-1s"},
			"--session-close-delay (CLICKFLEET_SESSION_CLOSE_DELAY): must not be negative, got -1s"},
		{"session update interval", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--session-update-interval", "100us"},
			"--session-update-interval (CLICKFLEET_SESSION_UPDATE_INTERVAL): must be at least 1ms, got 100µs"},
		{"replicas to wait for (actors)", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--redis-wait-replicas", "-1"},
			"--redis-wait-replicas (CLICKFLEET_REDIS_WAIT_REPLICAS): must not be negative, got -1"},
		{"replicas to wait for (count)", []string{"consume", "--processor", "count", "--http-listen", "", "--redis-wait-replicas", "-2"},
			"--redis-wait-replicas (CLICKFLEET_REDIS_WAIT_REPLICAS): must not be negative, got -2"},
		{"wait timeout", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--redis-wait-replicas", "1", "--redis-wait-timeout", "0s"},
			"--redis-wait-timeout (CLICKFLEET_REDIS_WAIT_TIMEOUT): must be positive, got 0s"},
		{"count checkpoint interval", []string{"consume", "--processor", "count", "--http-listen", "", "--checkpoint-interval", "-1s"},
			"--checkpoint-interval (CLICKFLEET_CHECKPOINT_INTERVAL): must not be negative, got -1s"},
		{"route predicate", []string{"consume", "--http-listen", "", "--geo-mmdb", "", "--route", "p=s:prce > 100"},
			`--route (CLICKFLEET_ROUTE): route "p": line 1, column 1 (offset 0): undeclared reference to 'prce' (in container '')`},
		{"route flag syntax", []string{"setup", "--route", "p:s"}, `--route (CLICKFLEET_ROUTE): "p:s" is not NAME=STREAM:EXPR`},
		{"route type error in setup", []string{"setup", "--route", `p=s:price == "x"`},
			`--route (CLICKFLEET_ROUTE): route "p": line 1, column 7 (offset 6): found no matching overload for '_==_' applied to '(double, string)'`},
		{"offer flags beside routes", []string{"consume", "--http-listen", "", "--route", "p=s:true", "--offer-event", "X"},
			"--offer-event and --offer-min-percent shape the default route only; with --route or --routes-file write the offers route's predicate instead"},
		{"ingest setting comparing others", []string{"ingest", "--allow-anonymous", "--write-timeout", "1s"},
			"--write-timeout (CLICKFLEET_WRITE_TIMEOUT): 1s must be at least --put-attempts × --put-timeout (10s), or answers would be cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCommand()
			var out strings.Builder
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			var u usageError
			if !errors.As(err, &u) || err.Error() != tc.want {
				t.Fatalf("err = %v (usage error: %v)\nwant %s", err, errors.As(err, &u), tc.want)
			}
		})
	}
}
