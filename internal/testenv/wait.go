package testenv

import (
	"testing"
	"time"
)

// WaitFor polls ok every 20 ms until it returns true, and fails the test when it has not within timeout,
// saying what it waited for. Every wait of a test has a deadline; give loaded emulators generous ones.
func WaitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	WaitForState(t, what, timeout, func() (bool, string) { return ok(), "" })
}

// WaitForState is WaitFor for a condition that also describes the state it saw; the last description
// is in the failure message.
func WaitForState(t testing.TB, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			if state != "" {
				t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
