package session

import (
	"github.com/clickfleet/clickfleet/messages"
)

// DefaultGapMs is the default session gap: the lab's 10 * 1000 ms.
const DefaultGapMs = 10_000

// Sessionizer is the session state machine of one user. Its zero value has seen no event.
//
// The rules (docs/contracts.md, "Sessions"): a new session starts at the user's first event, or when the event's
// timestamp exceeds the timestamp of the user's previously arrived event by more than the gap (the lab's
// `event_timestamp - LAG(event_timestamp) > gap`, in stream order, so an earlier, late timestamp never
// starts one). A session's start (and id) and device type are those of its first-arrived event; its
// last_event_ms is the highest timestamp in it; event_count counts its events. A new session that would
// get the id of the current one (a late event repeating that start millisecond) continues it.
type Sessionizer struct {
	// Current is the user's latest session; its SessionID is empty before the first event. UpdatedMs is
	// left to the writer.
	Current messages.Session
	// PrevMs is the timestamp of the previously arrived event.
	PrevMs int64
}

// Started reports whether the sessionizer has seen an event.
func (s *Sessionizer) Started() bool { return s.Current.SessionID != "" }

// Add applies one event of userID (device type deviceType, "" meaning unknown, at event time tsMs) with
// the given gap in ms, and reports whether it started a new session (then the previous Current is
// closed: it will never change again).
func (s *Sessionizer) Add(userID, deviceType string, tsMs, gapMs int64) (started bool) {
	defer func() { s.PrevMs = tsMs }()
	if s.Started() && tsMs-s.PrevMs <= gapMs {
		s.extend(tsMs)
		return false
	}
	next := messages.NewSession(userID, deviceType, tsMs)
	if s.Started() && next.SessionID == s.Current.SessionID {
		s.extend(tsMs)
		return false
	}
	s.Current = next
	return true
}

func (s *Sessionizer) extend(tsMs int64) {
	s.Current.EventCount++
	s.Current.LastEventMs = max(s.Current.LastEventMs, tsMs)
}
