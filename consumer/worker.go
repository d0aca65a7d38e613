package consumer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
)

// Worker is one process of the consumer fleet: a lease coordinator, a shard syncer, and one reader per
// held shard driving that shard's Processor.
type Worker struct {
	cfg     Config
	api     KinesisAPI
	coord   *lease.Coordinator
	table   *lease.Table
	syncer  *shardSyncer
	fan     *fanOut // nil in the polling read mode
	log     *zap.Logger
	metrics *metrics
	syncNow chan struct{}
	lags    lags
	meter   *loadMeter
	// processed counts the records the processors accepted.
	processed atomic.Int64
	ready     atomic.Bool
	running   atomic.Bool

	fatalMu sync.Mutex
	fatal   error                   // the first permanent failure; Run returns it
	stop    context.CancelCauseFunc // ends Run's context
}

// New validates cfg and returns a worker reading cfg.Stream through api and keeping leases in db. It does
// no I/O and starts no goroutines.
func New(api KinesisAPI, db lease.DynamoDBAPI, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, api: api, syncNow: make(chan struct{}, 1), meter: newLoadMeter()}
	m, err := newMetrics(cfg.Registerer, w.Lag)
	if err != nil {
		return nil, err
	}
	w.metrics = m
	if w.fan, err = newFanOut(api, cfg); err != nil {
		return nil, err
	}
	lc := cfg.Lease
	lc.Process = w.run
	if lc.Load == nil {
		lc.Load = w.meter.load
	}
	coord, err := lease.New(db, lc)
	if err != nil {
		return nil, err
	}
	w.coord, w.table = coord, coord.Table()
	if err := registerShardMetrics(cfg.Registerer, coord.WorkerID(), cfg.Stream, cfg.Lease.Table, &w.lags); err != nil {
		return nil, err
	}
	w.log = cfg.Logger.Named("consumer").With(zap.String("worker_id", coord.WorkerID()))
	initial := lease.TrimHorizon
	switch cfg.InitialPosition {
	case Latest:
		initial = lease.Latest
	case AtTimestamp:
		initial = lease.AtTimestamp
	}
	w.syncer = &shardSyncer{api: api, stream: cfg.Stream, table: w.table, initial: initial, log: w.log}
	return w, nil
}

// ShutdownBound is the longest Run takes to return once its context ended: the lease coordinator's
// (lease.Config.ShutdownBound; the shard sync in flight ends with the context).
func (w *Worker) ShutdownBound() time.Duration { return w.coord.Config().ShutdownBound() }

// WorkerID is the id this worker writes as lease owner.
func (w *Worker) WorkerID() string { return w.coord.WorkerID() }

// Ready reports whether the worker has synced the stream's shards once and is taking leases; false again
// once it is stopping, from the moment a permanent failure is seen (its own, or the lease coordinator's).
func (w *Worker) Ready() bool { return w.ready.Load() && w.coord.Err() == nil }

// fail stops the worker for good on a permanent failure: Ready turns false at once, every holding period
// ends as in a clean shutdown, and Run returns err (the first one, if several shards fail).
func (w *Worker) fail(err error) {
	w.fatalMu.Lock()
	defer w.fatalMu.Unlock()
	if w.fatal != nil {
		return
	}
	w.fatal = err
	w.ready.Store(false)
	w.metrics.fatal.Inc()
	w.log.Error("permanent failure: the worker stops", zap.Error(err))
	if w.stop != nil {
		w.stop(err)
	}
}

func (w *Worker) fatalErr() error {
	w.fatalMu.Lock()
	defer w.fatalMu.Unlock()
	return w.fatal
}

// Holding returns the shards this worker is reading now.
func (w *Worker) Holding() []string { return w.coord.Holding() }

// Run syncs shards, then takes leases and processes shards until ctx ends. Then it shuts down cleanly:
// every processor gets ShutdownRequested, checkpoints, and the leases are released so other workers take
// them at their next take cycle (bounded by the lease ShutdownTimeout). It returns when every goroutine it
// started has returned; nil after a clean shutdown.
//
// A permanent failure (retry.IsPermanent) — the stream or lease table missing, a processor's error, a
// denied call — stops the worker the same way, and Run returns that error; a *ResourceError when it
// concerns the stream or the lease table. Transient failures are retried with backoff and never end Run.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Worker.Run called twice")
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	w.fatalMu.Lock()
	w.stop = stop
	w.fatalMu.Unlock()
	w.log.Info("worker starting", zap.String("stream", w.cfg.Stream), zap.String("lease_table", w.cfg.Lease.Table))
	for {
		_, err := w.syncer.sync(ctx)
		w.metrics.syncs.WithLabelValues(outcome(err)).Inc()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := w.resourceError(err); err != nil {
			return err
		}
		w.log.Warn("initial shard sync failed; retrying", zap.Error(err))
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
	}
	if err := w.ensureStreamConsumer(ctx); err != nil {
		return err
	}
	w.ready.Store(true)
	defer w.ready.Store(false)
	var wg sync.WaitGroup
	wg.Go(func() { w.syncLoop(ctx) })
	err := w.coord.Run(ctx)
	stop(err) // Run returns when ctx ended or the coordinator failed: either way the sync loop ends too
	wg.Wait()
	w.log.Info("worker stopped")
	if fatal := w.fatalErr(); fatal != nil {
		return fatal
	}
	if err != nil && retry.IsPermanent(err) {
		if rerr := w.resourceError(err); rerr != nil {
			return rerr
		}
	}
	return err
}

// resourceError returns err as a *ResourceError naming the stream or the lease table when it is a
// permanent failure on one of them (told apart by the service that answered), or nil when it is transient.
func (w *Worker) resourceError(err error) error {
	if !retry.IsPermanent(err) {
		return nil
	}
	var noStream *ktypes.ResourceNotFoundException
	var noTable *dtypes.ResourceNotFoundException
	var op *smithy.OperationError
	switch {
	case errors.As(err, &noStream):
		return &ResourceError{Setting: "Stream", Kind: "stream", Name: w.cfg.Stream, Err: err}
	case errors.As(err, &noTable):
		return &ResourceError{Setting: "Lease.Table", Kind: "lease table", Name: w.cfg.Lease.Table, Err: err}
	case errors.As(err, &op) && op.Service() == "DynamoDB":
		return &ResourceError{Setting: "Lease.Table", Kind: "lease table", Name: w.cfg.Lease.Table, Err: err}
	case errors.As(err, &op) && op.Service() == "Kinesis":
		return &ResourceError{Setting: "Stream", Kind: "stream", Name: w.cfg.Stream, Err: err}
	}
	return err
}

// triggerSync asks the sync loop for a sync soon (after a shard ended).
func (w *Worker) triggerSync() {
	select {
	case w.syncNow <- struct{}{}:
	default:
	}
}

func (w *Worker) syncLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ShardSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.syncNow:
		}
		_, err := w.syncer.sync(ctx)
		w.metrics.syncs.WithLabelValues(outcome(err)).Inc()
		if err != nil && ctx.Err() == nil {
			if rerr := w.resourceError(err); rerr != nil {
				w.fail(rerr)
				return
			}
			w.log.Warn("shard sync failed", zap.Error(err))
		}
	}
}
