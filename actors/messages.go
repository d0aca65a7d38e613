package actors

import (
	"time"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/messages"
)

// The messages the actors of this package exchange. They hold this package's own types (records with
// their positions, flush state, reply channels), so they live here rather than in package messages, which
// holds the wire formats. All are pointers, sent locally only, never serialised.

// record is one decoded record routed to a user.
type record struct {
	pos session.Position
	ev  *messages.Event
}

// outRecord is one record for an output stream.
type outRecord struct {
	key  string
	data []byte
}

// processBatch (processor → ShardActor) is one GetRecords batch, decoded. The ShardActor answers on done
// once the batch is routed and the unflushed records are below the bound.
type processBatch struct {
	recs    []record
	errs    []outRecord // error records for the records that failed decoding, in order
	last    session.Position
	n       int
	cp      consumer.Checkpointer
	started time.Time
	done    chan error
}

// finalFlush (processor → ShardActor) asks for a flush of everything and its checkpoint; the answer comes
// on done when no record is unflushed or unchecked.
type finalFlush struct {
	cp   consumer.Checkpointer
	done chan error
}

// recoverUsers (processor → ShardActor, before the first batch) names the users whose session rows the
// shard's previous owners left lagging (session.LaggingRowsKey): they are loaded and their rows written
// at their next trigger.
type recoverUsers struct{ ids []string }

// flushRequest (ShardActor → UserActor) asks for the user's effects since its last flush, at processing
// time nowMs (the session row triggers). final asks for the row of a lagging open session (the end of
// the shard's processing); close closes the user's session now (before passivation).
type flushRequest struct {
	fs           *flushState
	nowMs        int64
	final, close bool
	// recs are the user's records routed since its last flush (applied before the effects are taken),
	// atMs the processing time of the last of them.
	recs []record
	atMs int64
}

// rowLost (ShardActor → UserActor) says that the user's last flushed effects were dropped as stale:
// what its state says about the session row may not be what the table holds, so the row is written
// again at the next flush.
type rowLost struct{}

// barrierDone (the last UserActor to answer → ShardActor) says that every user asked by the flush fs
// has added its effects to it (flushState.add): the replies travel without a message each.
type barrierDone struct{ fs *flushState }

// userEffects are one user's effects since its previous flush.
type userEffects struct {
	user  string
	key   string // the user's hash (session.UserKey), set by the probe when it reads positions
	entry *userEntry
	// pos is the last applied record's position; zero when nothing was applied and no row changed (then
	// there is no state to write).
	pos    session.Position
	fields []any
	// rowOnly: nothing was applied, only what the state says about the session row changed (fields
	// holds just session.FieldRow), written without the position; the probe keeps it only while the
	// stored position is still pos.
	rowOnly bool
	// lags: the session row lags the state written (the user belongs in the shard's lagging set).
	lags bool
	// setLags: the shard's lagging set may not say lags of the user yet (it changed, or this owner has
	// not written it), so the state write updates the set; otherwise the set already says it.
	setLags bool
	// due is the processing time (Unix ms) of the user's next row trigger; 0 when none is left.
	due     int64
	rows    []messages.Session // session rows to write, absolute values
	outputs []output
}

// storedLags is what the shard's lagging-rows set holds for one user, as the user's last state write in
// this holding period put it; the zero value is unknown (after hydration, or after a write dropped as
// stale).
type storedLags struct{ known, lags bool }

// write reports whether a state write saying lags must update the set, and records it as written
// (optimistic, as the row: a write dropped as stale comes back as rowLost, which forgets it).
func (s *storedLags) write(lags bool) bool {
	update := !s.known || s.lags != lags
	*s = storedLags{known: true, lags: lags}
	return update
}

// lagsOfHash is what the shard's lagging set is known to hold for a user whose hash is h: a hash that no
// state write of this shard made (no shard, no position on this shard, no row: a new user, or one only the
// names sync wrote) means the user is not in the set, since a state write puts a user there only in the
// transaction that writes its hash (writeState). Anything else is unknown, and the first write sets it.
// For a million new users that is a million SREMs less.
func lagsOfHash(h map[string]string, shard string) storedLags {
	for _, f := range []string{session.FieldShard, session.PositionField(shard), session.FieldRow} {
		if _, ok := h[f]; ok {
			return storedLags{}
		}
	}
	return storedLags{known: true}
}

// output is one encoded route output: route is its index in the factory's route set.
type output struct {
	route int
	data  []byte
}

// geoResolved (resolver goroutine → UserActor) answers the geo lookup of the user's n-th applied record.
type geoResolved struct {
	n   uint64
	loc geo.Location
}

// loaded (loader goroutine → ShardActor) delivers users' Redis hashes.
type loaded struct {
	entries []*userEntry
	hashes  []map[string]string
	err     error
}

// flushDone (writer goroutine → ShardActor) reports a flush written and checkpointed, or why not.
type flushDone struct {
	id  uint64
	err error
}

// tick messages from the processor's timer goroutine.
type (
	flushTick struct{}
	sweepTick struct{}
)
