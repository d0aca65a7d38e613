package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/settings"
)

// component is one part of a long-running command. run blocks until ctx ends — then it drains and
// returns nil — or until the part fails, and returns why. stop is the longest the part takes to return
// once ctx ended, from its own configured timeouts (0: defaultStop).
type component struct {
	name string
	run  func(ctx context.Context) error
	stop time.Duration
}

// defaultStop is the stop bound of a component that names none: one that only has to close a listener or
// leave a loop.
const defaultStop = 5 * time.Second

// stopMargin is added to the slowest component's stop bound: time for logs and the last returns.
var stopMargin = 5 * time.Second

// grace is how long runGroup waits for the components to return once they were asked to stop: the slowest
// one's bound plus stopMargin.
func grace(parts []component) time.Duration {
	longest := time.Duration(0)
	for _, p := range parts {
		longest = max(longest, cmp.Or(p.stop, defaultStop))
	}
	return longest + stopMargin
}

// runGroup runs every component until the first one returns (a run group: one run/interrupt pair per
// component, the context being the interrupt). When ctx ends (SIGTERM or SIGINT) every component drains
// and runGroup returns nil, or the first error one returned while draining. When a component returns
// first — with an error, or with nil although nothing asked it to stop — the others are stopped and
// runGroup returns that error naming the component, so the process exits non-zero instead of running on
// half broken. Either way the components get grace(parts) to return; one that hangs past it is named in
// the error and left behind (the process exits).
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
	var deadline <-chan time.Time
	stopping := gctx.Done()
	wait := grace(parts)
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
			stopping, deadline = nil, time.After(wait)
		case <-deadline:
			names := slices.Sorted(maps.Keys(running))
			log.Error("components did not stop in time; exiting anyway", zap.Strings("components", names), zap.Duration("grace", wait))
			if first == nil {
				first = fmt.Errorf("%s did not stop within %s", strings.Join(names, ", "), wait)
			}
			return first
		}
	}
	return first
}

// teardown closes a command's clients after its run group returned, in the one documented order of
// every long-running command:
//
//  1. stop taking work, 2. drain processors, 3. final checkpoints, 4. release leases — all inside the
//     run group: the worker component's lease coordinator does them when its context ends, bounded by
//     --shutdown-timeout (see lease.Coordinator.Run);
//  5. close what the processors used, in stages: the processors' own machinery (stageProcessors: the
//     actor system), then what they looked things up in (stageLookups: the geo resolver, its database),
//     then the clients (stageClients: Redis, PostgreSQL).
//
// Steps of one stage close in the order they were added.
type teardown struct {
	log   *zap.Logger
	steps [stageCount][]teardownStep
}

type teardownStep struct {
	name  string
	close func()
}

// The stages of teardown, in the order they close.
const (
	stageProcessors = iota
	stageLookups
	stageClients
	stageCount
)

// add registers close to run at stage.
func (t *teardown) add(stage int, name string, close func()) {
	t.steps[stage] = append(t.steps[stage], teardownStep{name, close})
}

// close runs every step, stage by stage.
func (t *teardown) close() {
	for _, stage := range t.steps {
		for _, s := range stage {
			t.log.Debug("closing", zap.String("part", s.name))
			s.close()
		}
	}
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

// workerFlags names the flag of each setting of consumer.Config (its lease.Config as Lease.* and, where a
// reason compares lease settings, by their own names) that addWorkerFlags declares, and of the settings a
// *consumer.ResourceError can carry: consume and archive share them.
var workerFlags = map[string]string{
	"Stream": "stream", "Lease.Table": "lease-table", "Lease.WorkerID": "worker-id",
	"Lease.FailoverTime": "failover-time", "FailoverTime": "failover-time",
	"Lease.RenewInterval": "renew-interval", "RenewInterval": "renew-interval",
	"Lease.TakeInterval": "take-interval", "Lease.MaxLeasesPerWorker": "max-leases", "Lease.Assignment": "lease-assignment",
	"Lease.MaxLeasesToStealAtOneTime": "max-steals", "Lease.HandoffTimeout": "handoff-timeout",
	"HandoffTimeout": "handoff-timeout", "Lease.ShutdownTimeout": "shutdown-timeout",
	"InitialPosition": "initial-position", "InitialTimestamp": "initial-timestamp", "MaxRecords": "max-records",
	"IdleTime": "idle-time", "MinCallInterval": "poll-interval", "ShardSyncInterval": "shard-sync-interval", "ParentPollInterval": "parent-poll-interval",
	"ReadMode": "read-mode", "ConsumerName": "efo-consumer-name", "FanOut": "efo-endpoint",
}

// consumeFlags are workerFlags and the flags of actors.Config's settings.
var consumeFlags = withFlags(workerFlags, map[string]string{
	"SessionsTable": "sessions-table", "OffersStream": "offers-stream", "ErrorsStream": "errors-stream",
	"Redis": "redis-url", "Prefix": "key-prefix", "FlushInterval": "flush-interval",
	"FlushMaxRecords": "flush-max-records", "PassivateAfter": "passivate-after", "SweepInterval": "sweep-interval",
	"WriteConcurrency": "write-concurrency", "Rules": "session-gap",
	"SessionUpdateInterval": "session-update-interval", "SessionCloseDelay": "session-close-delay",
	"WaitReplicas": "redis-wait-replicas", "WaitTimeout": "redis-wait-timeout", "CheckpointInterval": "checkpoint-interval",
})

// archiveFlags are the archive worker's: workerFlags.
var archiveFlags = workerFlags

// withFlags returns a copy of base with more added.
func withFlags(base, more map[string]string) map[string]string {
	out := maps.Clone(base)
	maps.Copy(out, more)
	return out
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
