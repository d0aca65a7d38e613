// Command clickfleet is the clickstream pipeline's one binary: set-up, the click generator, the stream
// reader and, as they land, the consumer workers and the ingest API. Every flag can also be set with a
// CLICKFLEET_* environment variable (see envName); a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := limitMemory(memlimit.FromCgroup); err != nil {
		fmt.Fprintln(os.Stderr, "clickfleet: warning: GOMEMLIMIT not set from the container's memory limit:", err)
	}
	err := newRootCommand().ExecuteContext(ctx)
	if err == nil {
		return
	}
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintln(os.Stderr, "clickfleet:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "clickfleet:", err)
	os.Exit(1)
}
