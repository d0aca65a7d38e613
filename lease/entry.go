package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// entryState is where one lease is in this worker's hands.
type entryState int32

const (
	// statePending: we are leaseOwner but checkpointOwner names the previous
	// owner; we renew the lease and wait for the handoff to complete.
	statePending entryState = iota
	// stateActive: we are leaseOwner, no handoff; the holder is running.
	stateActive
	// stateDraining: another worker claimed the lease; we are
	// checkpointOwner and may write the final checkpoint, then pass it on.
	stateDraining
	// stateDone: we no longer have anything to do with the lease.
	stateDone
)

func (s entryState) String() string {
	return [...]string{"pending", "active", "draining", "done"}[s]
}

// entry is one lease in this worker's hands, from acquisition to done. Every
// write to the lease goes through it under mu, so renewals, checkpoints and
// releases are serialized and counter is always the value we last wrote.
type entry struct {
	c   *Coordinator
	key string
	log *zap.Logger

	mu           sync.Mutex
	state        entryState
	counter      int64     // leaseCounter as we last wrote or verified it
	lastBump     time.Time // when the last successful counter bump was sent (our clock)
	lease        Lease     // the item as last written or read
	prevOwner    string    // pending: the checkpointOwner we wait for
	pendingSince time.Time // pending: when we acquired it (our clock)
	released     bool      // done because we released or passed it on
	handle       *Handle   // active or draining
	processDone  bool      // the Process call for handle returned

	pub      atomic.Int32 // state, readable without mu
	gen      atomic.Uint64
	deadline Timer
	cancel   atomic.Pointer[context.CancelCauseFunc]
	expired  atomic.Bool               // not renewed within the failover time by our clock
	bumpAt   atomic.Pointer[time.Time] // lastBump, readable without mu (Handle.ValidFor)
}

func (e *entry) stateIs(s entryState) bool { return entryState(e.pub.Load()) == s }

func (e *entry) setStateLocked(s entryState) {
	e.state = s
	e.pub.Store(int32(s))
}

func (e *entry) cfg() *Config { return &e.c.cfg }

func (e *entry) me() string { return e.c.cfg.WorkerID }

// lostCause is the cause of a holder's context and the error of its writes
// after the lease is lost.
func (e *entry) lostCause(why string) error {
	return fmt.Errorf("%w: shard %s, worker %s: %s", ErrLeaseLost, e.key, e.me(), why)
}

func (e *entry) cancelWith(cause error) {
	if f := e.cancel.Load(); f != nil {
		(*f)(cause)
	}
}

// bumpedLocked records a successful fenced write that set the counter, sent
// at sent, and re-arms the local deadline: if no other bump succeeds within
// the failover time, the holder is told at once that the lease is lost.
func (e *entry) bumpedLocked(l Lease, sent time.Time) {
	e.lease = l
	e.counter = l.Counter
	e.lastBump = sent
	e.bumpAt.Store(&sent)
	gen := e.gen.Add(1)
	if e.deadline != nil {
		e.deadline.Stop()
	}
	left := e.cfg().FailoverTime - e.cfg().Clock.Now().Sub(sent)
	e.deadline = e.cfg().Clock.AfterFunc(left, func() {
		if e.gen.Load() != gen {
			return
		}
		e.expired.Store(true)
		e.cancelWith(e.lostCause("not renewed within the failover time"))
	})
}

// checkDeadlineLocked reports whether the lease is still provably ours by our
// own clock; if not, it loses it.
func (e *entry) checkDeadlineLocked() bool {
	if e.expired.Load() || e.cfg().Clock.Now().Sub(e.lastBump) > e.cfg().FailoverTime {
		e.loseLocked("not renewed within the failover time")
		return false
	}
	return true
}

// finishLocked moves the entry to done and forgets it.
func (e *entry) finishLocked() {
	prev := e.state
	e.setStateLocked(stateDone)
	e.gen.Add(1)
	if e.deadline != nil {
		e.deadline.Stop()
	}
	c := e.c
	c.mu.Lock()
	if prev == stateDraining {
		delete(c.draining, e)
	} else if c.held[e.key] == e {
		delete(c.held, e.key)
	}
	c.mu.Unlock()
	c.updateHeldGauge()
}

// loseLocked ends the entry because the lease is no longer ours.
func (e *entry) loseLocked(why string) {
	if e.state == stateDone {
		return
	}
	e.log.Warn("lease lost", zap.String("reason", why), zap.Stringer("state", e.state))
	e.c.metrics.lost.Inc()
	e.cancelWith(e.lostCause(why))
	e.finishLocked()
}

// toDrainingLocked is called when a re-read shows another worker claimed the
// lease for balance (we are checkpointOwner): the holder is asked to finish.
func (e *entry) toDrainingLocked(cur Lease) {
	e.lease = cur
	e.gen.Add(1)
	if e.deadline != nil {
		e.deadline.Stop()
	}
	c := e.c
	c.mu.Lock()
	if c.held[e.key] == e {
		delete(c.held, e.key)
	}
	c.draining[e] = struct{}{}
	c.mu.Unlock()
	e.setStateLocked(stateDraining)
	e.log.Info("lease claimed by another worker; asking holder to checkpoint and hand over", zap.String("to", cur.Owner))
	e.cancelWith(fmt.Errorf("%w: shard %s, worker %s, new owner %s", ErrHandoffRequested, e.key, e.me(), cur.Owner))
	if e.processDone || e.handle == nil { // nobody left to checkpoint: pass it on now
		e.releaseQuietlyLocked("pass on")
	}
}

// activateLocked starts the holder for a lease that is ours with no handoff
// pending. During shutdown it releases the lease instead.
func (e *entry) activateLocked(l Lease) {
	c := e.c
	c.mu.Lock()
	stopping := c.shuttingDown
	if !stopping {
		c.holders.Add(1)
		c.processing[e] = struct{}{}
	}
	c.mu.Unlock()
	if stopping {
		e.releaseQuietlyLocked("release during shutdown")
		return
	}
	e.setStateLocked(stateActive)
	ctx, cancel := context.WithCancelCause(context.Background())
	e.cancel.Store(&cancel)
	if e.expired.Load() { // the deadline fired before the cancel func was stored
		cancel(e.lostCause("not renewed within the failover time"))
	}
	h := &Handle{e: e, ctx: ctx, start: l.Clone()}
	e.handle = h
	e.log.Info("lease held; starting processing", zap.Stringer("checkpoint", l.Checkpoint))
	go func() {
		defer c.holders.Done()
		defer func() {
			c.mu.Lock()
			delete(c.processing, e)
			c.mu.Unlock()
		}()
		defer cancel(ErrLeaseReleased)
		c.cfg.Process(h)
		e.afterProcess()
	}()
}

// afterProcess runs when Process returns: a lease still held is released
// (passed on if a handoff is waiting) without a checkpoint.
func (e *entry) afterProcess() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.processDone = true
	if e.state == stateDone {
		return
	}
	e.releaseQuietlyLocked("release after Process returned")
}

// releaseQuietlyLocked releases the lease on the coordinator's own account,
// with a bounded context; a failure is logged (the lease then expires or the
// new owner's handoff times out, as after a crash).
func (e *entry) releaseQuietlyLocked(what string) {
	ctx, cancel := context.WithTimeout(context.Background(), ioBound(e.cfg().FailoverTime))
	defer cancel()
	if err := e.releaseLocked(ctx); err != nil {
		e.log.Warn(what+" failed", zap.Error(err))
	}
}

// renew renews a pending or active lease once.
func (e *entry) renew(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != statePending && e.state != stateActive {
		return
	}
	if !e.checkDeadlineLocked() {
		return
	}
	now := e.cfg().Clock.Now()
	if e.state == stateActive && now.Sub(e.lastBump) < e.cfg().RenewInterval/2 {
		return // a checkpoint renewed it a moment ago
	}
	l, err := e.c.table.renew(ctx, e.key, e.me(), e.counter)
	took := e.cfg().Clock.Now().Sub(now)
	e.c.metrics.renewLatency.Observe(took.Seconds())
	if took > e.cfg().RenewInterval {
		e.log.Warn("slow renew", zap.Duration("took", took), zap.Error(err))
	}
	if err == nil {
		e.bumpedLocked(l, now)
		if e.state == statePending {
			e.checkPendingLocked(ctx, l)
		}
		return
	}
	e.c.metrics.renewFailures.Inc()
	if !errors.Is(err, errConditionFailed) {
		e.c.retryLater(e.log, "renew", err)
		return
	}
	// The fence failed: re-read before calling the lease lost.
	cur, gerr := e.c.table.Get(ctx, e.key)
	switch {
	case errors.Is(gerr, ErrLeaseNotFound):
		e.loseLocked("lease deleted")
	case gerr != nil:
		e.c.retryLater(e.log, "re-read after failed renew", gerr)
	case cur.Owner == e.me() && cur.Counter == e.counter+1:
		e.bumpedLocked(cur, now) // an earlier attempt of this renew landed
		if e.state == statePending {
			e.checkPendingLocked(ctx, cur)
		}
	case e.state == stateActive && cur.CheckpointOwner == e.me():
		e.toDrainingLocked(cur)
	default:
		e.loseLocked(fmt.Sprintf("now owned by %q at counter %d (we had %d)", cur.Owner, cur.Counter, e.counter))
	}
}

// pollHandoff re-reads a pending lease to see whether the handoff completed.
func (e *entry) pollHandoff(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != statePending || !e.checkDeadlineLocked() {
		return
	}
	cur, err := e.c.table.Get(ctx, e.key)
	switch {
	case errors.Is(err, ErrLeaseNotFound):
		e.loseLocked("lease deleted")
	case err != nil:
		e.c.retryLater(e.log, "handoff poll", err)
	case cur.Owner != e.me() || cur.Counter != e.counter:
		e.loseLocked(fmt.Sprintf("while waiting for handoff, now owned by %q at counter %d (we had %d)", cur.Owner, cur.Counter, e.counter))
	default:
		e.checkPendingLocked(ctx, cur)
	}
}

// checkPendingLocked starts a pending lease whose handoff completed, or ends
// the handoff itself once HandoffTimeout has passed.
func (e *entry) checkPendingLocked(ctx context.Context, cur Lease) {
	if cur.CheckpointOwner == "" {
		e.c.metrics.handoffs.WithLabelValues("completed").Inc()
		e.log.Info("handoff complete", zap.String("from", e.prevOwner),
			zap.Duration("waited", e.cfg().Clock.Now().Sub(e.pendingSince)))
		e.lease = cur
		e.activateLocked(cur)
		return
	}
	if e.cfg().Clock.Now().Sub(e.pendingSince) < e.cfg().HandoffTimeout {
		return
	}
	sent := e.cfg().Clock.Now()
	l, err := e.c.table.endHandoff(ctx, e.key, e.me(), cur.CheckpointOwner, e.counter)
	if err == nil {
		e.c.metrics.handoffs.WithLabelValues("timed_out").Inc()
		e.log.Warn("handoff timed out; proceeding without the previous owner's final checkpoint",
			zap.String("from", cur.CheckpointOwner), zap.Stringer("checkpoint", l.Checkpoint))
		e.bumpedLocked(l, sent)
		e.activateLocked(l)
		return
	}
	if !errors.Is(err, errConditionFailed) {
		e.c.retryLater(e.log, "ending a timed-out handoff", err)
		return
	}
	re, gerr := e.c.table.Get(ctx, e.key)
	switch {
	case gerr != nil && !errors.Is(gerr, ErrLeaseNotFound):
		e.c.retryLater(e.log, "re-read after failed handoff end", gerr)
	case gerr == nil && re.Owner == e.me() && re.Counter == e.counter && re.CheckpointOwner == "":
		e.checkPendingLocked(ctx, re) // passed on meanwhile
	case gerr == nil && re.Owner == e.me() && re.Counter == e.counter+1 && re.CheckpointOwner == "":
		e.bumpedLocked(re, sent) // our earlier attempt landed
		e.activateLocked(re)
	default:
		e.loseLocked("lease changed while ending a timed-out handoff")
	}
}

// shutdown starts a clean shutdown of the entry: a holder is asked to finish;
// a lease still waiting for a handoff is released.
func (e *entry) shutdown(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case statePending:
		if err := e.releaseLocked(ctx); err != nil {
			e.log.Warn("release of a lease waiting for a handoff failed", zap.Error(err))
		}
	case stateActive:
		e.cancelWith(fmt.Errorf("%w: shard %s, worker %s", ErrShutdownRequested, e.key, e.me()))
	}
}

// release releases the lease if it is still in our hands (see releaseLocked).
func (e *entry) release(ctx context.Context, _ *Handle) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.releaseLocked(ctx)
}

// releaseLocked gives the lease up: as owner, leaseOwner is removed (a
// pending handoff into us stays recorded for the next owner); as draining
// checkpointOwner, checkpointOwner is removed so the new owner starts.
func (e *entry) releaseLocked(ctx context.Context) error {
	switch e.state {
	case stateDone:
		if e.released {
			return nil
		}
		return e.lostCause("already lost")
	case stateDraining:
		return e.passOnLocked(ctx)
	}
	if !e.checkDeadlineLocked() {
		return e.lostCause("not renewed within the failover time")
	}
	l, err := e.c.table.evict(ctx, e.key, e.me(), e.counter)
	if err == nil {
		e.lease = l
		e.released = true
		e.c.metrics.released.Inc()
		e.log.Info("lease released", zap.Stringer("checkpoint", l.Checkpoint))
		e.cancelWith(ErrLeaseReleased)
		e.finishLocked()
		return nil
	}
	if !errors.Is(err, errConditionFailed) {
		return fmt.Errorf("release shard %s, worker %s: %w", e.key, e.me(), err)
	}
	cur, gerr := e.c.table.Get(ctx, e.key)
	switch {
	case gerr != nil && !errors.Is(gerr, ErrLeaseNotFound):
		return fmt.Errorf("release shard %s, worker %s: re-read: %w", e.key, e.me(), gerr)
	case gerr == nil && e.state == stateActive && cur.CheckpointOwner == e.me():
		e.toDrainingLocked(cur)
		return e.passOnLocked(ctx)
	case gerr == nil && cur.Owner != e.me() && cur.Counter == e.counter+1:
		e.released = true // an earlier attempt landed
		e.cancelWith(ErrLeaseReleased)
		e.finishLocked()
		return nil
	}
	e.loseLocked("lease changed before release")
	return e.lostCause("lease changed before release")
}

// passOnLocked ends a handoff out of this worker: checkpointOwner is removed.
func (e *entry) passOnLocked(ctx context.Context) error {
	if e.state == stateDone {
		return nil
	}
	_, err := e.c.table.passOn(ctx, e.key, e.me())
	if err == nil {
		e.released = true
		e.c.metrics.released.Inc()
		e.log.Info("lease handed over")
		e.finishLocked()
		return nil
	}
	if errors.Is(err, errConditionFailed) {
		e.loseLocked("handoff ended by the new owner before we passed it on")
		return e.lostCause("handoff ended by the new owner")
	}
	return fmt.Errorf("pass on shard %s, worker %s: %w", e.key, e.me(), err)
}

// write applies a holder's fenced update. While active it is fenced on the
// counter and ownership and bumps the counter; while draining (a handoff out
// of us) it is fenced on checkpointOwner = us and leaves the counter to the
// new owner. landed tells whether a re-read item already carries the update
// (an earlier attempt that succeeded).
func (e *entry) write(ctx context.Context, call string, build func(cur Lease) (*update, error), landed func(Lease) bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case stateDone:
		return e.lostCause("lease no longer held")
	case stateActive:
		if !e.checkDeadlineLocked() {
			return e.lostCause("not renewed within the failover time")
		}
		u, err := build(e.lease)
		if err != nil {
			return err
		}
		sent := e.cfg().Clock.Now()
		l, err := e.c.table.apply(ctx, call, e.key, u.fenceCounter(e.counter).ownerIs(e.me()))
		if err == nil {
			e.bumpedLocked(l, sent)
			return nil
		}
		if !errors.Is(err, errConditionFailed) {
			return fmt.Errorf("worker %s: %w", e.me(), err)
		}
		cur, gerr := e.c.table.Get(ctx, e.key)
		switch {
		case errors.Is(gerr, ErrLeaseNotFound):
			e.loseLocked("lease deleted")
			return e.lostCause("lease deleted")
		case gerr != nil:
			return fmt.Errorf("%s shard %s, worker %s: re-read after failed condition: %w", call, e.key, e.me(), gerr)
		case cur.Owner == e.me() && cur.Counter == e.counter+1 && landed(cur):
			e.bumpedLocked(cur, sent)
			return nil
		case cur.CheckpointOwner == e.me():
			e.toDrainingLocked(cur) // claimed for balance: we may still write the final checkpoint
		default:
			e.loseLocked(fmt.Sprintf("now owned by %q at counter %d (we had %d)", cur.Owner, cur.Counter, e.counter))
			return e.lostCause("lease taken by another worker")
		}
		fallthrough
	case stateDraining:
		u, err := build(e.lease)
		if err != nil {
			return err
		}
		l, err := e.c.table.apply(ctx, call, e.key, u.checkpointOwnerIs(e.me()))
		if err == nil {
			e.lease = l
			return nil
		}
		if !errors.Is(err, errConditionFailed) {
			return fmt.Errorf("worker %s: %w", e.me(), err)
		}
		cur, gerr := e.c.table.Get(ctx, e.key)
		if gerr == nil && cur.CheckpointOwner == e.me() && landed(cur) {
			e.lease = cur
			return nil
		}
		if gerr != nil && !errors.Is(gerr, ErrLeaseNotFound) {
			return fmt.Errorf("%s shard %s, worker %s: re-read after failed condition: %w", call, e.key, e.me(), gerr)
		}
		e.loseLocked("handoff ended by the new owner")
		return e.lostCause("handoff ended by the new owner")
	}
	return fmt.Errorf("%s shard %s, worker %s: lease not started (state %v)", call, e.key, e.me(), e.state)
}
