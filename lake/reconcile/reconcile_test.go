package reconcile

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// sess is a session of user starting at t0 + startS seconds, its last event lastS seconds after t0,
// with n events.
func sess(user, device string, startS, lastS, n int64) messages.Session {
	start := t0.UnixMilli() + startS*1000
	s := messages.NewSession(user, device, start)
	s.LastEventMs, s.EventCount = t0.UnixMilli()+lastS*1000, n
	return s
}

func TestRangeContains(t *testing.T) {
	from, to := t0, t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		r    Range
		ms   int64
		want bool
	}{
		{"the first millisecond", Range{from, to}, from.UnixMilli(), true},
		{"before from", Range{from, to}, from.UnixMilli() - 1, false},
		{"the last millisecond", Range{from, to}, to.UnixMilli() - 1, true},
		{"to is excluded", Range{from, to}, to.UnixMilli(), false},
		{"open start", Range{To: to}, 0, true},
		{"open end", Range{From: from}, to.Add(1000 * time.Hour).UnixMilli(), true},
		{"open both", Range{}, -5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Contains(tc.ms); got != tc.want {
				t.Fatalf("Contains(%d) = %v, want %v", tc.ms, got, tc.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	r := Range{From: t0, To: t0.Add(time.Hour)}
	a := sess("user1", "mobile", 0, 40, 12)
	b := sess("user2", "desktop", 100, 130, 5)
	c := sess("user3", "tablet", 200, 260, 30)
	before := sess("user1", "mobile", -3600, -3500, 3) // starts before the range
	after := sess("user2", "mobile", 3600, 3601, 2)    // starts at to: outside
	open := sess("user3", "tablet", 3590, 3599, 4)     // open at the range's end
	with := func(s messages.Session, f func(*messages.Session)) messages.Session { f(&s); return s }

	for _, tc := range []struct {
		name    string
		lake    Lake
		rows    []messages.Session
		summary Summary
		diffs   []Difference
		open    []OpenSession
	}{
		{name: "equal", lake: Lake{Sessions: []messages.Session{a, b, c}}, rows: []messages.Session{c, a, b},
			summary: Summary{LakeSessions: 3, TableRows: 3, Equal: 3}},
		{name: "both empty", summary: Summary{}},
		{name: "a deleted row", lake: Lake{Sessions: []messages.Session{a, b, c}}, rows: []messages.Session{a, c},
			summary: Summary{LakeSessions: 3, TableRows: 2, Equal: 2, Missing: 1},
			diffs: []Difference{{Kind: Missing, SessionID: b.SessionID, Lake: map[string]any{"user_id": "user2", "device_type": "desktop",
				"start_ms": b.StartMs, "last_event_ms": b.LastEventMs, "event_count": int64(5)}}}},
		{name: "an extra row", lake: Lake{Sessions: []messages.Session{a}}, rows: []messages.Session{a, c},
			summary: Summary{LakeSessions: 1, TableRows: 2, Equal: 1, Extra: 1},
			diffs: []Difference{{Kind: Extra, SessionID: c.SessionID, Table: map[string]any{"user_id": "user3", "device_type": "tablet",
				"start_ms": c.StartMs, "last_event_ms": c.LastEventMs, "event_count": int64(30)}}}},
		{name: "an altered count", lake: Lake{Sessions: []messages.Session{a, b}},
			rows:    []messages.Session{a, with(b, func(s *messages.Session) { s.EventCount = 6 })},
			summary: Summary{LakeSessions: 2, TableRows: 2, Equal: 1, Differing: 1},
			diffs:   []Difference{{Kind: Differs, SessionID: b.SessionID, Field: "event_count", Lake: int64(5), Table: int64(6)}}},
		{name: "several fields of one session, in the fields' order", lake: Lake{Sessions: []messages.Session{a}},
			rows:    []messages.Session{with(a, func(s *messages.Session) { s.EventCount, s.LastEventMs, s.DeviceType = 1, 7, "tv" })},
			summary: Summary{LakeSessions: 1, TableRows: 1, Differing: 1},
			diffs: []Difference{
				{Kind: Differs, SessionID: a.SessionID, Field: "device_type", Lake: "mobile", Table: "tv"},
				{Kind: Differs, SessionID: a.SessionID, Field: "last_event_ms", Lake: a.LastEventMs, Table: int64(7)},
				{Kind: Differs, SessionID: a.SessionID, Field: "event_count", Lake: int64(12), Table: int64(1)},
			}},
		{name: "outside the range on either side is ignored", lake: Lake{Sessions: []messages.Session{a, before, after}},
			rows:    []messages.Session{a, with(before, func(s *messages.Session) { s.EventCount = 99 }), after, sess("user9", "x", 3700, 3700, 1)},
			summary: Summary{LakeSessions: 1, TableRows: 1, Equal: 1}},
		{name: "an open session's lagging row is apart, not a difference", lake: Lake{Sessions: []messages.Session{a}, Open: []messages.Session{open}},
			rows:    []messages.Session{a, with(open, func(s *messages.Session) { s.EventCount, s.LastEventMs = 1, open.StartMs })},
			summary: Summary{LakeSessions: 1, OpenSessions: 1, TableRows: 2, Equal: 1},
			open: []OpenSession{{Lake: open, Table: func() *messages.Session {
				s := with(open, func(s *messages.Session) { s.EventCount, s.LastEventMs = 1, open.StartMs })
				return &s
			}(), Fields: []string{"last_event_ms", "event_count"}}}},
		{name: "an open session without a row yet", lake: Lake{Open: []messages.Session{open}},
			summary: Summary{OpenSessions: 1}, open: []OpenSession{{Lake: open}}},
		{name: "everything at once, by session id", lake: Lake{Sessions: []messages.Session{c, a, b}},
			rows:    []messages.Session{with(c, func(s *messages.Session) { s.UserID = "userX" }), sess("user0", "mobile", 1, 1, 1)},
			summary: Summary{LakeSessions: 3, TableRows: 2, Missing: 2, Extra: 1, Differing: 1},
			diffs: []Difference{
				{Kind: Extra, SessionID: sess("user0", "mobile", 1, 1, 1).SessionID, Table: map[string]any{"user_id": "user0", "device_type": "mobile",
					"start_ms": t0.UnixMilli() + 1000, "last_event_ms": t0.UnixMilli() + 1000, "event_count": int64(1)}},
				{Kind: Missing, SessionID: a.SessionID, Lake: map[string]any{"user_id": "user1", "device_type": "mobile",
					"start_ms": a.StartMs, "last_event_ms": a.LastEventMs, "event_count": int64(12)}},
				{Kind: Missing, SessionID: b.SessionID, Lake: map[string]any{"user_id": "user2", "device_type": "desktop",
					"start_ms": b.StartMs, "last_event_ms": b.LastEventMs, "event_count": int64(5)}},
				{Kind: Differs, SessionID: c.SessionID, Field: "user_id", Lake: "user3", Table: "userX"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Compare(r, tc.lake, tc.rows)
			if res.Summary != tc.summary {
				t.Errorf("summary %+v, want %+v", res.Summary, tc.summary)
			}
			if tc.diffs == nil {
				tc.diffs = []Difference{}
			}
			if !reflect.DeepEqual(res.Differences, tc.diffs) {
				t.Errorf("differences\n got %+v\nwant %+v", res.Differences, tc.diffs)
			}
			if tc.open == nil {
				tc.open = []OpenSession{}
			}
			if !reflect.DeepEqual(res.Open, tc.open) {
				t.Errorf("open\n got %+v\nwant %+v", res.Open, tc.open)
			}
			if res.Equal != (len(tc.diffs) == 0) {
				t.Errorf("Equal %v with %d differences", res.Equal, len(tc.diffs))
			}
			if !res.From.Equal(t0) || !res.To.Equal(t0.Add(time.Hour)) {
				t.Errorf("range %v..%v", res.From, res.To)
			}
		})
	}
}

// The text names the verdict, every difference with its session id and field and both values, and the
// open sessions apart; the JSON round-trips.
func TestResultText(t *testing.T) {
	a := sess("user1", "mobile", 0, 40, 12)
	b := sess("user2", "desktop", 100, 130, 5)
	c := sess("user3", "tablet", 200, 260, 30)
	open := sess("user3", "tablet", 3590, 3599, 4)
	changed := b
	changed.EventCount = 6
	res := Compare(Range{From: t0}, Lake{Sessions: []messages.Session{a, b}, Open: []messages.Session{open}}, []messages.Session{changed, c})
	res.LakeURL, res.Table = "s3://lake/x/", "sessions"
	var buf bytes.Buffer
	if err := res.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"reconcile DIFFERENT: lake s3://lake/x/ against table sessions, sessions starting in [2026-12-01T10:00:00Z, the end)",
		"lake: 2 sessions compared, 1 open at the range's end (apart); table: 2 rows in the range",
		"equal 0 · missing from the table 1 · extra in the table 1 · differing 1",
		"missing  " + a.SessionID + ": in the lake (user_id \"user1\", device_type \"mobile\", start_ms 1796119200000 (2026-12-01T10:00:00.000Z)",
		"extra    " + c.SessionID + ": a row in the table (user_id \"user3\"",
		"differs  " + b.SessionID + ": event_count lake 5, table 6",
		"open     " + open.SessionID + ": lake events 4, last 2026-12-01T10:59:59.000Z; no row yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the text lacks %q:\n%s", want, out)
		}
	}
	b2, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b2, &back); err != nil {
		t.Fatal(err)
	}
	if back.Summary != res.Summary || len(back.Differences) != 3 || back.Differences[1].Field != "event_count" || back.Open[0].Lake != open || back.To != nil {
		t.Fatalf("JSON round trip: %+v", back)
	}
	buf.Reset()
	eq := Compare(Range{}, Lake{Sessions: []messages.Session{a}}, []messages.Session{a})
	if err := eq.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "reconcile EQUAL") || strings.Contains(buf.String(), "differences") {
		t.Fatalf("equal result text:\n%s", buf.String())
	}
}
