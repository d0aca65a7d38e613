package session

import (
	"fmt"
	"strconv"
	"strings"
)

// Row is what the sessions table holds for a user's current session, as far as the user's state knows:
// the event count of the session's last written row, when it was written (processing time), and whether
// that write closed the session. It is part of the user state in Redis ([FieldRow]), so a new owner
// knows which rows lag. The zero value: no row written for the current session.
type Row struct {
	// Count is the event_count of the last row written for Current; 0 when none was.
	Count int64
	// AtMs is the processing time (Unix ms) of that write.
	AtMs int64
	// Closed is set when the session was closed by the idle timer (its row then holds its final
	// values); an event that continues it reopens it.
	Closed bool
}

// RowPolicy is when rows are written (docs/contracts.md, "Session rows").
type RowPolicy struct {
	// UpdateIntervalMs is the longest time an open session's row lags its state. Default: 60000.
	UpdateIntervalMs int64
	// CloseAfterMs is the processing time without an event of the user after which its session closes:
	// the gap plus the close delay. Default: 15000.
	CloseAfterMs int64
}

// RowCause is why a row is written.
type RowCause uint8

// The causes of a row write; RowNone writes nothing.
const (
	RowNone   RowCause = iota
	RowStart           // the session started since the last flush (no row yet)
	RowReopen          // an event continued a session closed by the idle timer
	RowUpdate          // open, lagging, and its last row is UpdateInterval old
	RowClose           // closed: by the next event beyond the gap, by the idle timer, or before passivation
	RowFinal           // open and lagging when the shard's processing ends (shutdown, shard end)
)

var rowCauseNames = [...]string{"none", "start", "reopen", "update", "close", "final"}

func (c RowCause) String() string {
	if int(c) < len(rowCauseNames) {
		return rowCauseNames[c]
	}
	return "RowCause(" + strconv.Itoa(int(c)) + ")"
}

// RowCauses lists the causes that write, for metrics labels.
var RowCauses = []RowCause{RowStart, RowReopen, RowUpdate, RowClose, RowFinal}

// RowLags reports whether Current's row is behind the state (or missing).
func (u *User) RowLags() bool { return u.Started() && u.Row.Count < u.Current.EventCount }

// RowCheck decides whether Current's row is written now (processing time nowMs; the user's last record
// arrived at lastSeenMs). closeNow forces a close (passivation); final writes a lagging row of a session
// that stays open (the end of the shard's processing). closes reports that the session closes now (by
// the idle timer or closeNow): it is marked Closed even when its row is up to date and nothing is written.
func (u *User) RowCheck(nowMs, lastSeenMs int64, p RowPolicy, closeNow, final bool) (cause RowCause, closes bool) {
	if !u.Started() {
		return RowNone, false
	}
	lags := u.RowLags()
	if !u.Row.Closed && (closeNow || nowMs-lastSeenMs >= p.CloseAfterMs) {
		if lags {
			return RowClose, true
		}
		return RowNone, true
	}
	switch {
	case !lags:
		return RowNone, false
	case u.Row.Count == 0:
		return RowStart, false
	case u.Row.Closed:
		return RowReopen, false
	case final:
		return RowFinal, false
	case nowMs-u.Row.AtMs >= p.UpdateIntervalMs:
		return RowUpdate, false
	}
	return RowNone, false
}

// RowWritten records that Current's row was written (or, with closes and nothing lagging, that the
// session closed) at processing time nowMs.
func (u *User) RowWritten(nowMs int64, closes bool) {
	u.Row = Row{Count: u.Current.EventCount, AtMs: nowMs, Closed: closes}
	u.stored &^= groupRow
}

// RowDue returns the processing time (Unix ms) at which RowCheck may next write or close Current, or 0
// when nothing is left to do (no session, or closed with its row up to date).
func (u *User) RowDue(lastSeenMs int64, p RowPolicy) int64 {
	if !u.Started() {
		return 0
	}
	lags := u.RowLags()
	if u.Row.Closed {
		if lags {
			return 1 // reopened: at once
		}
		return 0
	}
	due := lastSeenMs + p.CloseAfterMs
	if lags {
		if u.Row.Count == 0 {
			return 1
		}
		due = min(due, u.Row.AtMs+p.UpdateIntervalMs)
	}
	return due
}

// Encode returns the value of [FieldRow]: "<count>:<at ms>", with ":c" appended when closed.
func (r Row) Encode() string {
	s := strconv.FormatInt(r.Count, 10) + ":" + strconv.FormatInt(r.AtMs, 10)
	if r.Closed {
		s += ":c"
	}
	return s
}

// ParseRow decodes [Row.Encode]'s output; "" is the zero Row.
func ParseRow(s string) (Row, error) {
	var r Row
	if s == "" {
		return r, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "c") {
		return r, fmt.Errorf("bad session row state %q (want <count>:<ms>[:c])", s)
	}
	var err error
	if r.Count, err = strconv.ParseInt(parts[0], 10, 64); err != nil || r.Count < 0 {
		return Row{}, fmt.Errorf("bad session row state %q: count", s)
	}
	if r.AtMs, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return Row{}, fmt.Errorf("bad session row state %q: time", s)
	}
	r.Closed = len(parts) == 3
	return r, nil
}
