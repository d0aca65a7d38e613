package actors

import (
	"github.com/clickfleet/clickfleet/internal/crashpoint"

	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// Factory makes the processors of one worker process; it owns the process's actor system. Use
// Factory.NewProcessor as the consumer.ProcessorFactory and Close it when the worker has stopped.
type Factory struct {
	cfg    Config
	m      *metrics
	log    *zap.Logger
	sys    *actor.ActorSystem
	disp   *pool // runs the user actors' mailboxes
	serial atomic.Uint64
	once   sync.Once
	crash  func() // internal/crashpoint's after-flush point; nil outside crash-point builds
	// retrying counts write and load loops now waiting after a transient error.
	retrying atomic.Int64
	// rowWrites and sessionsStarted count session rows written and sessions started, for SessionWrites.
	rowWrites, sessionsStarted atomic.Int64
	failed                     chan error // the first shard's permanent failure
	failOnce                   sync.Once
	hasFailed                  atomic.Bool
}

// New checks cfg, registers the metrics and creates the actor system (which logs through cfg.Logger).
// It does no I/O.
func New(cfg Config) (*Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("actors: register metrics: %w", err)
	}
	log := cfg.Logger.Named("actors")
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return newSlog(log.Named("protoactor"))
	}))
	return &Factory{cfg: cfg, m: m, log: log, sys: sys, disp: newPool(300), crash: crashpoint.At(crashpoint.AfterFlush), failed: make(chan error, 1)}, nil
}

// NewProcessor returns the processor of one holding period of shardID; it is a consumer.ProcessorFactory.
func (f *Factory) NewProcessor(shardID string) consumer.Processor {
	p := &processor{f: f, done: make(chan struct{}), quit: make(chan struct{})}
	p.sh = &shardShared{f: f, p: p, shard: shardID, log: f.log.With(zap.String("shard_id", shardID))}
	return p
}

// Ready reports whether no shard has failed permanently and no write or load is being retried after a
// transient error (Redis, DynamoDB or Kinesis unreachable, throttled or failing): a worker serving
// /readyz combines it with its own.
func (f *Factory) Ready() bool { return !f.hasFailed.Load() && f.retrying.Load() == 0 }

// Failed receives the first permanent failure of any shard's processing (a write the server refuses for
// good — a missing sessions table or output stream, a denied call, a failing script — unreadable state,
// a panic), once; the error is a *consumer.ResourceError when it concerns a configured output. The shard
// has stopped: the process should stop too. A shard's ProcessRecords returns the same error.
func (f *Factory) Failed() <-chan error { return f.failed }

func (f *Factory) reportFatal(err error) {
	f.failOnce.Do(func() {
		f.hasFailed.Store(true)
		f.failed <- err
	})
}

// SessionWrites returns the session rows this factory's processors wrote to the sessions table and the
// sessions they started, so far (the counters behind clickfleet_actors_session_writes_total and
// clickfleet_actors_sessions_started_total). Safe for concurrent use.
func (f *Factory) SessionWrites() (writes, sessions int64) {
	return f.rowWrites.Load(), f.sessionsStarted.Load()
}

// Close shuts the actor system down. Call it after the worker's Run returned; it is idempotent.
func (f *Factory) Close() {
	f.once.Do(func() {
		f.sys.Shutdown()
		f.disp.Close()
	})
}

// processor is the consumer.Processor of one holding period: it hands batches to its ShardActor and waits
// for the answer (backpressure).
type processor struct {
	f    *Factory
	sh   *shardShared
	pid  *actor.PID
	ctx  context.Context
	stop context.CancelCauseFunc
	done chan struct{} // closed when the ShardActor has stopped
	quit chan struct{} // stops the timers
	wg   sync.WaitGroup
	once sync.Once
}

func (p *processor) goRun(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

func (p *processor) Initialize(ctx context.Context, in consumer.InitInput) error {
	// Writes belong to the holding period: the worker cancels ctx when the lease is lost (and after the
	// shutdown timeout of a planned end).
	p.ctx, p.stop = context.WithCancelCause(ctx)
	if !in.Start.IsSentinel() {
		p.sh.checkpointed = in.Start
	}
	sh := p.sh
	sh.epoch, sh.validFor = in.LeaseCounter, in.ValidFor
	sh.userProps = actor.PropsFromProducer(sh.produceUser, actor.WithDispatcher(p.f.disp), actor.WithMailbox(sh.newUserMailbox))
	strategy := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		sh.log.Error("user actor panicked; the shard stops", zap.Any("reason", reason))
		return actor.StopDirective
	})
	props := actor.PropsFromProducer(func() actor.Actor { return newShardActor(sh) }, actor.WithSupervisor(strategy))
	pid, err := p.f.sys.Root.SpawnNamed(props, fmt.Sprintf("shard-%s-%d", in.ShardID, p.f.serial.Add(1)))
	if err != nil {
		p.stop(err)
		return fmt.Errorf("shard %s: spawn ShardActor: %w", in.ShardID, err)
	}
	p.pid = pid
	// Before any user state is read: no earlier owner's write lands from now on (and, with
	// WaitReplicas, every earlier write is on the replicas).
	if err := sh.claimFenceDurably(p.ctx); err != nil {
		p.shutdown()
		return fmt.Errorf("shard %s: %w", in.ShardID, err)
	}
	// Users whose session rows a previous owner left lagging (a crash, a lost lease): loaded first, so
	// that their rows are written at their next trigger even if they send nothing more.
	ids, err := sh.laggingRows(p.ctx)
	if err != nil {
		p.shutdown()
		return fmt.Errorf("shard %s: read the users whose session rows lag: %w", in.ShardID, err)
	}
	if len(ids) > 0 {
		p.f.sys.Root.Send(pid, &recoverUsers{ids: ids})
	}
	p.goRun(p.timers)
	return nil
}

// timers sends flush and sweep ticks to the ShardActor until the processor stops.
func (p *processor) timers() {
	cfg := &p.f.cfg
	flush, sweep := time.NewTicker(cfg.FlushInterval), time.NewTicker(cfg.SweepInterval)
	defer flush.Stop()
	defer sweep.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-p.ctx.Done():
			return
		case <-flush.C:
			p.f.sys.Root.Send(p.pid, &flushTick{})
		case <-sweep.C:
			p.f.sys.Root.Send(p.pid, &sweepTick{})
		}
	}
}

// decode turns a batch into the ShardActor's message: events, and error records for the records that
// fail decoding or validation.
func (p *processor) decode(b consumer.Batch) *processBatch {
	m := &processBatch{recs: make([]record, 0, len(b.Records)), n: len(b.Records), cp: b.Checkpointer, done: make(chan error, 1)}
	for i := range b.Records {
		r := &b.Records[i]
		pos := r.Position()
		ev, err := messages.Decode(r.Data)
		if err != nil {
			p.f.m.invalid.Inc()
			er := messages.NewErrorRecord(p.f.cfg.Stream, p.sh.shard, r.SequenceNumber, r.Data, err)
			data, jerr := json.Marshal(er)
			if jerr != nil {
				data = []byte(fmt.Sprintf(`{"reason":%q}`, jerr.Error()))
			}
			key := r.PartitionKey
			if key == "" {
				key = p.sh.shard
			}
			m.errs = append(m.errs, outRecord{key: key, data: data})
		} else {
			m.recs = append(m.recs, record{pos: pos, ev: ev})
		}
		m.last = pos
	}
	p.f.m.records.Add(float64(len(b.Records)))
	return m
}

// ProcessRecords decodes the batch, hands it to the ShardActor and waits until it is routed (and, when
// FlushMaxRecords records are unflushed, until a flush takes them). It checkpoints nothing itself: the
// writer checkpoints after each flush.
func (p *processor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	start := time.Now()
	m := p.decode(b)
	p.f.sys.Root.Send(p.pid, m)
	err := p.wait(ctx, m.done)
	p.f.m.batchSeconds.Observe(time.Since(start).Seconds())
	return err
}

func (p *processor) wait(ctx context.Context, done chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	case <-p.done:
		return ErrStopped
	}
}

// LeaseLost stops at once: writes in flight are cancelled, nothing more is written or checkpointed.
func (p *processor) LeaseLost(context.Context) {
	p.stop(lease.ErrLeaseLost)
	p.shutdown()
}

// ShardEnded runs the final flush (which checkpoints the last record), checkpoints SHARD_END, and stops
// the actors. On error the worker calls it again.
func (p *processor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	if err := p.final(ctx, cp); err != nil {
		return err
	}
	if err := cp.CheckpointShardEnd(ctx); err != nil {
		return fmt.Errorf("shard %s: checkpoint SHARD_END: %w", p.sh.shard, err)
	}
	p.shutdown()
	return nil
}

// ShutdownRequested runs the final flush, which checkpoints the last record routed, then stops the
// actors.
func (p *processor) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error {
	err := p.final(ctx, cp)
	p.shutdown()
	return err
}

func (p *processor) final(ctx context.Context, cp consumer.Checkpointer) error {
	m := &finalFlush{cp: cp, done: make(chan error, 1)}
	p.f.sys.Root.Send(p.pid, m)
	if err := p.wait(ctx, m.done); err != nil {
		return fmt.Errorf("shard %s: final flush: %w", p.sh.shard, err)
	}
	return nil
}

// shutdown stops the ShardActor (its users first), then waits for it and every goroutine started for the
// shard. Idempotent.
func (p *processor) shutdown() {
	p.once.Do(func() {
		close(p.quit)
		p.f.sys.Root.Stop(p.pid)
		t := time.NewTimer(p.f.cfg.StopTimeout)
		select {
		case <-p.done:
		case <-t.C:
			p.sh.log.Warn("the shard's actors did not stop in time", zap.Duration("timeout", p.f.cfg.StopTimeout))
		}
		t.Stop()
		p.stop(ErrStopped)
		p.wg.Wait()
	})
}

var _ consumer.Processor = (*processor)(nil)
