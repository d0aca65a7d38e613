package lease

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// Assignment modes (Config.Assignment).
const (
	// AssignByLeader: one leader at a time, elected through the coordinator-state table, scans the lease
	// table and assigns leases by the load workers report; every worker reads only its own leases, through
	// the owner index. Reads do not grow as workers × shards. The default.
	AssignByLeader = "leader"
	// AssignByScan: every worker scans the whole lease table every TakeInterval and takes and steals for
	// itself, balancing by lease count (the Java KCL 1.x/2.x way). Kept to measure against.
	AssignByScan = "scan"
)

// leadership is the leader-mode state of a coordinator: the election, the leader's view of the fleet, and
// the worker's own load reports.
type leadership struct {
	el       *elector
	rep      *reporter
	leaseObs map[string]Observation // the leader's observations of the leases (Observe)
	workObs  map[string]Observation // the leader's observations of the workers' report counters
	moved    map[string]time.Time   // when the leader last assigned or moved each lease (its clock)
}

func newLeadership(c *Coordinator) *leadership {
	return &leadership{
		el: &elector{db: c.db, table: CoordinatorStateTable(c.cfg.Table), me: c.cfg.WorkerID, failover: c.cfg.FailoverTime,
			clock: c.cfg.Clock, log: c.log, metrics: c.metrics},
		rep:      &reporter{db: c.db, table: WorkerMetricsTable(c.cfg.Table), me: c.cfg.WorkerID, clock: c.cfg.Clock, metrics: c.metrics},
		leaseObs: map[string]Observation{},
		workObs:  map[string]Observation{},
		moved:    map[string]time.Time{},
	}
}

// IsLeader reports whether this worker is the fleet's leader now (provably, by its own clock). Always false
// in AssignByScan mode.
func (c *Coordinator) IsLeader() bool { return c.lead != nil && c.lead.el.isLeader() }

// electLoop renews or watches the leader lock every RenewInterval.
func (c *Coordinator) electLoop(ctx context.Context) {
	c.every(ctx, c.cfg.RenewInterval, func(ioCtx context.Context) {
		if err := c.lead.el.tick(ioCtx); err != nil {
			c.retryLater(c.log, "leader election", err)
		}
	})
}

// reportLoop writes this worker's load every RenewInterval (its sign of life for the leader).
func (c *Coordinator) reportLoop(ctx context.Context) {
	c.every(ctx, c.cfg.RenewInterval, func(ioCtx context.Context) {
		var load Load
		if c.cfg.Load != nil {
			load = c.cfg.Load()
		}
		if err := c.lead.rep.report(ioCtx, load, false); err != nil {
			c.retryLater(c.log, "load report", err)
		}
	})
}

// assignLoop runs the leader's assignment round every TakeInterval while this worker is the leader.
func (c *Coordinator) assignLoop(ctx context.Context) {
	c.every(ctx, c.cfg.TakeInterval, func(ioCtx context.Context) {
		if !c.lead.el.isLeader() {
			return
		}
		if err := c.assignRound(ioCtx); err != nil {
			c.retryLater(c.log, "assignment round", err)
		}
	})
}

// ownLoop adopts the leases the leader assigned to this worker: it reads its own keys every TakeInterval
// while it finds new ones, and backs off, doubling, to RenewInterval while it finds none — the reads of a
// settled fleet are then one small Query per worker per RenewInterval, and a lease reassigned after a crash
// is still found within RenewInterval.
func (c *Coordinator) ownLoop(ctx context.Context) {
	interval := c.cfg.TakeInterval
	for {
		ioCtx, cancel := c.ioContext(ctx)
		adopted, err := c.adoptOwn(ioCtx)
		cancel()
		if err != nil {
			c.retryLater(c.log, "reading own leases", err)
		}
		if adopted > 0 || err != nil {
			interval = c.cfg.TakeInterval
		} else {
			interval = min(2*interval, max(c.cfg.RenewInterval, c.cfg.TakeInterval))
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.Clock.After(interval):
		}
	}
}

// every runs fn now and then every d until ctx ends; each run gets a context bounded like every lease-table
// call (ioContext).
func (c *Coordinator) every(ctx context.Context, d time.Duration, fn func(ioCtx context.Context)) {
	t := c.cfg.Clock.NewTicker(d)
	defer t.Stop()
	for {
		ioCtx, cancel := c.ioContext(ctx)
		fn(ioCtx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// assignRound is one round of the leader: scan the leases and the workers' reports, decide (Assign), and
// write the moves — each only while the leadership is provably this worker's, and bounded by it.
func (c *Coordinator) assignRound(ctx context.Context) error {
	l := c.lead
	valid := l.el.validFor()
	if valid <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, valid)
	defer cancel()
	leases, err := c.table.ListEventually(ctx)
	if err != nil {
		return err
	}
	reports, err := readReports(ctx, c.db, l.rep.table, c.metrics)
	if err != nil {
		return err
	}
	now := c.cfg.Clock.Now()
	l.leaseObs = Observe(l.leaseObs, leases, now)
	var workers []WorkerLoad
	workers, l.workObs = liveWorkers(l.workObs, reports, now, c.cfg.FailoverTime)
	moves := Assign(leases, l.leaseObs, workers, l.moved, now, c.assignConfig())
	c.forgetMoves(leases, now)
	for _, m := range moves {
		if err := c.writeMove(ctx, m, now); err != nil {
			return err
		}
	}
	return nil
}

// assignConfig is the leader's Assign configuration, from the coordinator's.
func (c *Coordinator) assignConfig() AssignConfig {
	return AssignConfig{FailoverTime: c.cfg.FailoverTime, MaxLeasesPerWorker: c.cfg.MaxLeasesPerWorker,
		MaxMovesPerRound: c.cfg.MaxMovesPerRound}
}

// LeaderMoves returns how many assignments this worker wrote while it led (takes and handoffs that
// landed).
func (c *Coordinator) LeaderMoves() int { return int(c.moveCount.Load()) }

// writeMove writes one assignment: a take of an unowned or expired lease, or a handoff of a live one.
// A lost race (the lease changed since the scan) is not an error: the next round sees it.
func (c *Coordinator) writeMove(ctx context.Context, m Move, now time.Time) error {
	valid := c.lead.el.validFor()
	if valid <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, valid)
	defer cancel()
	kind := "take"
	var err error
	if m.Handoff {
		kind = "handoff"
		_, err = c.table.steal(ctx, m.Lease, m.To)
	} else {
		_, err = c.table.take(ctx, m.Lease, m.To)
	}
	result := "ok"
	switch {
	case errors.Is(err, errConditionFailed):
		result, err = "condition_failed", nil
	case err != nil:
		result = "error"
	default:
		c.lead.moved[m.Lease.Key] = now
		c.moveCount.Add(1)
		c.log.Info("leader assigned a lease", zap.String("shard_id", m.Lease.Key), zap.String("to", m.To),
			zap.String("from", m.Lease.Owner), zap.Bool("handoff", m.Handoff))
	}
	c.metrics.moves.WithLabelValues(kind, result).Inc()
	return err
}

// forgetMoves drops the move times of leases no longer in the table, and of moves older than any
// cooldown could need.
func (c *Coordinator) forgetMoves(leases []Lease, now time.Time) {
	keep := make(map[string]bool, len(leases))
	for _, l := range leases {
		keep[l.Key] = true
	}
	for k, at := range c.lead.moved {
		if !keep[k] || now.Sub(at) > c.assignConfig().WithDefaults().Cooldown {
			delete(c.lead.moved, k)
		}
	}
}

// adoptOwn reads the keys the owner index lists for this worker and adopts each lease it does not hold yet
// whose consistent read still names it; it returns how many it adopted.
func (c *Coordinator) adoptOwn(ctx context.Context) (adopted int, err error) {
	keys, err := c.table.OwnedKeys(ctx, c.cfg.WorkerID)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, k := range keys {
		if ctx.Err() != nil || !c.mayAdopt(k) {
			continue
		}
		l, err := c.table.Get(ctx, k)
		if errors.Is(err, ErrLeaseNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.Owner != c.cfg.WorkerID {
			continue // the index lagged
		}
		raced, err := c.acquire(ctx, l, claimAdopt)
		if err != nil {
			errs = append(errs, err)
		} else if !raced {
			adopted++
		}
	}
	return adopted, errors.Join(errs...)
}

// mayAdopt reports whether key is neither held nor being handed over by this worker, and the coordinator
// is not shutting down.
func (c *Coordinator) mayAdopt(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shuttingDown {
		return false
	}
	if _, held := c.held[key]; held {
		return false
	}
	for e := range c.draining {
		if e.key == key {
			return false
		}
	}
	return true
}

// leaveFleet ends this worker's part in the leadership at shutdown: its load report is removed (the leader
// assigns it nothing more) and the leader lock, if held, is released (another worker takes it at once).
func (c *Coordinator) leaveFleet(ctx context.Context) {
	if err := c.lead.rep.remove(ctx); err != nil {
		c.log.Warn("removing this worker's load report failed; the leader drops it after the failover time", zap.Error(err))
	}
	if err := c.lead.el.release(ctx); err != nil {
		c.log.Warn("releasing the leader lock failed; another worker takes it after the failover time", zap.Error(err))
	}
}
