package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
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
		old := stopMargin
		stopMargin = 0
		defer func() { stopMargin = old }()
		hang := make(chan struct{})
		defer close(hang)
		start := time.Now()
		err := runGroup(context.Background(), zap.NewNop(), component{name: "w", run: func(context.Context) error { return boom }, stop: time.Millisecond},
			component{name: "stuck", run: func(context.Context) error { <-hang; return nil }, stop: 50 * time.Millisecond})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Fatalf("runGroup returned after %v, before the slowest component's stop bound (50ms)", took)
		}
	})
	t.Run("the grace is the slowest component's stop bound", func(t *testing.T) {
		parts := []component{{name: "a"}, {name: "worker", stop: 40 * time.Second}, {name: "b", stop: time.Second}}
		if g := grace(parts); g != 40*time.Second+stopMargin {
			t.Fatalf("grace = %v, want 40s + %v", g, stopMargin)
		}
		if g := grace([]component{{name: "a"}}); g != defaultStop+stopMargin {
			t.Fatalf("grace of a component without a bound = %v, want %v + %v", g, defaultStop, stopMargin)
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
		{"handoff shorter than failover", []string{"consume", "--http-listen", "", "--handoff-timeout", "1s", "--failover-time", "10s"},
			"--handoff-timeout (CLICKFLEET_HANDOFF_TIMEOUT): 1s is below --failover-time (10s): a deposed owner's final writes could then land after the new owner started"},
		{"archive's handoff shorter than failover", []string{"archive", "--http-listen", "", "--handoff-timeout", "1s", "--failover-time", "10s"},
			"--handoff-timeout (CLICKFLEET_HANDOFF_TIMEOUT): 1s is below --failover-time (10s): a deposed owner's final writes could then land after the new owner started"},
		{"bench drain's stack directory", []string{"bench", "drain", "--stack-dir", "/nonexistent-stack"},
			"--stack-dir (CLICKFLEET_STACK_DIR): bench: stack /nonexistent-stack: no server running there (no live PID in its *.pid files)"},
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

func TestTeardownClosesStageByStage(t *testing.T) {
	var order []string
	td := teardown{log: zap.NewNop()}
	step := func(name string) func() { return func() { order = append(order, name) } }
	td.add(stageClients, "redis", step("redis"))
	td.add(stageLookups, "geo", step("geo"))
	td.add(stageClients, "postgres", step("postgres"))
	td.add(stageProcessors, "actors", step("actors"))
	td.close()
	if got, want := strings.Join(order, ","), "actors,geo,redis,postgres"; got != want {
		t.Fatalf("closed %s, want %s", got, want)
	}
}

// Deprecated flags still work but are not listed: --help shows only what a new user should set.
func TestHelpListsNoDeprecatedFlag(t *testing.T) {
	root := newRootCommand()
	for _, c := range root.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Deprecated == "" {
				return
			}
			var out strings.Builder
			c.SetOut(&out)
			if err := c.Help(); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), "--"+f.Name) {
				t.Errorf("%s --help lists the deprecated --%s", c.Name(), f.Name)
			}
		})
	}
	consume, _, err := root.Find([]string{"consume"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"offer-event", "offer-min-percent"} {
		if f := consume.Flags().Lookup(name); f == nil || f.Deprecated == "" {
			t.Errorf("consume --%s is not marked deprecated", name)
		}
	}
}
