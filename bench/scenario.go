package bench

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lease"
)

// scenarioRun is what every run of a scenario has: the clients, its id (the name of its stream and the
// stem of its other resources' names), the prefix of its Redis keys, and what it created.
type scenarioRun struct {
	kin    KinesisAPI
	ddb    DynamoDBAPI
	id     string
	prefix string
	stack  *resources
}

func newScenarioRun(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, id string) scenarioRun {
	return scenarioRun{kin: kin, ddb: ddb, id: id, prefix: id + ":", stack: newResources(ctx, kin, ddb)}
}

// runSteps runs the steps of a scenario in order until one fails.
func runSteps(ctx context.Context, steps ...func(context.Context) error) error {
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// resources are what one scenario run creates — streams, tables, a bucket, worker fleets — each with
// its undo. release runs the undos in reverse order, with a context that outlives the run's, so a
// cancelled run still deletes what it created.
type resources struct {
	kin  KinesisAPI
	ddb  DynamoDBAPI
	bg   context.Context
	undo []func(context.Context)
}

func newResources(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI) *resources {
	return &resources{kin: kin, ddb: ddb, bg: context.WithoutCancel(ctx)}
}

// onRelease adds an undo; it runs before every undo added earlier.
func (r *resources) onRelease(f func(ctx context.Context)) { r.undo = append(r.undo, f) }

// releaseTimeout bounds each undo: a server that takes a delete and never answers (a hung emulator)
// leaves that resource behind instead of holding the process after its run is over or interrupted.
var releaseTimeout = 30 * time.Second

// release runs the undos, the latest first, each within releaseTimeout.
func (r *resources) release() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(r.bg, releaseTimeout)
		r.undo[i](ctx)
		cancel()
	}
	r.undo = nil
}

// stream creates a stream of shards and deletes it, with its stream consumers (efo), at release.
func (r *resources) stream(ctx context.Context, name string, shards int32) error {
	if _, err := provision.EnsureStream(ctx, r.kin, name, shards); err != nil {
		return err
	}
	r.onRelease(func(ctx context.Context) {
		r.kin.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	return nil
}

// leaseTable creates a lease table and deletes it at release.
func (r *resources) leaseTable(ctx context.Context, name string) error {
	if err := lease.EnsureTable(ctx, r.ddb, name); err != nil {
		return err
	}
	r.onRelease(func(ctx context.Context) { _ = lease.DeleteTables(ctx, r.ddb, name) })
	return nil
}

// sessionsTable creates a sessions table and deletes it at release.
func (r *resources) sessionsTable(ctx context.Context, name string) error {
	if _, err := provision.EnsureSessionsTable(ctx, r.ddb, name); err != nil {
		return err
	}
	r.onRelease(func(ctx context.Context) { r.deleteTable(ctx, name) })
	return nil
}

func (r *resources) deleteTable(ctx context.Context, name string) {
	r.ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
}

// outputStreams creates the actors processor's offers and errors streams of t and deletes them at
// release. The offers stream gets the input's shard count: most clicks of the lab's shape make an offer,
// so a one-shard offers stream (1,000 records/s on AWS) would refuse most of a drain's offers and measure
// the resends, not the processor. Errors are rare: one shard.
func (r *resources) outputStreams(ctx context.Context, t actorTargets, inputShards int32) error {
	if err := r.stream(ctx, t.offers, inputShards); err != nil {
		return err
	}
	return r.stream(ctx, t.errors, 1)
}

// actorTargets creates the sessions table and the output streams the actors processor of run id
// writes to, and deletes them at release.
func (r *resources) actorTargets(ctx context.Context, id string, inputShards int32) (actorTargets, error) {
	t := actorTargetsOf(id)
	if err := r.sessionsTable(ctx, t.sessions); err != nil {
		return t, err
	}
	return t, r.outputStreams(ctx, t, inputShards)
}

// stopFleets stops every worker of the fleets cleanly at release (the later fleet first).
func (r *resources) stopFleets(fleets ...*Fleet) {
	for _, f := range fleets {
		r.onRelease(func(context.Context) { f.StopAll() })
	}
}

// actorTargets are the names of what the actors processor of one run writes to: its sessions table and
// its offers and errors streams, named after the run's id.
type actorTargets struct {
	sessions, offers, errors string
}

func actorTargetsOf(id string) actorTargets {
	return actorTargets{sessions: id + "-sessions", offers: id + "-offers", errors: id + "-errors"}
}

// args are the worker flags that name the targets.
func (t actorTargets) args() []string {
	return []string{"--sessions-table", t.sessions, "--offers-stream", t.offers, "--errors-stream", t.errors}
}

// orTempDir returns dir, or a new temporary directory named after pattern when dir is "".
func orTempDir(dir, pattern string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return os.MkdirTemp("", pattern)
}

// orNop returns progress, or a func that drops the lines when progress is nil.
func orNop(progress func(string)) func(string) {
	if progress == nil {
		return func(string) {}
	}
	return progress
}

// setDefault sets *v to def when it is the zero value.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
