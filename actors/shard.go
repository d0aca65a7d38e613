package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
)

// ErrStopped is returned to calls that reach a shard's processor after its actors stopped.
var ErrStopped = errors.New("actors: shard processor stopped")

// shardShared is what a shard's actors and its writer goroutines share; fields are set before the
// ShardActor starts and never change, except checkpointed, which only the (sequential) writer uses.
type shardShared struct {
	f         *Factory
	p         *processor
	shard     string
	log       *zap.Logger
	userProps *actor.Props
	// checkpointed is the last position checkpointed in this holding period (or the one it started at).
	checkpointed session.Position
	// epoch is the lease's counter when the holding period started (its fencing token in Redis), validFor
	// the lease's validity (consumer.InitInput; nil: unbounded).
	epoch    int64
	validFor func() time.Duration
	// born is the user actor the ShardActor is spawning (spawnUser), for the user props' producer; only
	// the ShardActor's goroutine uses it.
	born *userActor
	// bornMailbox is the mailbox of the user actor spawnUser is spawning (its field mb), for the user
	// props' mailbox producer.
	bornMailbox *userMailbox
}

// newUserMailbox is the user props' mailbox producer (it runs inside spawnUser's Spawn, on the
// ShardActor's goroutine): the mailbox is a field of the actor being spawned, one allocation less per
// user for the collector to mark.
func (sh *shardShared) newUserMailbox() actor.Mailbox {
	m := sh.bornMailbox
	if m == nil {
		panic(fmt.Sprintf("actors: shard %s: a user mailbox was made outside spawnUser", sh.shard))
	}
	sh.bornMailbox = nil
	return m
}

// produceUser is the user props' producer: it returns the actor spawnUser is spawning, hydrated. A user
// actor is never restarted (its supervisor stops it), so the producer runs only inside spawnUser.
func (sh *shardShared) produceUser() actor.Actor {
	u := sh.born
	if u == nil {
		panic(fmt.Sprintf("actors: shard %s: a user actor was produced outside spawnUser; its state is unknown", sh.shard))
	}
	sh.born = nil
	return u
}

type entryState uint8

const (
	entryLoading  entryState = iota // state being loaded from Redis; records buffered
	entryLive                       // actor running
	entryStopping                   // passivated, waiting for *actor.Terminated; records buffered
)

// userEntry is the ShardActor's record of one user: never look children up by name.
type userEntry struct {
	id       string
	pid      *actor.PID
	mb       *userMailbox // the actor's mailbox, what pid resolves to while the actor lives
	state    entryState
	dirty    bool   // received records since its last flush request
	flushID  uint64 // the last flush it was part of
	lastSeen int64  // Unix ns of its last record
	// due is the processing time (Unix ms) of the user's next session row trigger, as its last flush
	// reply said (1: at the next flush); 0 when none is left. lags: its row lags its state.
	due      int64
	lags     bool
	closeNow bool      // close its session at the next flush (passivation)
	node     wheelNode // its place in shardActor.rows
	buf      []record
	// nPend counts the user's records waiting in shardActor.pend; off places them in the flush's
	// array.
	nPend, off int32
}

// flushState is one flush barrier in progress. The users asked add their effects with add, from their
// own goroutines; the ShardActor reads users after barrierDone (or when none was asked), and the writer
// after that.
type flushState struct {
	id            uint64
	upTo          session.Position
	mu            sync.Mutex
	waiting       atomic.Int64 // users asked that have not answered
	users         []userEffects
	errs          []outRecord
	records       int
	started       time.Time
	barrier       time.Duration
	nUsersAsked   int
	firstInPeriod bool
	// finals are the final flush requests this flush answers when it is written: those waiting when it
	// started (it covers every routed record and every lagging row).
	finals []*finalFlush
	// stale lists the users whose effects the writer dropped as stale (another writer is as far or
	// further): their row state is reset. Set by the writer, read after flushDone.
	stale []string
}

// shardActor owns one shard's users for one holding period.
type shardActor struct {
	sh       *shardShared
	users    map[string]*userEntry
	stopping map[string]*userEntry // by PID id
	dirty    []*userEntry
	// pend holds the records routed to live users since the last barrier (each user's in shard order),
	// and pendUser their users: they travel to each user with its flush request (one message per user and
	// flush). A loaded user's buffered records join them when it is spawned.
	pend     []record
	pendUser []*userEntry
	// rows files the entries with a session row trigger ahead (due ≠ 0) by when to ask them, so a
	// flush finds the users whose rows are due without visiting every user.
	rows *dueWheel[*userEntry]
	live int
	// open counts the entries whose session is open (due ≠ 0): this shard's part of the sessionsOpen
	// gauge, taken back when the shard's processing stops.
	open int

	nBuffered  int // entries holding buffered records (loading, or stopping with records)
	loads      int
	pending    int // records routed since the last barrier
	lastRouted session.Position
	lastFlush  session.Position // upTo of the last barrier
	errs       []outRecord
	cp         consumer.Checkpointer

	nextID, doneID uint64
	inFlight       *flushState
	flushWanted    bool
	held           []chan error
	finals         []*finalFlush
	fatal          error
	stoppingNow    bool
	nFlushes       int
}

func newShardActor(sh *shardShared) *shardActor {
	return &shardActor{sh: sh, users: map[string]*userEntry{}, stopping: map[string]*userEntry{},
		rows: newDueWheel[*userEntry](wheelSlotMs, wheelSlots, sh.f.cfg.Now().UnixMilli())}
}

func (e *userEntry) wheelNode() *wheelNode { return &e.node }

func (a *shardActor) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.fail(fmt.Errorf("shard %s: panic in the ShardActor: %v", a.sh.shard, r))
		}
	}()
	switch m := ctx.Message().(type) {
	case *processBatch:
		a.onBatch(ctx, m)
	case *loaded:
		a.onLoaded(ctx, m)
	case *recoverUsers:
		a.onRecover(ctx, m)
	case *barrierDone:
		a.onBarrierDone(ctx, m)
	case *flushDone:
		a.onFlushDone(ctx, m)
	case *flushTick:
		a.startFlush(ctx)
	case *sweepTick:
		a.sweep(ctx)
	case *finalFlush:
		a.finals = append(a.finals, m)
		if m.cp != nil {
			a.cp = m.cp
		}
		if a.fatal != nil {
			a.replyFinals(a.fatal)
			return
		}
		a.startFlush(ctx)
	case *actor.Terminated:
		a.onTerminated(ctx, m)
	case *actor.Stopping:
		a.stoppingNow = true
	case *actor.Stopped:
		a.sh.f.m.usersLive.Sub(float64(a.live))
		a.live = 0
		a.sh.f.m.sessionsOpen.Sub(float64(a.open))
		a.open = 0
		a.fail(ErrStopped)
		close(a.sh.p.done)
	}
}

func (a *shardActor) onBatch(ctx actor.Context, m *processBatch) {
	if a.fatal != nil {
		m.done <- a.fatal
		return
	}
	if m.cp != nil {
		a.cp = m.cp
	}
	now := a.sh.f.cfg.Now().UnixNano()
	var fresh []*userEntry
	for i := range m.recs {
		r := &m.recs[i]
		e := a.users[r.ev.UserID]
		if e == nil {
			// A copy of the id: the decoded record's strings share one block, which an entry that
			// outlives the record would keep alive.
			e = &userEntry{id: strings.Clone(r.ev.UserID), state: entryLoading}
			a.users[e.id] = e
			fresh = append(fresh, e)
		}
		e.lastSeen = now
		if e.state == entryLive {
			a.pend = append(a.pend, *r)
			a.pendUser = append(a.pendUser, e)
			e.nPend++
			a.markDirty(e)
			continue
		}
		if len(e.buf) == 0 {
			a.nBuffered++
		}
		e.buf = append(e.buf, *r)
	}
	a.errs = append(a.errs, m.errs...)
	a.pending += m.n
	if !m.last.IsZero() {
		a.lastRouted = m.last
	}
	if len(fresh) > 0 {
		a.load(ctx, fresh)
	}
	max := a.sh.f.cfg.FlushMaxRecords
	if a.pending >= max {
		a.startFlush(ctx)
	}
	// Backpressure, answered when a barrier takes the records: too many unflushed, or a due flush cannot
	// start yet. It waits for the flush in flight, or for users' state to load: new users come with
	// nearly every batch, so were the reader to go on, some load would nearly always be in flight, and
	// under full load every flush would be FlushMaxRecords long rather than FlushInterval.
	if (a.pending >= max || a.flushWanted) && a.fatal == nil {
		a.held = append(a.held, m.done)
		return
	}
	m.done <- a.fatal
}

func (a *shardActor) markDirty(e *userEntry) {
	if !e.dirty {
		e.dirty = true
		a.dirty = append(a.dirty, e)
	}
}

// load fetches the entries' state off the actor; the result comes back as *loaded.
func (a *shardActor) load(ctx actor.Context, entries []*userEntry) {
	a.loads++
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.id
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	p := a.sh.p
	p.goRun(func() {
		hashes, err := a.sh.loadUsers(p.ctx, ids)
		root.Send(self, &loaded{entries: entries, hashes: hashes, err: err})
	})
}

func (a *shardActor) onLoaded(ctx actor.Context, m *loaded) {
	a.loads--
	if m.err != nil {
		a.fail(fmt.Errorf("shard %s: load %d users' state: %w", a.sh.shard, len(m.entries), m.err))
		return
	}
	for i, e := range m.entries {
		u, err := session.FromFields(e.id, a.sh.shard, m.hashes[i])
		if err != nil {
			a.fail(fmt.Errorf("shard %s: unreadable state in Redis: %w", a.sh.shard, err))
			return
		}
		ua := &userActor{sh: a.sh, u: u, lastSeenMs: e.lastSeen / int64(time.Millisecond), entry: e}
		if !e.lags { // not loaded as listed in the lagging set (onRecover)
			ua.stored = lagsOfHash(m.hashes[i], a.sh.shard)
		}
		e.pid, e.mb = a.spawnUser(ctx, ua)
		e.state = entryLive
		a.live++
		a.sh.f.m.spawned.Inc()
		a.sh.f.m.usersLive.Inc()
		if len(e.buf) > 0 {
			// Its records go with its first flush request, as a live user's do.
			for _, r := range e.buf {
				a.pend = append(a.pend, r)
				a.pendUser = append(a.pendUser, e)
			}
			e.nPend += int32(len(e.buf))
			e.buf = nil
			a.nBuffered--
			a.markDirty(e)
		}
	}
	if a.flushWanted || len(a.finals) > 0 {
		a.startFlush(ctx)
	}
}

// spawnUser spawns the actor of a user whose state is loaded, with that state: the user props' producer
// takes it from shardShared.born (the producer runs inside Spawn, on this goroutine), so a new actor
// needs no message to be hydrated. It returns the actor's PID and its mailbox.
func (a *shardActor) spawnUser(ctx actor.Context, u *userActor) (*actor.PID, *userMailbox) {
	a.sh.born, a.sh.bornMailbox = u, &u.mb
	defer func() { a.sh.born, a.sh.bornMailbox = nil, nil }()
	pid := ctx.Spawn(a.sh.userProps)
	return pid, &u.mb
}

// send posts msg to the user's actor. It is what ctx.Send(e.pid, msg) does for a live local actor —
// protoactor resolves the PID to the actor's process, which posts to its mailbox — without resolving one
// of up to a million PIDs per message (a lookup that missed the CPU's caches at every flush). The
// ShardActor sends only to live users: a stopping one is sent nothing until it is spawned again.
func (e *userEntry) send(msg any) { e.mb.PostUserMessage(msg) }

// onRecover loads the users whose rows the shard's previous owners left lagging; their rows are written
// at their next trigger (they count as seen now, so the idle close comes gap + close delay later).
func (a *shardActor) onRecover(ctx actor.Context, m *recoverUsers) {
	now := a.sh.f.cfg.Now().UnixNano()
	var fresh []*userEntry
	for _, id := range m.ids {
		if a.users[id] != nil {
			continue
		}
		e := &userEntry{id: id, state: entryLoading, lastSeen: now}
		a.users[id] = e
		a.setDue(e, 1, true)
		fresh = append(fresh, e)
	}
	if len(fresh) > 0 {
		a.sh.f.m.rowsRecovered.Add(float64(len(fresh)))
		a.sh.log.Info("loading users whose session rows the previous owner left lagging", zap.Int("users", len(fresh)))
		a.load(ctx, fresh)
	}
}

// setDue records an entry's next row trigger (1: at the next flush; 0: none) and files it for then. A
// trigger ahead means an open session (RowDue: 0 only without a session or when it is closed with its row
// up to date), so it also keeps the open count.
func (a *shardActor) setDue(e *userEntry, due int64, lags bool) {
	switch {
	case e.due == 0 && due != 0:
		a.open++
		a.sh.f.m.sessionsOpen.Inc()
	case e.due != 0 && due == 0:
		a.open--
		a.sh.f.m.sessionsOpen.Dec()
	}
	e.due, e.lags = due, lags
	if due != 0 {
		a.rows.schedule(e, due)
	} else {
		a.rows.remove(e)
	}
}

// dueUsers returns the live users to ask at a flush at nowMs, beyond the dirty ones (asked anyway): those
// whose row trigger is due or that close now (passivation); for a final flush, also every user whose row
// lags. The asked users' replies file them again (onBarrierDone); users still loading stay filed.
func (a *shardActor) dueUsers(nowMs int64, final bool) []*userEntry {
	var due, loading []*userEntry
	a.rows.take(nowMs, func(e *userEntry) {
		switch {
		case e.state != entryLive:
			loading = append(loading, e)
		case !e.dirty:
			due = append(due, e)
		}
	})
	for _, e := range loading {
		a.rows.schedule(e, nowMs)
	}
	if final {
		for _, e := range a.users {
			// Those not taken above: still filed, due later.
			if e.state == entryLive && !e.dirty && e.lags && a.rows.filed(e) {
				due = append(due, e)
			}
		}
	}
	return due
}

// startFlush starts a barrier over the dirty users and those whose session row is due (with a final
// flush pending: every user whose row lags), unless one is in flight or records are still buffered or,
// for a final flush, users still load (then it starts when that ends).
func (a *shardActor) startFlush(ctx actor.Context) {
	if a.fatal != nil {
		return
	}
	final := len(a.finals) > 0
	if a.inFlight != nil || a.nBuffered > 0 || (final && a.loads > 0) {
		a.flushWanted = true
		return
	}
	a.flushWanted = false
	nowMs := a.sh.f.cfg.Now().UnixMilli()
	due := a.dueUsers(nowMs, final)
	if len(a.dirty) == 0 && len(due) == 0 && len(a.errs) == 0 && a.lastRouted.Compare(a.lastFlush) <= 0 {
		a.releaseHeld()
		a.replyFinals(nil)
		return
	}
	a.nextID++
	n := len(a.dirty) + len(due)
	fs := &flushState{id: a.nextID, upTo: a.lastRouted, errs: a.errs, records: a.pending,
		started: time.Now(), nUsersAsked: n, users: make([]userEffects, 0, n)}
	fs.waiting.Store(int64(n))
	req := &flushRequest{fs: fs, nowMs: nowMs, final: final}
	var closeReq *flushRequest
	// The routed records, grouped by user in shard order into one array; each user with records gets
	// them in its own request (one array of requests per flush).
	recs := make([]record, len(a.pend))
	withRecs := 0
	off := int32(0)
	for _, e := range a.dirty {
		if e.nPend > 0 {
			e.off, off = off, off+e.nPend
			e.nPend = 0
			withRecs++
		}
	}
	for i, e := range a.pendUser {
		recs[e.off+e.nPend] = a.pend[i]
		e.nPend++
	}
	reqs := make([]flushRequest, 0, withRecs)
	atMs := func(e *userEntry) int64 { return e.lastSeen / int64(time.Millisecond) }
	ask := func(e *userEntry) {
		e.dirty, e.flushID = false, fs.id
		switch {
		case e.nPend > 0:
			reqs = append(reqs, flushRequest{fs: fs, nowMs: nowMs, final: final, close: e.closeNow,
				recs: recs[e.off : e.off+e.nPend : e.off+e.nPend], atMs: atMs(e)})
			e.nPend = 0
			e.send(&reqs[len(reqs)-1])
		case e.closeNow:
			if closeReq == nil {
				closeReq = &flushRequest{fs: fs, nowMs: nowMs, final: final, close: true}
			}
			e.send(closeReq)
		default:
			e.send(req)
		}
	}
	for _, e := range a.dirty {
		ask(e)
	}
	for _, e := range due {
		ask(e)
	}
	clear(a.dirty)
	a.dirty = a.dirty[:0]
	clear(a.pend)
	a.pend = a.pend[:0]
	clear(a.pendUser)
	a.pendUser = a.pendUser[:0]
	a.errs, a.pending, a.lastFlush = nil, 0, a.lastRouted
	if final {
		// One round: row triggers that come due while it writes are the next flushes', not the final's.
		fs.finals, a.finals = a.finals, nil
	}
	a.inFlight = fs
	a.releaseHeld()
	if n == 0 {
		a.dispatch(ctx, fs)
	}
}

// releaseHeld answers the batches held for backpressure.
func (a *shardActor) releaseHeld() {
	for _, d := range a.held {
		d <- nil
	}
	a.held = nil
}

// add records one asked user's effects; it reports whether they were the last awaited.
func (fs *flushState) add(e userEffects) (last bool) {
	fs.mu.Lock()
	fs.users = append(fs.users, e)
	fs.mu.Unlock()
	return fs.waiting.Add(-1) == 0
}

func (a *shardActor) onBarrierDone(ctx actor.Context, m *barrierDone) {
	fs := a.inFlight
	if fs == nil || fs != m.fs {
		return
	}
	for i := range fs.users {
		u := &fs.users[i]
		if e := u.entry; e != nil && e.flushID == fs.id {
			e.closeNow = false
			a.setDue(e, u.due, u.lags)
		}
	}
	a.dispatch(ctx, fs)
}

// dispatch hands a complete barrier to a writer goroutine.
func (a *shardActor) dispatch(ctx actor.Context, fs *flushState) {
	fs.barrier = time.Since(fs.started)
	a.nFlushes++
	n, cp := a.nFlushes, a.cp
	self, root := ctx.Self(), ctx.ActorSystem().Root
	p := a.sh.p
	p.goRun(func() {
		err := a.sh.writeFlush(p.ctx, fs, cp, n)
		root.Send(self, &flushDone{id: fs.id, err: err})
	})
}

func (a *shardActor) onFlushDone(ctx actor.Context, m *flushDone) {
	fs := a.inFlight
	if fs == nil || fs.id != m.id {
		return
	}
	a.inFlight = nil
	if m.err != nil {
		a.finals = slices.Concat(fs.finals, a.finals) // fail answers them
		a.fail(fmt.Errorf("shard %s: flush %d: %w", a.sh.shard, m.id, m.err))
		return
	}
	a.doneID = m.id
	a.sh.f.m.flushSeconds.Observe(time.Since(fs.started).Seconds())
	for _, id := range fs.stale {
		// What its state says of the row may not be what the table holds: write the row again.
		if e := a.users[id]; e != nil && e.state == entryLive {
			e.send(&rowLost{})
			a.setDue(e, 1, true)
		}
	}
	switch {
	case len(fs.finals) == 0:
	case len(fs.stale) == 0:
		for _, f := range fs.finals {
			f.done <- nil
		}
	default: // the stale users' rows are written again first
		a.finals = slices.Concat(fs.finals, a.finals)
	}
	if a.flushWanted || a.pending >= a.sh.f.cfg.FlushMaxRecords || len(a.finals) > 0 {
		a.startFlush(ctx)
	}
}

func (a *shardActor) replyFinals(err error) {
	for _, f := range a.finals {
		f.done <- err
	}
	a.finals = nil
}

// sweep passivates users idle for PassivateAfter whose effects are all written and whose session is
// closed with its final row written; an idle user whose session is still open is closed at the next
// flush (its row written if it lags) and passivated at a later sweep.
func (a *shardActor) sweep(ctx actor.Context) {
	if a.fatal != nil || a.stoppingNow {
		return
	}
	now := a.sh.f.cfg.Now()
	cutoff, nowMs := now.Add(-a.sh.f.cfg.PassivateAfter).UnixNano(), now.UnixMilli()
	for _, e := range a.users {
		if e.state != entryLive || e.dirty || e.flushID > a.doneID || e.lastSeen > cutoff {
			continue
		}
		if e.due != 0 {
			e.closeNow = true
			a.rows.schedule(e, nowMs) // asked at the next flush
			continue
		}
		e.state = entryStopping
		a.stopping[e.pid.Id] = e
		ctx.Poison(e.pid)
	}
}

func (a *shardActor) onTerminated(ctx actor.Context, m *actor.Terminated) {
	e := a.stopping[m.Who.GetId()]
	if e == nil {
		if !a.stoppingNow {
			a.fail(fmt.Errorf("shard %s: a user actor stopped unexpectedly (%s); see the log for its panic", a.sh.shard, m.Who.GetId()))
		}
		return
	}
	delete(a.stopping, m.Who.GetId())
	a.live--
	a.sh.f.m.usersLive.Dec()
	a.sh.f.m.passivated.Inc()
	e.pid, e.mb = nil, nil
	if len(e.buf) == 0 {
		a.rows.remove(e) // not filed (passivated with no row trigger left); to be sure
		delete(a.users, e.id)
		return
	}
	// Records arrived while it stopped: its state is in Redis now, so load it and start it again.
	e.state = entryLoading
	a.load(ctx, []*userEntry{e})
}

// fail stops the shard's progress for good: no later flush or checkpoint; every waiting call gets err.
// A failure other than the end of the holding period (a permanent write error, unreadable state, a
// panic) is permanent for the worker (retry.IsPermanent), and reported to the factory's Failed channel,
// so that the process stops and says why instead of holding a shard it no longer processes.
func (a *shardActor) fail(err error) {
	if a.fatal == nil {
		switch {
		case errors.Is(err, ErrStopped):
		case errors.Is(err, lease.ErrLeaseLost), errors.Is(err, context.Canceled), a.sh.p.ctx.Err() != nil:
			a.sh.log.Info("shard processing stopped: the holding period ended", zap.Error(err))
		default:
			err = retry.Permanent(err)
			a.sh.f.m.errors.WithLabelValues("fatal").Inc()
			a.sh.log.Error("shard processing stopped", zap.Error(err))
			a.sh.f.reportFatal(err)
		}
		a.fatal = err
	}
	for _, d := range a.held {
		d <- a.fatal
	}
	a.held = nil
	if fs := a.inFlight; fs != nil {
		a.finals, fs.finals = slices.Concat(fs.finals, a.finals), nil
	}
	a.replyFinals(a.fatal)
}
