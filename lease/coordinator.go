package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/settings"
)

// maxTakeRounds bounds the immediate re-plans after a lost take race.
const maxTakeRounds = 3

// epsilon is the KCL's slack in its timing rules (DynamoDBLeaseCoordinator).
const epsilon = 25 * time.Millisecond

// Defaults of Config's fields that are not derived from others.
const (
	DefaultTable                     = "clickfleet-leases" // the consumer fleet's; the archive has its own
	DefaultFailoverTime              = 10 * time.Second
	DefaultShutdownTimeout           = 5 * time.Second
	DefaultMaxLeasesToStealAtOneTime = 1
	DefaultLeaderTakeInterval        = time.Second
)

// Config configures a Coordinator. Zero values take the documented defaults;
// Validate fills them in and checks the rest.
type Config struct {
	// Table is the lease table's name. Required.
	Table string
	// WorkerID names this worker in leaseOwner. It must be unique per process.
	// Default: "<hostname>-<8 random hex digits>".
	WorkerID string
	// FailoverTime is how long a lease may go unrenewed before other workers
	// may take it, and before its owner considers it lost. Default: 10s.
	FailoverTime time.Duration
	// RenewInterval is how often held leases are renewed; at most
	// FailoverTime/2. Default: FailoverTime/3 − 25ms.
	RenewInterval time.Duration
	// Assignment is how leases find their workers: AssignByLeader (one
	// elected leader assigns by reported load; workers read only their own
	// leases) or AssignByScan (every worker scans the table and takes for
	// itself). Default: AssignByLeader.
	Assignment string
	// TakeInterval is how often a worker looks for leases to take: in
	// AssignByLeader mode how often the leader assigns and every worker reads
	// its own leases (default: 1s); in AssignByScan mode how often each worker
	// scans the table (default: 2 × (FailoverTime + 25ms), the Java KCL's).
	TakeInterval time.Duration
	// Load, in AssignByLeader mode, returns this worker's load (CPU and what
	// it read per held shard) for the leader, every RenewInterval; nil: the
	// worker reports none, and a fleet that reports none is balanced by lease
	// count. Called from one goroutine.
	Load func() Load
	// MaxMovesPerRound caps the leases the leader moves for balance in one
	// round (AssignByLeader). Default: 2.
	MaxMovesPerRound int
	// MaxLeasesPerWorker caps the leases this worker takes. Default: 0 (no cap).
	MaxLeasesPerWorker int
	// MaxLeasesToStealAtOneTime caps steals per take cycle. Default: 1.
	MaxLeasesToStealAtOneTime int
	// HandoffTimeout is how long a worker that claimed a lease waits for the
	// previous owner's final checkpoint before it proceeds as if it had taken
	// the lease; at least FailoverTime (Handle.ValidFor's guarantee needs it).
	// Default: FailoverTime.
	HandoffTimeout time.Duration
	// HandoffPollInterval is how often a worker waiting for a handoff re-reads
	// the lease (a read, not a write). Default: min(250ms, RenewInterval).
	HandoffPollInterval time.Duration
	// ShutdownTimeout bounds how long Run waits, once its context ends, for
	// holders to checkpoint and release before it releases their leases
	// itself, and then again for their Process calls to return (see Run and
	// ShutdownBound). Default: 5s.
	ShutdownTimeout time.Duration
	// RenewConcurrency is how many renewals run at once. Default: 16.
	RenewConcurrency int
	// Process is called, in its own goroutine, each time this worker starts
	// holding a lease (after any handoff into it has completed). See Handle.
	// It must return soon after h.Context() is done. Required.
	Process func(h *Handle)
	// Clock is the time source. Default: SystemClock.
	Clock Clock
	// Logger receives structured logs (worker_id, shard_id). Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the package's metrics. Default: nil (not registered).
	Registerer prometheus.Registerer
}

// Validate fills in defaults and returns an error wrapping ErrInvalidConfig and a *settings.Error that
// names the first bad setting.
func (c *Config) Validate() error {
	if err := c.Check(); err != nil {
		return err
	}
	if c.Process == nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid("Process", "is required"))
	}
	return nil
}

// Check is Validate for every setting but Process: for a Config held by another component that sets
// Process itself (consumer.Worker).
func (c *Config) Check() error {
	bad := func(setting, why string) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(setting, "%s", why))
	}
	if c.Table == "" {
		return bad("Table", "is required")
	}
	if c.WorkerID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "worker"
		}
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("generate worker id: %w", err)
		}
		c.WorkerID = host + "-" + hex.EncodeToString(b[:])
	}
	if c.FailoverTime == 0 {
		c.FailoverTime = DefaultFailoverTime
	}
	if c.FailoverTime < 100*time.Millisecond {
		return bad("FailoverTime", fmt.Sprintf("%v is below 100ms", c.FailoverTime))
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime/3 - epsilon
	}
	if c.RenewInterval <= 0 || c.RenewInterval > c.FailoverTime/2 {
		return bad("RenewInterval", fmt.Sprintf("%v must be positive and at most FailoverTime/2 (%v)", c.RenewInterval, c.FailoverTime/2))
	}
	switch c.Assignment {
	case "":
		c.Assignment = AssignByLeader
	case AssignByLeader, AssignByScan:
	default:
		return bad("Assignment", fmt.Sprintf("must be %q or %q, not %q", AssignByLeader, AssignByScan, c.Assignment))
	}
	if c.TakeInterval == 0 {
		c.TakeInterval = DefaultLeaderTakeInterval
		if c.Assignment == AssignByScan {
			c.TakeInterval = 2 * (c.FailoverTime + epsilon)
		}
	}
	if c.MaxMovesPerRound == 0 {
		c.MaxMovesPerRound = DefaultMaxMovesPerRound
	}
	if c.MaxMovesPerRound < 0 {
		return bad("MaxMovesPerRound", "must not be negative")
	}
	if c.TakeInterval <= 0 {
		return bad("TakeInterval", "must be positive")
	}
	if c.MaxLeasesPerWorker < 0 {
		return bad("MaxLeasesPerWorker", "must not be negative")
	}
	if c.MaxLeasesToStealAtOneTime == 0 {
		c.MaxLeasesToStealAtOneTime = DefaultMaxLeasesToStealAtOneTime
	}
	if c.MaxLeasesToStealAtOneTime < 0 {
		return bad("MaxLeasesToStealAtOneTime", "must not be negative")
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = c.FailoverTime
	}
	if c.HandoffTimeout < c.FailoverTime {
		// Handle.ValidFor bounds a draining holder's writes by the failover time since its last renewal;
		// that holds only while the new owner waits at least as long before it proceeds without them.
		return bad("HandoffTimeout", fmt.Sprintf("%v is below FailoverTime (%v): a deposed owner's final writes could then land after the new owner started", c.HandoffTimeout, c.FailoverTime))
	}
	if c.HandoffPollInterval == 0 {
		c.HandoffPollInterval = min(250*time.Millisecond, c.RenewInterval)
	}
	if c.HandoffPollInterval <= 0 {
		return bad("HandoffPollInterval", "must be positive")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ShutdownTimeout < 0 {
		return bad("ShutdownTimeout", "must not be negative")
	}
	if c.RenewConcurrency == 0 {
		c.RenewConcurrency = 16
	}
	if c.RenewConcurrency < 0 {
		return bad("RenewConcurrency", "must not be negative")
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// ShutdownBound is the longest Run takes to return once its context ended (see Run): a take call in
// flight and, in AssignByLeader mode, leaving the fleet (each bounded like every round of lease-table calls
// by max(2 × FailoverTime, 10s)), ShutdownTimeout for holders to
// finish, the final releases (all of the shutdown's calls share a deadline of ShutdownTimeout +
// FailoverTime), and ShutdownTimeout for Process calls to return. Call it on a validated Config; a process
// that stops its parts gives the coordinator this long before it exits anyway.
func (c Config) ShutdownBound() time.Duration {
	return 2*ioBound(c.FailoverTime) + 2*c.ShutdownTimeout + c.FailoverTime
}

// ioBound bounds one round of lease-table calls: max(2 × failover time, 10s).
func ioBound(failover time.Duration) time.Duration { return max(2*failover, 10*time.Second) }

// Coordinator keeps one worker's leases: it renews what it holds, takes and
// steals leases to balance the fleet, hands leases over gracefully, and tells
// the consumer about each lease it starts holding through Config.Process.
type Coordinator struct {
	cfg       Config
	db        DynamoDBAPI
	table     *Table
	lead      *leadership  // AssignByLeader mode only
	moveCount atomic.Int64 // assignments written while leading
	log       *zap.Logger
	metrics   *metrics
	rng       *mrand.Rand // take loop only

	running atomic.Bool
	holders sync.WaitGroup
	stop    context.CancelCauseFunc // ends Run's context; set before Run starts its loops
	fatal   atomic.Pointer[error]   // the permanent lease-table error that stops Run

	mu           sync.Mutex
	held         map[string]*entry // we are leaseOwner: pending or active
	draining     map[*entry]struct{}
	processing   map[*entry]struct{} // entries whose Process call runs
	shuttingDown bool
	obs          map[string]Observation // take loop only
}

// New returns a Coordinator for cfg over db. It does no I/O and starts no
// goroutines; call Run. It fails if cfg is invalid or the metrics cannot be
// registered.
func New(db DynamoDBAPI, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	t := NewTable(db, cfg.Table)
	t.metrics = m
	c := &Coordinator{
		cfg:        cfg,
		db:         db,
		table:      t,
		log:        cfg.Logger.Named("lease").With(zap.String("worker_id", cfg.WorkerID)),
		metrics:    m,
		rng:        mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		held:       map[string]*entry{},
		draining:   map[*entry]struct{}{},
		processing: map[*entry]struct{}{},
	}
	if cfg.Assignment == AssignByLeader {
		c.lead = newLeadership(c)
	}
	return c, nil
}

// WorkerID returns the worker id this coordinator writes in leaseOwner.
func (c *Coordinator) WorkerID() string { return c.cfg.WorkerID }

// Table returns the coordinator's lease table (for lineage queries).
func (c *Coordinator) Table() *Table { return c.table }

// Config returns the validated configuration.
func (c *Coordinator) Config() Config { return c.cfg }

// Holding returns the keys of the leases whose holders are running: held,
// not waiting for a handoff into this worker, not draining out of it, and
// renewed within the failover time by this worker's clock.
func (c *Coordinator) Holding() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for k, e := range c.held {
		if e.stateIs(stateActive) && !e.expired.Load() {
			keys = append(keys, k)
		}
	}
	return keys
}

// Run renews, takes and balances leases until ctx ends, or until a permanent lease-table error
// (retry.IsPermanent: the table missing, a call denied) stops it. Then it shuts down in one order, every
// step bounded:
//  1. stop taking: the take loop ends (a call in flight completes), no holder starts any more;
//  2. drain processors: every holder's context is cancelled with ErrShutdownRequested, and holders get
//     ShutdownTimeout to write their final checkpoints and Release (leases waiting for a handoff into this
//     worker are released at once); renewals go on meanwhile;
//  3. release leases: whatever is still held is released by the coordinator;
//  4. wait for Process calls to return, at most ShutdownTimeout more.
//
// Run returns within Config.ShutdownBound of ctx's end. It returns nil after a clean shutdown, the
// permanent error that stopped it, or an error naming the shards whose Process did not return (their
// goroutines are left behind: the caller should exit). It may be called once.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("lease: Coordinator.Run called twice")
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	c.stop = stop
	if err := c.checkTables(ctx); err != nil {
		return err
	}
	c.log.Info("lease coordinator starting",
		zap.String("table", c.cfg.Table), zap.Duration("failover", c.cfg.FailoverTime),
		zap.Duration("renew_interval", c.cfg.RenewInterval), zap.Duration("take_interval", c.cfg.TakeInterval))

	// Renewals go on while holders drain, so they get their own context.
	upkeepCtx, stopUpkeep := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUpkeep()
	var upkeep, taker sync.WaitGroup
	upkeep.Go(func() { c.renewLoop(upkeepCtx) })
	upkeep.Go(func() { c.handoffLoop(upkeepCtx) })
	c.startTaking(ctx, &taker)

	<-ctx.Done()
	taker.Wait() // 1
	c.log.Info("lease coordinator shutting down")
	if c.lead != nil {
		ioCtx, cancel := c.ioContext(ctx)
		c.leaveFleet(ioCtx)
		cancel()
	}
	finalCtx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ShutdownTimeout+c.cfg.FailoverTime)
	defer cancelFinal()
	holdersDone := c.holdersDone()
	c.drainHolders(finalCtx, holdersDone) // 2
	stopUpkeep()
	upkeep.Wait()
	c.releaseRemaining(finalCtx)         // 3
	err := c.awaitProcesses(holdersDone) // 4
	c.log.Info("lease coordinator stopped")
	if fatal := c.Err(); fatal != nil {
		return fatal
	}
	return err
}

// checkTables refuses, in AssignByLeader mode, a lease table without its owner index (made before the index
// existed, or in the middle of an offline upgrade): the error names the table and 'clickfleet setup'. A
// failure to tell is logged and left to the loops, whose calls then fail loudly if the index is missing.
func (c *Coordinator) checkTables(ctx context.Context) error {
	if c.lead == nil {
		return nil
	}
	ioCtx, cancel := c.ioContext(ctx)
	defer cancel()
	err := CheckIndex(ioCtx, c.db, c.cfg.Table)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoOwnerIndex), errors.Is(err, ErrUpgradeUnfinished), retry.IsPermanent(err):
		return retry.Permanent(err)
	}
	c.log.Warn("could not check the lease table's owner index; going on", zap.Error(err))
	return nil
}

// startTaking starts the loops that bring leases to this worker: in AssignByLeader mode the election,
// the load reports, the leader's rounds and the adoption of this worker's own leases; in AssignByScan mode
// the scanning take loop.
func (c *Coordinator) startTaking(ctx context.Context, wg *sync.WaitGroup) {
	if c.lead == nil {
		wg.Go(func() { c.takeLoop(ctx) })
		return
	}
	wg.Go(func() { c.electLoop(ctx) })
	wg.Go(func() { c.reportLoop(ctx) })
	wg.Go(func() { c.assignLoop(ctx) })
	wg.Go(func() { c.ownLoop(ctx) })
}

// holdersDone returns a channel closed once every Process call has returned.
func (c *Coordinator) holdersDone() <-chan struct{} {
	done := make(chan struct{})
	go func() { c.holders.Wait(); close(done) }()
	return done
}

// drainHolders asks every holder to finish (ErrShutdownRequested), releases leases still waiting for a
// handoff into this worker, and waits up to ShutdownTimeout for the holders to return.
func (c *Coordinator) drainHolders(ctx context.Context, holdersDone <-chan struct{}) {
	c.mu.Lock()
	c.shuttingDown = true
	entries := c.entriesLocked()
	c.mu.Unlock()
	for _, e := range entries {
		e.shutdown(ctx)
	}
	select {
	case <-holdersDone:
	case <-c.cfg.Clock.After(c.cfg.ShutdownTimeout):
		c.log.Warn("holders did not release within the shutdown timeout; releasing their leases", zap.Duration("timeout", c.cfg.ShutdownTimeout))
	}
}

// releaseRemaining releases every lease still in this worker's hands (holders that did not finish in time).
func (c *Coordinator) releaseRemaining(ctx context.Context) {
	c.mu.Lock()
	entries := c.entriesLocked()
	c.mu.Unlock()
	for _, e := range entries {
		if err := e.release(ctx, nil); err != nil && !errors.Is(err, ErrLeaseLost) {
			c.log.Warn("release at shutdown failed", zap.String("shard_id", e.key), zap.Error(err))
		}
	}
}

// awaitProcesses waits up to ShutdownTimeout for the Process calls still running (their leases are
// released, their contexts cancelled) and returns an error naming the shards of those that did not return.
func (c *Coordinator) awaitProcesses(holdersDone <-chan struct{}) error {
	select {
	case <-holdersDone:
		return nil
	case <-c.cfg.Clock.After(c.cfg.ShutdownTimeout):
	}
	c.mu.Lock()
	stuck := make([]string, 0, len(c.processing))
	for e := range c.processing {
		stuck = append(stuck, e.key)
	}
	c.mu.Unlock()
	slices.Sort(stuck)
	c.log.Error("Process did not return after its lease was released", zap.Strings("shard_ids", stuck), zap.Duration("waited", c.cfg.ShutdownTimeout))
	return fmt.Errorf("lease: Process of shards %v did not return within %v of their release", stuck, c.cfg.ShutdownTimeout)
}

// fail stops the coordinator for good on a permanent lease-table error: Run shuts down as when its context
// ends, and returns err (the first one).
func (c *Coordinator) fail(err error) {
	if !c.fatal.CompareAndSwap(nil, &err) {
		return
	}
	c.log.Error("permanent lease table error: the coordinator stops", zap.Error(err))
	c.stop(err)
}

// Err returns the permanent lease-table error that stopped (or is stopping) Run, or nil. Safe for
// concurrent use.
func (c *Coordinator) Err() error {
	if p := c.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// retryLater handles a failed lease-table call that the next round repeats: a transient error is logged;
// a permanent one (retry.IsPermanent) stops the coordinator, since repeating it cannot help and a worker
// that cannot write its leases must not look healthy.
func (c *Coordinator) retryLater(log *zap.Logger, what string, err error) {
	if retry.IsPermanent(err) {
		c.fail(fmt.Errorf("lease: %s in table %s: %w", what, c.cfg.Table, err))
		return
	}
	log.Warn(what+" failed; will retry", zap.Error(err))
}

func (c *Coordinator) entriesLocked() []*entry {
	es := make([]*entry, 0, len(c.held)+len(c.draining))
	for _, e := range c.held {
		es = append(es, e)
	}
	for e := range c.draining {
		es = append(es, e)
	}
	return es
}

func (c *Coordinator) updateHeldGauge() {
	c.mu.Lock()
	n := len(c.held) + len(c.draining)
	c.mu.Unlock()
	c.metrics.held.Set(float64(n))
}

// renewLoop renews every held lease each RenewInterval.
func (c *Coordinator) renewLoop(ctx context.Context) {
	c.everyHeld(ctx, c.cfg.RenewInterval, func(*entry) bool { return true }, (*entry).renew)
}

// handoffLoop re-reads leases waiting for a handoff into this worker.
func (c *Coordinator) handoffLoop(ctx context.Context) {
	pending := func(e *entry) bool { return e.stateIs(statePending) }
	c.everyHeld(ctx, c.cfg.HandoffPollInterval, pending, (*entry).pollHandoff)
}

// everyHeld runs do, each interval until ctx ends, on every held lease that keep selects, RenewConcurrency
// at a time, each call under its own I/O deadline.
func (c *Coordinator) everyHeld(ctx context.Context, interval time.Duration, keep func(*entry) bool, do func(*entry, context.Context)) {
	t := c.cfg.Clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		c.mu.Lock()
		var es []*entry
		for _, e := range c.held {
			if keep(e) {
				es = append(es, e)
			}
		}
		c.mu.Unlock()
		forEach(es, c.cfg.RenewConcurrency, func(e *entry) {
			ioCtx, cancel := c.ioContext(ctx)
			defer cancel()
			do(e, ioCtx)
		})
	}
}

// takeLoop scans the table now and every TakeInterval, then takes and steals
// what the planner says.
func (c *Coordinator) takeLoop(ctx context.Context) {
	t := c.cfg.Clock.NewTicker(c.cfg.TakeInterval)
	defer t.Stop()
	for {
		// A take that lost a race to another worker (both planned from the
		// same scan) leaves us short: plan again at once, a few times.
		for round := 0; round < maxTakeRounds && ctx.Err() == nil; round++ {
			raced, err := c.takeOnce(ctx)
			if err != nil && ctx.Err() == nil {
				c.retryLater(c.log, "take cycle", err)
			}
			if !raced {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// takeOnce scans, plans, and takes and steals; raced reports whether an
// ordinary take lost a race to another worker.
func (c *Coordinator) takeOnce(ctx context.Context) (raced bool, err error) {
	ioCtx, cancel := c.ioContext(ctx)
	defer cancel()
	leases, err := c.table.List(ioCtx)
	if err != nil {
		return false, err
	}
	now := c.cfg.Clock.Now()
	c.obs = Observe(c.obs, leases, now)
	d := Plan(c.cfg.WorkerID, leases, c.obs, now, PlanConfig{
		FailoverTime:              c.cfg.FailoverTime,
		MaxLeasesPerWorker:        c.cfg.MaxLeasesPerWorker,
		MaxLeasesToStealAtOneTime: c.cfg.MaxLeasesToStealAtOneTime,
	}, c.rng)
	if len(d.Take)+len(d.Steal) > 0 {
		c.log.Info("lease plan", zap.Int("leases", len(leases)), zap.Int("workers", d.Workers),
			zap.Int("target", d.Target), zap.Int("held", d.Held), zap.Int("take", len(d.Take)), zap.Int("steal", len(d.Steal)))
	}
	var errs []error
	for _, l := range d.Take {
		if ctx.Err() != nil {
			break
		}
		lost, err := c.acquire(ioCtx, l, claimTake)
		raced = raced || lost
		errs = append(errs, err)
	}
	for _, l := range d.Steal {
		if ctx.Err() != nil {
			break
		}
		_, err := c.acquire(ioCtx, l, claimSteal)
		errs = append(errs, err)
	}
	return raced, errors.Join(errs...)
}

// claimKind is how a worker comes to hold a lease.
type claimKind int

const (
	claimTake  claimKind = iota // an unowned or expired lease, taken by the worker itself (scan mode)
	claimSteal                  // a live lease claimed for balance, with a handoff (scan mode)
	claimAdopt                  // a lease the leader assigned to this worker (leader mode)
)

// acquire takes, steals or adopts l as observed and starts tracking it. Losing
// the race to another worker is not an error: raced reports it.
func (c *Coordinator) acquire(ctx context.Context, l Lease, kind claimKind) (raced bool, err error) {
	c.mu.Lock()
	_, mine := c.held[l.Key]
	stop := c.shuttingDown
	c.mu.Unlock()
	if mine || stop {
		return false, nil
	}
	log := c.log.With(zap.String("shard_id", l.Key))
	sent := c.cfg.Clock.Now()
	var got Lease
	switch kind {
	case claimSteal:
		got, err = c.table.steal(ctx, l, c.cfg.WorkerID)
	case claimAdopt:
		got, err = c.table.adopt(ctx, l.Key, c.cfg.WorkerID, l.Counter)
	default:
		got, err = c.table.take(ctx, l, c.cfg.WorkerID)
	}
	if errors.Is(err, errConditionFailed) {
		log.Debug("lease changed before we could take it", zap.Int("kind", int(kind)))
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("worker %s: %w", c.cfg.WorkerID, err)
	}
	e := &entry{c: c, key: l.Key, log: log, counter: got.Counter, lease: got, state: statePending}
	switch kind {
	case claimSteal:
		c.metrics.stolen.Inc()
		log.Info("claimed lease for balance; waiting for its owner to hand it over", zap.String("from", l.Owner))
	case claimAdopt:
		c.countAdopted(l, got)
		log.Info("adopted the lease the leader assigned", zap.String("previous_owner", got.CheckpointOwner), zap.Int64("counter", got.Counter))
	default:
		c.metrics.taken.Inc()
		log.Info("took lease", zap.String("from", l.Owner), zap.Int64("counter", got.Counter))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c.mu.Lock()
	c.held[l.Key] = e
	c.mu.Unlock()
	c.updateHeldGauge()
	e.bumpedLocked(got, sent)
	if got.CheckpointOwner != "" {
		e.prevOwner = got.CheckpointOwner
		e.pendingSince = sent
		return false, nil
	}
	e.activateLocked(got)
	return false, nil
}

// countAdopted counts an adopted lease as the receiving end of a handoff the leader started for balance
// when the handoff was in flight as it was read (l) or adopted (got); a handoff that ended between the two
// completed before this worker started the lease. One that ended before the read looks like any
// assignment and counts as taken: the giving worker's final checkpoint is in the lease either way.
func (c *Coordinator) countAdopted(l, got Lease) {
	switch {
	case got.InHandoff():
		c.metrics.stolen.Inc()
	case l.InHandoff():
		c.metrics.stolen.Inc()
		c.metrics.handoffs.WithLabelValues("completed").Inc()
	default:
		c.metrics.taken.Inc()
	}
}

// ioContext returns the context for one round of DynamoDB calls: not
// cancelled when ctx is (a call in flight completes, so its outcome is known
// and the server never sees an aborted request — dynalite 4 crashes on one),
// but bounded by max(2 × FailoverTime, 10s). A slow call never delays the
// loss signal: that comes from the lease's own deadline timer. Loops check ctx
// between calls.
func (c *Coordinator) ioContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), ioBound(c.cfg.FailoverTime))
}

// forEach runs fn on every item, at most n at a time, and waits.
func forEach[T any](items []T, n int, fn func(T)) {
	if len(items) == 0 {
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(it)
		})
	}
	wg.Wait()
}
