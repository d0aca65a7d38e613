package bench

import (
	"context"
	"testing"
	"time"
)

// TestReleaseDoesNotWaitForeverOnAnUndo: an undo whose server never answers (it waits for its context)
// is given up after releaseTimeout, and the undos added before it still run.
func TestReleaseDoesNotWaitForeverOnAnUndo(t *testing.T) {
	prev := releaseTimeout
	releaseTimeout = 200 * time.Millisecond
	t.Cleanup(func() { releaseTimeout = prev })
	ctx, cancel := context.WithCancel(context.Background())
	r := newResources(ctx, nil, nil)
	cancel() // an interrupted run still releases
	ranFirst := false
	r.onRelease(func(context.Context) { ranFirst = true })
	r.onRelease(func(ctx context.Context) { <-ctx.Done() })
	done := make(chan struct{})
	go func() { r.release(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("release still waiting on an undo 10 s later")
	}
	if !ranFirst {
		t.Error("the undo added first did not run after the one that timed out")
	}
}
