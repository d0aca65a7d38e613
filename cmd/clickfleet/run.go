package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/settings"
)

// component is one part of a long-running command. run blocks until ctx ends — then it drains and
// returns nil — or until the part fails, and returns why.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// stopGrace bounds how long the other components get to stop after one failed; a part that hangs then
// does not keep a failed process alive.
var stopGrace = 30 * time.Second

// runGroup runs every component until the first one returns (a run group: one run/interrupt pair per
// component, the context being the interrupt). When ctx ends (SIGTERM or SIGINT) every component drains
// and runGroup returns nil, or the first error one returned while draining. When a component returns
// first — with an error, or with nil although nothing asked it to stop — the others are stopped, given
// stopGrace to return, and runGroup returns that error naming the component, so the process exits
// non-zero instead of running on half broken.
func runGroup(ctx context.Context, log *zap.Logger, parts ...component) error {
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(parts))
	running := map[string]bool{}
	for _, p := range parts {
		running[p.name] = true
		go func() {
			err := p.run(gctx)
			asked := gctx.Err() != nil
			switch {
			case err == nil && !asked:
				err = errors.New("stopped without being asked to")
			case err != nil && asked && errors.Is(err, context.Canceled):
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", p.name, err)
			}
			results <- result{p.name, err}
		}()
	}
	var first error
	var grace <-chan time.Time
	stopping := gctx.Done()
	for len(running) > 0 {
		select {
		case r := <-results:
			delete(running, r.name)
			if r.err != nil && first == nil {
				first = r.err
				if ctx.Err() == nil {
					log.Error("a component failed; stopping the others", zap.String("component", r.name), zap.Error(r.err))
				}
			}
			cancel(first)
		case <-stopping:
			stopping, grace = nil, time.After(stopGrace)
		case <-grace:
			names := make([]string, 0, len(running))
			for n := range running {
				names = append(names, n)
			}
			log.Error("components did not stop in time; exiting anyway", zap.Strings("components", names), zap.Duration("grace", stopGrace))
			if first == nil {
				first = fmt.Errorf("%s did not stop within %s", strings.Join(names, ", "), stopGrace)
			}
			return first
		}
	}
	return first
}

// withSettingHint adds to an error that wraps a *consumer.ResourceError the flag and variable that name
// the resource (flags maps ResourceError.Setting to a flag name) and what to do: create a missing
// resource with 'clickfleet setup', or check the permissions of a denied one.
func withSettingHint(err error, flags map[string]string) error {
	var re *consumer.ResourceError
	if err == nil || !errors.As(err, &re) {
		return err
	}
	flag, ok := flags[re.Setting]
	if !ok {
		return err
	}
	what := "check that it exists and that this process may use it"
	var nf interface{ ErrorCode() string }
	if errors.As(re.Err, &nf) && (strings.Contains(nf.ErrorCode(), "NotFound") || strings.HasPrefix(nf.ErrorCode(), "NoSuch")) {
		what = "create it with 'clickfleet setup'"
	}
	return fmt.Errorf("%w\n  the %s is set by --%s (%s): %s, or point the setting at one that exists", err, re.Kind, flag, envName(flag), what)
}

// consumeFlags names the flag of each setting of consume's libraries (consumer.Config, its lease.Config
// as Lease.* and, where a reason compares lease settings, by their own names, actors.Config), and of
// the settings a *consumer.ResourceError can carry.
var consumeFlags = map[string]string{
	"Stream": "stream", "Lease.Table": "lease-table", "Lease.WorkerID": "worker-id",
	"Lease.FailoverTime": "failover-time", "FailoverTime": "failover-time",
	"Lease.RenewInterval": "renew-interval", "RenewInterval": "renew-interval",
	"Lease.TakeInterval": "take-interval", "Lease.MaxLeasesPerWorker": "max-leases",
	"Lease.MaxLeasesToStealAtOneTime": "max-steals", "Lease.HandoffTimeout": "handoff-timeout",
	"Lease.ShutdownTimeout": "shutdown-timeout", "InitialPosition": "initial-position",
	"InitialTimestamp": "initial-timestamp", "MaxRecords": "max-records", "IdleTime": "idle-time",
	"ShardSyncInterval": "shard-sync-interval", "ParentPollInterval": "parent-poll-interval",
	"SessionsTable": "sessions-table", "OffersStream": "offers-stream", "ErrorsStream": "errors-stream",
	"Redis": "redis-url", "Prefix": "key-prefix", "FlushInterval": "flush-interval",
	"FlushMaxRecords": "flush-max-records", "PassivateAfter": "passivate-after", "SweepInterval": "sweep-interval",
	"WriteConcurrency": "write-concurrency", "Rules": "session-gap",
	"SessionUpdateInterval": "session-update-interval", "SessionCloseDelay": "session-close-delay",
	"WaitReplicas": "redis-wait-replicas", "WaitTimeout": "redis-wait-timeout", "CheckpointInterval": "checkpoint-interval",
}

func consumeError(err error) error { return withSettingHint(err, consumeFlags) }

// settingUsage returns err as a usage error (exit 2). When err holds a *settings.Error whose field flags
// names, the message starts with that flag and its variable, and the fields the reason mentions are
// named as flags too; otherwise the error is kept as it is.
func settingUsage(err error, flags map[string]string) error {
	var se *settings.Error
	if !errors.As(err, &se) {
		return usageError{err}
	}
	names := make(map[string]string, len(flags))
	for field, flag := range flags {
		names[field] = "--" + flag
	}
	field, reason, ok := se.Rename(names)
	if !ok {
		return usageError{err}
	}
	flag := strings.TrimPrefix(field, "--")
	return usagef("--%s (%s): %s", flag, envName(flag), reason)
}
