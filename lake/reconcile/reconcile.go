package reconcile

import (
	"cmp"
	"slices"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

// Range is the session starts a reconciliation covers: [From, To); a zero side is open.
type Range struct {
	From, To time.Time
}

// Contains reports whether a session starting at startMs (Unix ms) is in the range.
func (r Range) Contains(startMs int64) bool {
	return (r.From.IsZero() || startMs >= r.From.UnixMilli()) && (r.To.IsZero() || startMs < r.To.UnixMilli())
}

// Lake is what the lake implies for a range.
type Lake struct {
	// Sessions are the sessions whose end the lake knows: compared with the table.
	Sessions []messages.Session
	// Open are the sessions still open at the range's end: reported apart.
	Open []messages.Session
}

// Kind is a kind of difference.
type Kind string

// The kinds of difference.
const (
	// Missing: a session of the lake has no row in the table.
	Missing Kind = "missing"
	// Extra: a row of the table (in the range) is no session of the lake.
	Extra Kind = "extra"
	// Differs: the session and its row differ in a field.
	Differs Kind = "differs"
)

// Fields are the compared fields, in the order differences name them: the table's attribute names.
var Fields = []string{"user_id", "device_type", "start_ms", "last_event_ms", "event_count"}

// Difference is one difference between the lake and the table.
type Difference struct {
	Kind      Kind   `json:"kind"`
	SessionID string `json:"session_id"`
	// Field names the differing attribute (Differs only).
	Field string `json:"field,omitempty"`
	// Lake and Table are the two sides' values of Field (Differs), or the whole session (Lake, for
	// Missing) or row (Table, for Extra).
	Lake  any `json:"lake,omitempty"`
	Table any `json:"table,omitempty"`
}

// OpenSession is a session the lake sees open at the range's end, beside the table's row for it.
type OpenSession struct {
	Lake messages.Session `json:"lake"`
	// Table is the row, nil when the table has none (yet).
	Table *messages.Session `json:"table"`
	// Fields names the fields in which the row lags or differs (not differences: the session is open).
	Fields []string `json:"fields,omitempty"`
}

// Summary counts a reconciliation's sessions and rows.
type Summary struct {
	// LakeSessions are the lake's sessions in the range whose end it knows (compared).
	LakeSessions int `json:"lake_sessions"`
	// OpenSessions are the lake's sessions in the range still open at its end (not compared).
	OpenSessions int `json:"open_sessions"`
	// TableRows are the table's rows in the range, the open sessions' rows included.
	TableRows int `json:"table_rows"`
	// Equal sessions match their row in every field.
	Equal int `json:"equal"`
	// Missing, Extra and Differing count sessions (Differing: sessions with at least one differing
	// field; Differences has one entry per field).
	Missing   int `json:"missing"`
	Extra     int `json:"extra"`
	Differing int `json:"differing"`
}

// Result is a reconciliation's outcome; its JSON is what `clickfleet reconcile --format json` prints
// and what Store keeps.
type Result struct {
	// Equal is true when there is no difference.
	Equal bool `json:"equal"`
	// At is when the reconciliation ran (set by the caller).
	At time.Time `json:"at"`
	// From and To are the range (nil: open).
	From *time.Time `json:"from"`
	To   *time.Time `json:"to"`
	// LakeURL and Table name the two sides (set by the caller).
	LakeURL string  `json:"lake_url"`
	Table   string  `json:"table"`
	Summary Summary `json:"summary"`
	// Differences, by session id, then field in the order of Fields.
	Differences []Difference `json:"differences"`
	// Open are the sessions still open at the range's end, by session id.
	Open []OpenSession `json:"open"`
	// Notes say what the reader should know of the sides (set by the caller): an empty lake range,
	// unreadable objects left out.
	Notes []string `json:"notes,omitempty"`
}

// Compare compares the lake's sessions in r with the table's rows in r (rows and sessions outside r are
// ignored on both sides, so callers may pass more). A row whose session the lake sees open is reported
// with it in Open, never as a difference. Result.At, LakeURL and Table are left for the caller.
func Compare(r Range, lake Lake, rows []messages.Session) *Result {
	res := &Result{From: timeOrNil(r.From), To: timeOrNil(r.To), Differences: []Difference{}, Open: []OpenSession{}}
	table := map[string]messages.Session{}
	for _, row := range rows {
		if r.Contains(row.StartMs) {
			table[row.SessionID] = row
		}
	}
	res.Summary.TableRows = len(table)
	for _, s := range lake.Open {
		if !r.Contains(s.StartMs) {
			continue
		}
		o := OpenSession{Lake: s}
		if row, ok := table[s.SessionID]; ok {
			o.Table, o.Fields = &row, differing(s, row)
			delete(table, s.SessionID)
		}
		res.Open = append(res.Open, o)
	}
	for _, s := range lake.Sessions {
		if !r.Contains(s.StartMs) {
			continue
		}
		res.Summary.LakeSessions++
		row, ok := table[s.SessionID]
		if !ok {
			res.Summary.Missing++
			res.Differences = append(res.Differences, Difference{Kind: Missing, SessionID: s.SessionID, Lake: compared(s)})
			continue
		}
		delete(table, s.SessionID)
		fields := differing(s, row)
		if len(fields) == 0 {
			res.Summary.Equal++
			continue
		}
		res.Summary.Differing++
		for _, f := range fields {
			res.Differences = append(res.Differences, Difference{Kind: Differs, SessionID: s.SessionID, Field: f, Lake: value(s, f), Table: value(row, f)})
		}
	}
	for _, row := range table {
		res.Summary.Extra++
		res.Differences = append(res.Differences, Difference{Kind: Extra, SessionID: row.SessionID, Table: compared(row)})
	}
	res.Summary.OpenSessions = len(res.Open)
	field := func(f string) int { return slices.Index(Fields, f) }
	slices.SortFunc(res.Differences, func(a, b Difference) int {
		return cmp.Or(cmp.Compare(a.SessionID, b.SessionID), cmp.Compare(field(a.Field), field(b.Field)), cmp.Compare(a.Kind, b.Kind))
	})
	slices.SortFunc(res.Open, func(a, b OpenSession) int { return cmp.Compare(a.Lake.SessionID, b.Lake.SessionID) })
	res.Equal = len(res.Differences) == 0
	return res
}

// differing returns the fields (of Fields) in which s and row differ.
func differing(s, row messages.Session) []string {
	var out []string
	for _, f := range Fields {
		if value(s, f) != value(row, f) {
			out = append(out, f)
		}
	}
	return out
}

// value returns a compared field's value: a string or an int64.
func value(s messages.Session, field string) any {
	switch field {
	case "user_id":
		return s.UserID
	case "device_type":
		return s.DeviceType
	case "start_ms":
		return s.StartMs
	case "last_event_ms":
		return s.LastEventMs
	case "event_count":
		return s.EventCount
	}
	panic("reconcile: no field " + field)
}

// compared returns the compared fields of s, for a missing session or an extra row.
func compared(s messages.Session) map[string]any {
	out := make(map[string]any, len(Fields))
	for _, f := range Fields {
		out[f] = value(s, f)
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
