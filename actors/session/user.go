package session

import (
	"fmt"
	"time"

	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

// Rules are the per-user settings. The zero value is not usable: start from [DefaultRules].
type Rules struct {
	// GapMs is the session gap in ms: a gap above it starts a new session. Default: 10000.
	GapMs int64
	// OfferEvent is the event name of high-intent events: the default output route's (actors.Config.Routes
	// unset; see route.Offers). Default: "ViewContent".
	OfferEvent string
	// OfferMinPercent is the percent_viewed an offer must exceed. Default: 60.
	OfferMinPercent float64
}

// DefaultRules returns the seeds' settings: gap 10 s, ViewContent with percent_viewed > 60.
func DefaultRules() Rules {
	return Rules{GapMs: DefaultGapMs, OfferEvent: messages.POCViewContent, OfferMinPercent: 60}
}

// Validate names the first bad rule.
func (r Rules) Validate() error {
	switch {
	case r.GapMs <= 0:
		return fmt.Errorf("session gap must be positive, got %s", time.Duration(r.GapMs)*time.Millisecond)
	case r.OfferEvent == "":
		return fmt.Errorf("offer event name must not be empty")
	case r.OfferMinPercent < 0 || r.OfferMinPercent > 100:
		return fmt.Errorf("offer minimum percent must be within 0..100, got %g", r.OfferMinPercent)
	}
	return nil
}

// IsOffer reports whether ev is a high-intent event: its name is r.OfferEvent and its
// additional_data.percent_viewed is present and above r.OfferMinPercent (the seed's KDA query).
func (r Rules) IsOffer(ev *messages.Event) bool {
	return ev.EventName == r.OfferEvent && ev.AdditionalData.Has(messages.HasPercentViewed) &&
		ev.AdditionalData.PercentViewed > r.OfferMinPercent
}

// Position is a record's place in its shard (package position's one type). The zero value is before
// every record.
type Position = position.Position

// User is the state of one user as one shard's owner sees it: the sessionizer, the last access time,
// Applied, the position on that shard of the last record applied (records at or below it are replays),
// and the window of recently applied click ids (events carrying one of them are copies).
type User struct {
	ID string
	Sessionizer
	// LastAccessMs is the highest event time seen (Unix ms); 0 before any event.
	LastAccessMs int64
	// Applied is the position of the last record handled (applied, or dropped as a copy) on the shard
	// being processed.
	Applied Position
	// Recent holds the fingerprints of the click ids of the user's latest applied events. It is per user,
	// not per shard: it is stored with the rest of the state, so it carries over passivation, a new
	// owner and a reshard (the children of a shard resume the same user state).
	Recent RecentClicks
	// Name is the user's full name as the names sync wrote it (FieldName); empty when unknown. Read from
	// the hash when the state is loaded, never written back.
	Name string
	// Row is what the sessions table holds for Current (see [Row]); Apply resets it when a session starts.
	Row Row
	// Country, Region and City are the user's location, set by the caller (enrichment) with SetLocation;
	// empty until known. Apply leaves them alone.
	Country, Region, City string
	// stored marks the groups of fields the user's hash is known to hold with their current values
	// (FromFields sets what it loaded, AppendFields what it wrote, a change clears its group), so a
	// state write sets only what changed. The zero value knows nothing: every field is written.
	stored fieldGroups
}

// fieldGroups is a set of groups of hash fields that change together.
type fieldGroups uint8

const (
	groupSession  fieldGroups = 1 << iota // session_id, session_device, session_start_ms (set when a session starts)
	groupRow                              // session_row
	groupRecent                           // recent_clicks
	groupLocation                         // country, region, city
	groupShard                            // shard
	allGroups     = groupSession | groupRow | groupRecent | groupLocation | groupShard
)

// ForgetStored makes the next AppendFields write every field, as for a user whose stored hash is
// unknown (its last effects were dropped as stale, say).
func (u *User) ForgetStored() { u.stored = 0 }

// SetLocation records the user's location (the caller's latest resolved address). An empty country
// leaves the location as it was.
func (u *User) SetLocation(country, region, city string) {
	if country != "" && (country != u.Country || region != u.Region || city != u.City) {
		u.Country, u.Region, u.City = country, region, city
		u.stored &^= groupLocation
	}
}

// Outcome says what one event changed.
type Outcome struct {
	// Applied is false for a replay (the record is at or below User.Applied) and for a copy (Duplicate):
	// the user's session, last access and offers are unchanged.
	Applied bool
	// Duplicate is true when the record is new on the shard but its click_id is among the user's recently
	// applied ones: another copy of an applied event (a producer's retry stored it twice). Only
	// User.Applied moved.
	Duplicate bool
	// NewSession is true when the event started a session (the previous one is closed).
	NewSession bool
	// Closed is set (Closed.SessionID not empty) when the event started a session and the previous one's
	// row lags: the previous session's final values, whose row must be written.
	Closed messages.Session
	// Offer is true when the event is a high-intent event by r.IsOffer. The actors do not use it: they
	// evaluate their output routes (package route), whose default is this same filter.
	Offer bool
}

// Apply applies the event at pos, unless pos is at or below u.Applied (a replay, which changes nothing)
// or the event's click_id is in u.Recent (a copy, which only moves u.Applied to pos). An applied event's
// click_id enters u.Recent. An event without click_id is always applied and leaves u.Recent alone: the id
// a consumer derives for it from its position differs between two copies by construction, so it could
// never match and would only push real ids out of the window.
// The event must be u's (ev.UserID == u.ID); Apply does not check.
func (u *User) Apply(pos Position, ev *messages.Event, r Rules) Outcome {
	if !u.Applied.IsZero() && pos.Compare(u.Applied) <= 0 {
		return Outcome{}
	}
	u.Applied = pos
	if ev.ClickID != "" {
		fp := ClickFingerprint(ev.ClickID)
		if u.Recent.Contains(fp) {
			return Outcome{Duplicate: true}
		}
		u.Recent.Add(fp)
		u.stored &^= groupRecent
	}
	o := Outcome{Applied: true}
	var prev messages.Session
	lagging := u.RowLags()
	if lagging {
		prev = u.Current
	}
	if o.NewSession = u.Add(u.ID, ev.DeviceType, ev.EventTimeMs, r.GapMs); o.NewSession {
		if lagging {
			o.Closed = prev
		}
		u.Row = Row{}
		u.stored &^= groupSession | groupRow
	}
	u.LastAccessMs = max(u.LastAccessMs, ev.EventTimeMs)
	o.Offer = r.IsOffer(ev)
	return o
}
