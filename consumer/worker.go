package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

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
	log     *zap.Logger
	metrics *metrics
	syncNow chan struct{}
	ready   atomic.Bool
	running atomic.Bool
}

// New validates cfg and returns a worker reading cfg.Stream through api and keeping leases in db. It does
// no I/O and starts no goroutines.
func New(api KinesisAPI, db lease.DynamoDBAPI, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, api: api, metrics: m, syncNow: make(chan struct{}, 1)}
	lc := cfg.Lease
	lc.Process = w.run
	coord, err := lease.New(db, lc)
	if err != nil {
		return nil, err
	}
	w.coord, w.table = coord, coord.Table()
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

// WorkerID is the id this worker writes as lease owner.
func (w *Worker) WorkerID() string { return w.coord.WorkerID() }

// Ready reports whether the worker has synced the stream's shards once and is taking leases.
func (w *Worker) Ready() bool { return w.ready.Load() }

// Holding returns the shards this worker is reading now.
func (w *Worker) Holding() []string { return w.coord.Holding() }

// Run syncs shards, then takes leases and processes shards until ctx ends. Then it shuts down cleanly:
// every processor gets ShutdownRequested, checkpoints, and the leases are released so other workers take
// them at their next take cycle (bounded by the lease ShutdownTimeout). It returns when every goroutine it
// started has returned; nil after a clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Worker.Run called twice")
	}
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
		var noStream *ktypes.ResourceNotFoundException
		var noTable *dtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &noStream):
			return fmt.Errorf("stream %s does not exist (create it with 'clickfleet setup'): %w", w.cfg.Stream, err)
		case errors.As(err, &noTable):
			return fmt.Errorf("lease table %s does not exist (create it with 'clickfleet setup'): %w", w.cfg.Lease.Table, err)
		}
		w.log.Warn("initial shard sync failed; retrying", zap.Error(err))
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
	}
	w.ready.Store(true)
	defer w.ready.Store(false)
	var wg sync.WaitGroup
	wg.Go(func() { w.syncLoop(ctx) })
	err := w.coord.Run(ctx)
	wg.Wait()
	w.log.Info("worker stopped")
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
			w.log.Warn("shard sync failed", zap.Error(err))
		}
	}
}
