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
