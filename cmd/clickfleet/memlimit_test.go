package main

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestLimitMemory: the soft limit is 90 % of the container's limit, and a GOMEMLIMIT the operator set wins.
func TestLimitMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	const container = 4 << 30
	for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	if _, err := limitMemory(memlimit.Limit(container)); err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(3865470566); got != want { // ⌊0.9 × 4 GiB⌋
		t.Errorf("soft memory limit %d, want %d (90 %% of 4 GiB)", got, want)
	}
	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if _, err := limitMemory(memlimit.Limit(container)); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("with GOMEMLIMIT set, the soft limit changed to %d (was %d)", got, prev)
	}
}
