package actors

import (
	"encoding/json"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/enrich"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/messages"
)

// userActor runs the per-user logic of one user on one shard. It is spawned with its state (loaded from
// Redis; shardActor.spawnUser), applies the records each flush request brings, and hands its effects to
// the ShardActor in reply. It does no I/O: geo lookups
// that the in-process cache cannot answer run on the resolver's goroutines and come back as geoResolved.
type userActor struct {
	sh      *shardShared
	u       session.User
	applied bool
	// rows are the final rows of sessions closed since the last flush by an event beyond the gap.
	rows    []messages.Session
	outputs []output
	// lastSeenMs is the processing time of the user's last record (or of its hydration): the idle
	// close's clock.
	lastSeenMs int64
	entry      *userEntry // the ShardActor's entry of this user: passed back in replies, never read here
	stored     storedLags // what the shard's lagging set holds for the user

	// n counts the records this actor applied; it names a record in queue and in geoResolved.
	n uint64
	// queue holds, in order, the applied records waiting for a geo answer and every located or output
	// record behind them, so the user's outputs and location changes keep their order. Empty (nil) on
	// the hot path.
	queue []queued
	// held is a flush reply waiting for the lookups of records it covers; nil otherwise.
	held *heldFlush

	// mb is the actor's mailbox (spawnUser): part of the actor, so a user costs the collector one
	// object less.
	mb userMailbox
}

// queued is one applied record waiting in userActor.queue.
type queued struct {
	n       uint64
	rec     record
	routes  uint64       // the routes it matched (bit i: route i); 0 when it is no output
	located bool         // its user_ip is being located (else it only keeps its place)
	done    bool         // loc is the answer
	loc     geo.Location //
}

// heldFlush is the reply to a flush request that came while lookups of records it covers were pending:
// the effects as of the request, completed as those lookups answer.
type heldFlush struct {
	fs         *flushState
	upTo       uint64 // the last record (by userActor.n) the flush covers
	u          session.User
	applied    bool
	rowChanged bool
	rows       []messages.Session
	outputs    []output
}

func (a *userActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *geoResolved:
		a.onResolved(ctx, m)
	case *flushRequest:
		if len(m.recs) > 0 {
			a.lastSeenMs = m.atMs
			a.apply(ctx, m.recs)
		}
		a.onFlush(ctx, m)
	case *rowLost:
		a.u.Row = session.Row{}
		a.u.ForgetStored()
		a.stored = storedLags{}
	}
}

// onFlush answers a flush request: the state, outputs and the session rows their triggers select
// (package session's RowCheck: start, close, update interval, reopen, final).
func (a *userActor) onFlush(ctx actor.Context, m *flushRequest) {
	policy := a.sh.f.cfg.rows
	rows := a.rows
	cause, closes := a.u.RowCheck(m.nowMs, a.lastSeenMs, policy, m.close, m.final)
	if cause != session.RowNone {
		rows = append(rows, a.u.Current)
	}
	rowChanged := cause != session.RowNone || closes
	if rowChanged {
		// Optimistic: the flush writes the row before the state that records it, or the shard stops
		// (the next owner rehydrates from Redis); effects dropped as stale come back as rowLost.
		a.u.RowWritten(m.nowMs, closes)
	}
	if len(a.queue) == 0 {
		a.reply(ctx, m.fs, a.effects(&a.u, a.applied, rowChanged, rows, a.outputs))
	} else {
		// Every queued record is covered by this flush (records after it arrive later): reply once
		// their lookups answer, which the resolver guarantees within its lookup timeout.
		a.held = &heldFlush{fs: m.fs, upTo: a.n, u: a.u, applied: a.applied, rowChanged: rowChanged, rows: rows, outputs: a.outputs}
		a.sh.f.m.heldReplies.Inc()
	}
	a.applied, a.rows, a.outputs = false, nil, nil
}

func (a *userActor) apply(ctx actor.Context, recs []record) {
	rules := &a.sh.f.cfg.Rules
	routes := a.sh.f.cfg.routes
	g := a.sh.f.cfg.Geo
	for i := range recs {
		r := &recs[i]
		o := a.u.Apply(r.pos, r.ev, *rules)
		if !o.Applied {
			if o.Duplicate {
				a.sh.f.m.duplicates.Inc()
			}
			continue
		}
		a.applied = true
		a.n++
		if o.NewSession {
			a.sh.f.m.sessionsStarted.Inc()
			a.sh.f.sessionsStarted.Add(1)
			if o.Closed.SessionID != "" {
				a.rows = append(a.rows, o.Closed)
			}
		}
		match := routes.Match(r.ev)
		locate := g != nil && r.ev.UserIP != ""
		if !locate && (match == 0 || len(a.queue) == 0) {
			if match != 0 {
				a.outputs = a.sh.appendOutputs(a.outputs, r, match, a.u.Name, geo.Location{}, false)
			}
			continue
		}
		q := queued{n: a.n, rec: *r, routes: match, located: locate, done: true}
		if locate {
			q.loc, q.done = g.Cached(r.ev.UserIP)
		}
		if q.done && len(a.queue) == 0 {
			a.complete(&q, false) // the hot path: answered from memory, nothing ahead of it
			continue
		}
		if !q.done {
			a.sh.f.m.geoOffActor.Inc()
			n, self, root := a.n, ctx.Self(), ctx.ActorSystem().Root
			g.Resolve(r.ev.UserIP, func(loc geo.Location) { root.Send(self, &geoResolved{n: n, loc: loc}) })
		}
		a.queue = append(a.queue, q)
	}
}

func (a *userActor) onResolved(ctx actor.Context, m *geoResolved) {
	for i := range a.queue {
		if q := &a.queue[i]; q.n == m.n {
			q.loc, q.done = m.loc, true
			break
		}
	}
	i := 0
	for ; i < len(a.queue) && a.queue[i].done; i++ {
		q := &a.queue[i]
		a.complete(q, a.held != nil && q.n <= a.held.upTo)
	}
	if a.queue = slices.Delete(a.queue, 0, i); len(a.queue) == 0 {
		a.queue = nil
	}
	if h := a.held; h != nil && (len(a.queue) == 0 || a.queue[0].n > h.upTo) {
		a.held = nil
		a.reply(ctx, h.fs, a.effects(&h.u, h.applied, h.rowChanged, h.rows, h.outputs))
	}
}

// complete applies a record's geo answer to the user's location and emits its output, into the held
// flush reply when that reply covers the record.
func (a *userActor) complete(q *queued, held bool) {
	if q.located {
		a.sh.f.m.located[q.loc.Status].Inc()
		if q.loc.Status == geo.StatusFound {
			a.u.SetLocation(q.loc.Country, q.loc.Region, q.loc.City)
			if held {
				a.held.u.SetLocation(q.loc.Country, q.loc.Region, q.loc.City)
			}
		}
	}
	if q.routes == 0 {
		return
	}
	if held {
		a.held.outputs = a.sh.appendOutputs(a.held.outputs, &q.rec, q.routes, a.u.Name, q.loc, q.located)
	} else {
		a.outputs = a.sh.appendOutputs(a.outputs, &q.rec, q.routes, a.u.Name, q.loc, q.located)
	}
}

// reply adds the user's effects to the flush; the last user to answer tells the ShardActor.
func (a *userActor) reply(ctx actor.Context, fs *flushState, e userEffects) {
	if fs.add(e) {
		ctx.Send(ctx.Parent(), &barrierDone{fs: fs})
	}
}

// effects returns a flush reply from u's state and the effects collected with it. Without records
// applied, a changed row state alone is written (rowOnly) at the position the stored state has.
func (a *userActor) effects(u *session.User, applied, rowChanged bool, rows []messages.Session, outputs []output) userEffects {
	e := userEffects{user: u.ID, entry: a.entry, rows: rows, outputs: outputs, lags: u.RowLags(), due: u.RowDue(a.lastSeenMs, a.sh.f.cfg.rows)}
	switch {
	case applied:
		e.pos = u.Applied
		e.fields = u.AppendFields(make([]any, 0, 16), a.sh.shard)
	case rowChanged && !u.Applied.IsZero():
		e.pos, e.rowOnly = u.Applied, true
		e.fields = []any{session.FieldRow, u.Row.Encode()}
	}
	if !e.pos.IsZero() {
		e.setLags = a.stored.write(e.lags)
	}
	return e
}

// geoUnavailable ends an output whose address could not be located now (provider outage, timeout).
const geoUnavailable = `,"geo_status":"unavailable"}`

// appendOutputs appends to outs the outputs of the record r for the routes in match (bit i: route i), in
// the routes' order. Every output carries a click id, derived from the record's position when the event
// has none. An enriched route's output adds the user's name and the location of the event's address; one
// whose address was being located but got no answer (StatusUnavailable) is marked
// "geo_status":"unavailable"; one whose address is not public or not in the database carries no location
// and no mark. With the default route this is, byte for byte, the offers stream's record of old.
func (sh *shardShared) appendOutputs(outs []output, r *record, match uint64, name string, loc geo.Location, located bool) []output {
	routes := sh.f.cfg.routes
	var plain, enriched *messages.Event
	for i := 0; match != 0; i, match = i+1, match>>1 {
		if match&1 == 0 {
			continue
		}
		enrichIt := routes.Route(i).Enrich
		var ev *messages.Event
		switch {
		case enrichIt && enriched == nil:
			e := *r.ev
			enrich.Event(&e, sh.shard, r.pos.SequenceNumber, r.pos.SubSequence, name, loc)
			enriched, ev = &e, &e
		case enrichIt:
			ev = enriched
		case plain == nil:
			e := *r.ev
			enrich.Event(&e, sh.shard, r.pos.SequenceNumber, r.pos.SubSequence, "", geo.Location{})
			plain, ev = &e, &e
		default:
			ev = plain
		}
		b, err := routes.Encode(make([]byte, 0, 448), i, ev)
		if err != nil {
			// A decoded event always encodes; should one not, keep its identity rather than lose it.
			b, _ = json.Marshal(map[string]string{"user_id": ev.UserID, "event_name": ev.EventName, "click_id": ev.ClickID, "encode_error": err.Error()})
		} else if enrichIt && located && loc.Status == geo.StatusUnavailable {
			b = append(b[:len(b)-1], geoUnavailable...)
		}
		outs = append(outs, output{route: i, data: b})
	}
	return outs
}
