//go:build cgo

package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/oracle"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/report"
	"github.com/clickfleet/clickfleet/messages"
)

// t0 is the edge trace's base time, 2026-12-01T10:00:00Z.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli()

// click is one event of a hand-written trace, in arrival order: user, event time as an offset from t0 in
// ms, device type ("" for none), shard (A, B or C) and click id ("" for none).
type click struct {
	user   string
	off    int64
	device string
	shard  string
	id     string
}

// Shards of the edge trace: A's sequence numbers go from 2 to 3 digits (95 …), B's from 56 to 57 digits
// (10^56 − 2 …, beyond DECIMAL(38)), C is A's child after a reshard and starts at 5.
var edgeShards = map[string]struct {
	id    string
	first *big.Int
}{
	"A": {"shardId-000000000000", big.NewInt(95)},
	"B": {"shardId-000000000001", new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(56), nil), big.NewInt(2))},
	"C": {"shardId-000000000002", big.NewInt(5)},
}

// edgeTrace is the trace of edge cases, in arrival order. Comments give the gap to the user's previously
// arrived event.
func edgeTrace() []click {
	var cs []click
	add := func(user, shard, device string, offs ...int64) {
		for _, o := range offs {
			cs = append(cs, click{user: user, off: o, device: device, shard: shard})
		}
	}
	add("eq", "A", "desktop", 1000, 1000, 1000)                // equal timestamps: gaps 0, 0
	add("gap", "A", "desktop", 60_000, 70_000, 80_001, 90_001) // gaps 10,000 (same), 10,001 (new), 10,000; seq 98 … 101
	add("late", "A", "desktop", 120_000, 128_000, 123_000)     // a late earlier timestamp continues
	add("late", "A", "desktop", 134_000, 133_000)              // 11,000 after the late one: new, though 6 s after the highest
	add("dev", "A", "mobile", 180_000)                         // multiple devices: the first-arrived event's names the session
	add("dev", "A", "desktop", 185_000, 200_000)               // 5,000 (same), 15,000 (new)
	add("dev", "A", "tablet", 201_000)                         // 1,000
	add("sameid", "A", "desktop", 250_000, 235_000, 250_000)   // a late 235,000, then 250,000 again: 15,000 but the same id: continues
	add("sameid", "A", "desktop", 261_000)                     // 11,000: new
	for i := int64(1); i <= 34; i++ {                          // dup: d1 … d34, 1 s apart, and copies of three
		cs = append(cs, click{user: "dup", off: 300_000 + (i-1)*1000, device: "desktop", shard: "A", id: fmt.Sprintf("d%d", i)})
		switch i {
		case 4: // d3 again, 1 new id later: dropped
			cs = append(cs, click{user: "dup", off: 302_000, device: "desktop", shard: "A", id: "d3"})
		case 32: // d1 again, 31 new ids later: still in the window of 32, dropped
			cs = append(cs, click{user: "dup", off: 300_000, device: "desktop", shard: "A", id: "d1"})
		case 34: // d2 again, 32 new ids later: out of the window, counted
			cs = append(cs, click{user: "dup", off: 301_000, device: "desktop", shard: "A", id: "d2"})
		}
	}
	add("big", "B", "desktop", 400_000, 405_000, 416_000, 420_000) // B's sequence numbers go from 56 to 57 digits here
	add("moved", "A", "desktop", 600_000)                          // then the user's shard is split: its child C
	add("moved", "C", "desktop", 605_000, 616_000)                 // 5,000 (same, across shards), 11,000 (new)
	add("edge", "B", "desktop", 3_595_000, 3_603_000)              // 10:59:55 and 11:00:03: crosses the 11:00 edge
	add("edge2", "B", "", 7_198_000, 7_205_000)                    // 11:59:58 and 12:00:05: crosses 12:00; no device_type
	add("tail3", "B", "desktop", 8_989_999)                        // B's data ends at 9,000,000: 10,001 before it: closed
	add("tail2", "B", "desktop", 8_990_000)                        // 10,000 before: open
	add("tail1", "B", "desktop", 9_000_000)                        // the end: open
	return cs
}

// edgeWant are the edge trace's sessions, written by hand from the comments above: start and last event
// as offsets from t0, event count, and open when read whole (no range).
var edgeWant = []struct {
	id          string
	start, last int64
	count       int64
	open        bool
}{
	{"eq_desktop_20261201T100001.000Z", 1000, 1000, 3, false},
	{"gap_desktop_20261201T100100.000Z", 60_000, 70_000, 2, false},
	{"gap_desktop_20261201T100120.001Z", 80_001, 90_001, 2, false},
	{"late_desktop_20261201T100200.000Z", 120_000, 128_000, 3, false},
	{"late_desktop_20261201T100214.000Z", 134_000, 134_000, 2, false},
	{"dev_mobile_20261201T100300.000Z", 180_000, 185_000, 2, false},
	{"dev_desktop_20261201T100320.000Z", 200_000, 201_000, 2, false},
	{"sameid_desktop_20261201T100410.000Z", 250_000, 250_000, 3, false},
	{"sameid_desktop_20261201T100421.000Z", 261_000, 261_000, 1, false},
	{"dup_desktop_20261201T100500.000Z", 300_000, 333_000, 35, false},
	{"big_desktop_20261201T100640.000Z", 400_000, 405_000, 2, false},
	{"big_desktop_20261201T100656.000Z", 416_000, 420_000, 2, false},
	{"moved_desktop_20261201T101000.000Z", 600_000, 605_000, 2, false},
	{"moved_desktop_20261201T101016.000Z", 616_000, 616_000, 1, true}, // the end of C's data
	{"edge_desktop_20261201T105955.000Z", 3_595_000, 3_603_000, 2, false},
	{"edge2_unknown_20261201T115958.000Z", 7_198_000, 7_205_000, 2, false},
	{"tail3_desktop_20261201T122949.999Z", 8_989_999, 8_989_999, 1, false},
	{"tail2_desktop_20261201T122950.000Z", 8_990_000, 8_990_000, 1, true},
	{"tail1_desktop_20261201T123000.000Z", 9_000_000, 9_000_000, 1, true},
}

// landed is an event as it landed on a shard.
type landed struct {
	user, device, clickID string
	ts                    int64
	shard, seq            string
	arrived               time.Time
	data                  []byte
}

// land gives each click its shard's next sequence number and an arrival 100 ms after its event time, or
// 1 ms after the shard's previous arrival when that is later (a late event).
func land(cs []click) []landed {
	next := map[string]*big.Int{}
	lastArrival := map[string]time.Time{}
	out := make([]landed, len(cs))
	for i, c := range cs {
		sh := edgeShards[c.shard]
		if next[c.shard] == nil {
			next[c.shard] = new(big.Int).Set(sh.first)
		}
		at := time.UnixMilli(t0 + c.off + 100).UTC()
		if prev, ok := lastArrival[c.shard]; ok && !at.After(prev) {
			at = prev.Add(time.Millisecond)
		}
		lastArrival[c.shard] = at
		fields := map[string]any{"user_id": c.user, "event_timestamp": t0 + c.off, "event_name": "navigate", "event_type": "click"}
		if c.device != "" {
			fields["device_type"] = c.device
		}
		if c.id != "" {
			fields["click_id"] = c.id
		}
		data, _ := json.Marshal(fields)
		dev := c.device
		if dev == "" {
			dev = "unknown"
		}
		out[i] = landed{user: c.user, device: dev, clickID: c.id, ts: t0 + c.off, shard: sh.id, seq: next[c.shard].String(), arrived: at, data: data}
		next[c.shard].Add(next[c.shard], big.NewInt(1))
	}
	return out
}

// archiveLake archives evs (in arrival order) into a new bucket under lake/ through the archive
// processor and returns the bucket.
func archiveLake(t *testing.T, evs []landed) (*report.Config, func(*report.Config) *report.Runner) {
	t.Helper()
	s3c := testenv.S3(t)
	bucket := testenv.Bucket(t, s3c)
	shards := map[string][]consumer.Record{}
	for _, e := range evs {
		shards[e.shard] = append(shards[e.shard], consumer.Record{ShardID: e.shard, SequenceNumber: e.seq, PartitionKey: e.user, Data: e.data, ArrivedAt: e.arrived})
	}
	loc := func(p string) archive.Location { return archive.Location{Bucket: bucket, Prefix: "lake/" + p} }
	if err := lakegen.Archive(context.Background(), s3c, bucket, shards, archive.Config{Raw: loc("raw/"), Events: loc("events/"), Errors: loc("errors/")}); err != nil {
		t.Fatal(err)
	}
	base := &report.Config{Bucket: bucket, Prefix: "lake/", CacheDir: t.TempDir(), Logger: zap.NewNop()}
	return base, func(cfg *report.Config) *report.Runner {
		r, err := report.New(s3c, *cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// oracleSessions runs internal/oracle (PostgreSQL's LAG) over evs.
func oracleSessions(t *testing.T, evs []landed) map[string]messages.Session {
	t.Helper()
	in := make([]oracle.Event, len(evs))
	for i, e := range evs {
		in[i] = oracle.Event{UserID: e.user, TimestampMs: e.ts, DeviceType: e.device, Shard: e.shard, Seq: e.seq}
	}
	return testenv.OracleSessions(t, in)
}

// actorSessions applies evs (in arrival order) to the actors' per-user state (package session's
// User.Apply: the gap, the same-id rule and the recent-click window) and returns every session.
func actorSessions(evs []landed) map[string]messages.Session {
	users := map[string]*session.User{}
	shardOf := map[string]string{}
	out := map[string]messages.Session{}
	for _, e := range evs {
		u := users[e.user]
		if u == nil {
			u = &session.User{ID: e.user}
			users[e.user] = u
		}
		if shardOf[e.user] != e.shard { // a new shard: positions there are its own
			u.Applied, shardOf[e.user] = session.Position{}, e.shard
		}
		prev := u.Current
		ev := &messages.Event{UserID: e.user, EventTimeMs: e.ts, DeviceType: e.device, ClickID: e.clickID}
		if o := u.Apply(session.Position{SequenceNumber: e.seq}, ev, session.DefaultRules()); o.NewSession && prev.SessionID != "" {
			out[prev.SessionID] = prev
		}
	}
	for _, u := range users {
		out[u.Current.SessionID] = u.Current
	}
	return out
}

// byID indexes sessions by id; a repeated id fails the test.
func byID(t *testing.T, ss ...[]messages.Session) map[string]messages.Session {
	t.Helper()
	out := map[string]messages.Session{}
	for _, list := range ss {
		for _, s := range list {
			if _, dup := out[s.SessionID]; dup {
				t.Fatalf("session %s twice", s.SessionID)
			}
			out[s.SessionID] = s
		}
	}
	return out
}

// sameSessions fails with every difference between got and want.
func sameSessions(t *testing.T, what string, got, want map[string]messages.Session) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[id]; !ok {
			t.Errorf("%s: missing %+v", what, want[id])
		} else if g != want[id] {
			t.Errorf("%s: %s\n got %+v\nwant %+v", what, id, g, want[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: extra %+v", what, got[id])
		}
	}
	t.FailNow()
}

// only keeps the sessions of the users keep says yes to.
func only(m map[string]messages.Session, keep func(user string) bool) map[string]messages.Session {
	out := map[string]messages.Session{}
	for id, s := range m {
		if keep(s.UserID) {
			out[id] = s
		}
	}
	return out
}

// The sessions report over an archived lake of edge cases equals the sessions written by hand, the
// actors' own per-user logic over the same events, and PostgreSQL's LAG (internal/oracle) for the users
// whose events need neither the same-id rule nor the click-id window, which the oracle lacks; a range
// keeps the sessions that start in it, whole across its edges, and marks those that may still grow.
func TestSessionsEdgeCases(t *testing.T) {
	if report.SessionGapMs != session.DefaultGapMs || report.SessionsWindow != session.RecentClicksSize {
		t.Fatalf("the SQL's gap %d and window %d, the actors' %d and %d", report.SessionGapMs, report.SessionsWindow, session.DefaultGapMs, session.RecentClicksSize)
	}
	evs := land(edgeTrace())
	base, newRunner := archiveLake(t, evs)

	whole, err := newRunner(base).Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]messages.Session{}
	var wantOpen []string
	for _, w := range edgeWant {
		user, rest, _ := strings.Cut(w.id, "_")
		device, _, _ := strings.Cut(rest, "_")
		clock := w.id[len(w.id)-11:] // HHMMSS.mmmZ
		want[w.id] = messages.Session{SessionID: w.id, UserID: user, DeviceType: device, SessionTime: clock[0:2] + ":" + clock[2:4] + ":" + clock[4:6],
			StartMs: t0 + w.start, LastEventMs: t0 + w.last, EventCount: w.count}
		if w.open {
			wantOpen = append(wantOpen, w.id)
		}
	}
	got := byID(t, whole.Closed, whole.Open)
	sameSessions(t, "by hand", got, want)
	sameSessions(t, "the actors' logic", got, actorSessions(evs))
	oracleUsers := func(u string) bool { return u != "sameid" && u != "dup" }
	sameSessions(t, "the oracle", only(got, oracleUsers), only(oracleSessions(t, evs), oracleUsers))
	if ids := sessionIDs(whole.Open); !slices.Equal(ids, wantOpen) {
		t.Errorf("open %v, want %v", ids, wantOpen)
	}

	t.Run("charts", func(t *testing.T) { edgeCharts(t, newRunner(base)) })

	// Ranges: the sessions that start in each hour, whole though they cross its edges.
	hour := func(h int) time.Time { return time.UnixMilli(t0).UTC().Add(time.Duration(h) * time.Hour) }
	for _, tc := range []struct {
		from, to   time.Time
		want, open []string
	}{
		{hour(0), hour(1), []string{"eq", "gap", "gap", "late", "late", "dev", "dev", "sameid", "sameid", "dup", "big", "big", "moved", "moved", "edge"},
			[]string{"moved_desktop_20261201T101016.000Z"}},
		{hour(1), hour(2), []string{"edge2"}, nil},
		{hour(2), hour(3), []string{"tail3", "tail2", "tail1"}, []string{"tail2_desktop_20261201T122950.000Z", "tail1_desktop_20261201T123000.000Z"}},
		{hour(1).Add(30 * time.Minute), hour(1).Add(31 * time.Minute), []string{"edge2"}, nil}, // whole hours: 11:00–12:00
	} {
		t.Run(tc.from.Format("15:04")+"-"+tc.to.Format("15:04"), func(t *testing.T) {
			cfg := *base
			cfg.From, cfg.To = tc.from, tc.to
			res, err := newRunner(&cfg).Sessions(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wantIn := map[string]messages.Session{}
			for id, s := range want {
				if slices.Contains(tc.want, s.UserID) {
					wantIn[id] = s
				}
			}
			if n := len(res.Closed) + len(res.Open); n != len(tc.want) {
				t.Errorf("%d sessions, want %d", n, len(tc.want))
			}
			sameSessions(t, "range", byID(t, res.Closed, res.Open), wantIn)
			if ids := sessionIDs(res.Open); !slices.Equal(ids, tc.open) {
				t.Errorf("open %v, want %v", ids, tc.open)
			}
			if f, to := res.From, res.To; !f.Equal(tc.from.Truncate(time.Hour)) || to.Sub(f) != time.Hour {
				t.Errorf("range %s–%s", f, to)
			}
			// The charts read the same view: one hour, its sessions.
			sameRows(t, "sessions_by_hour", run(t, newRunner(&cfg), "sessions_by_hour").Table, []string{"hour", "sessions"},
				[][]any{{tc.from.Truncate(time.Hour).Format("2006-01-02T15:04Z"), int64(len(tc.want))}})
		})
	}
}

// edgeCharts checks the charts over the sessions view against the edge trace's sessions, counted by hand
// from edgeWant: starts per hour (15 at 10:xx, 1 at 11:xx, 3 at 12:xx), lengths (last − start), event
// counts and device types.
func edgeCharts(t *testing.T, r *report.Runner) {
	for _, tc := range []struct {
		name string
		cols []string
		want [][]any
	}{
		{"sessions_by_hour", []string{"hour", "sessions"}, [][]any{
			{"2026-12-01T10:00Z", int64(15)}, {"2026-12-01T11:00Z", int64(1)}, {"2026-12-01T12:00Z", int64(3)}}},
		// 0 ms: eq, late@214, sameid × 2, moved@1016, tails × 3; 1–10 s: late@200 (8 s), dev × 2 (5, 1), big × 2
		// (5, 4), moved@1000 (5), edge (8), edge2 (7); 10 s exactly: gap × 2; 33 s: dup.
		{"session_length", []string{"bucket", "from_seconds", "to_seconds", "sessions"}, [][]any{
			{"0-1 s", int64(0), int64(1), int64(8)}, {"1-10 s", int64(1), int64(10), int64(8)}, {"10-30 s", int64(10), int64(30), int64(2)},
			{"30-60 s", int64(30), int64(60), int64(1)}, {"1-2 min", int64(60), int64(120), int64(0)}, {"2-5 min", int64(120), int64(300), int64(0)},
			{"5-10 min", int64(300), int64(600), int64(0)}, {"10-30 min", int64(600), int64(1800), int64(0)}, {"30 min+", int64(1800), nil, int64(0)}}},
		// 1 event: sameid@421, moved@1016, tails × 3; 2: gap × 2, late@214, dev × 2, big × 2, moved@1000, edge,
		// edge2; 3: eq, late@200, sameid@410; 35: dup.
		{"events_per_session", []string{"bucket", "from_events", "to_events", "sessions"}, [][]any{
			{"1", int64(1), int64(2), int64(5)}, {"2", int64(2), int64(3), int64(10)}, {"3-5", int64(3), int64(6), int64(3)},
			{"6-10", int64(6), int64(11), int64(0)}, {"11-20", int64(11), int64(21), int64(0)}, {"21-50", int64(21), int64(51), int64(1)},
			{"51-100", int64(51), int64(101), int64(0)}, {"101+", int64(101), nil, int64(0)}}},
		{"sessions_by_device", []string{"device_type", "sessions"}, [][]any{
			{"desktop", int64(17)}, {"mobile", int64(1)}, {"unknown", int64(1)}}},
	} {
		sameRows(t, tc.name, run(t, r, tc.name).Table, tc.cols, tc.want)
	}
}

func sessionIDs(ss []messages.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.SessionID
	}
	return out
}

// memSink keeps what the generator puts.
type memSink struct{ evs []clickgen.Event }

func (m *memSink) Put(_ context.Context, batch []clickgen.Event) ([]clickgen.Event, error) {
	m.evs = append(m.evs, batch...)
	return nil, nil
}

// The lab's trace, as 'clickfleet gen --profile lab' makes it (600 clicks of user1..user3, 2 s apart,
// a 15 s pause every 60), on two shards: the sessions report equals PostgreSQL's LAG and the actors'.
func TestSessionsLabTrace(t *testing.T) {
	cfg := clickgen.DefaultConfig(clickgen.ProfileLab)
	cfg.Count, cfg.TimeScale, cfg.Start = 600, 0, time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	var sink memSink
	if _, err := clickgen.Run(context.Background(), cfg, &sink, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	seq := map[string]int{}
	evs := make([]landed, len(sink.evs))
	for i, g := range sink.evs {
		var rec struct {
			UserID         string      `json:"user_id"`
			EventTimestamp json.Number `json:"event_timestamp"`
			DeviceType     string      `json:"device_type"`
		}
		if err := json.Unmarshal(g.Data, &rec); err != nil {
			t.Fatal(err)
		}
		ts, err := strconv.ParseInt(rec.EventTimestamp.String(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		shard := lakegen.ShardID(rec.UserID, 2)
		seq[shard]++
		evs[i] = landed{user: rec.UserID, device: rec.DeviceType, ts: ts, shard: shard, seq: fmt.Sprintf("4960%052d", seq[shard]),
			arrived: time.UnixMilli(ts + 100).UTC(), data: g.Data}
	}
	base, newRunner := archiveLake(t, evs)
	res, err := newRunner(base).Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(t, res.Closed, res.Open)
	want := oracleSessions(t, evs)
	sameSessions(t, "the oracle", got, want)
	sameSessions(t, "the actors' logic", got, actorSessions(evs))
	var events int64
	for _, s := range got {
		events += s.EventCount
	}
	if events != int64(len(evs)) || len(got) < 30 || len(res.Open) < 1 || len(res.Open) > 3 {
		t.Fatalf("%d sessions (%d open) holding %d events; want ≥ 30 holding %d, 1 to 3 open (at most each user's last)", len(got), len(res.Open), events, len(evs))
	}
}
