package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

type ev struct {
	ts     int64
	device string
}

type want struct {
	sessions int   // sessions started so far
	start    int64 // Current.StartMs
	last     int64 // Current.LastEventMs
	count    int64 // Current.EventCount
	device   string
}

func TestSessionizer(t *testing.T) {
	const s = 1000
	base := int64(1_626_091_318_000)
	tests := []struct {
		name   string
		events []ev
		want   want
	}{
		{"first event starts a session", []ev{{base, "desktop"}}, want{1, base, base, 1, "desktop"}},
		{"gap of exactly 10 s continues", []ev{{base, "desktop"}, {base + 10*s, "desktop"}}, want{1, base, base + 10*s, 2, "desktop"}},
		{"gap of 10 s + 1 ms starts anew", []ev{{base, "desktop"}, {base + 10*s + 1, "mobile"}}, want{2, base + 10*s + 1, base + 10*s + 1, 1, "mobile"}},
		{"lab rhythm: 2 s apart then 15 s pause", []ev{{base, "desktop"}, {base + 2*s, "desktop"}, {base + 4*s, "desktop"}, {base + 19*s, "desktop"}, {base + 21*s, "desktop"}},
			want{2, base + 19*s, base + 21*s, 2, "desktop"}},
		{"late earlier timestamp never starts a session", []ev{{base, "desktop"}, {base - 60*s, "desktop"}}, want{1, base, base, 2, "desktop"}},
		{"gap is to the previously arrived event, not the latest timestamp",
			// 100 s, then a late 50 s (continues), then 62 s: 12 s after the previous arrival starts a session
			// although 62 s is before the session's latest timestamp.
			[]ev{{base + 100*s, "desktop"}, {base + 50*s, "desktop"}, {base + 62*s, "tablet"}}, want{2, base + 62*s, base + 62*s, 1, "tablet"}},
		{"last_event_ms is the highest timestamp", []ev{{base, "desktop"}, {base + 8*s, "desktop"}, {base + 3*s, "desktop"}}, want{1, base, base + 8*s, 3, "desktop"}},
		{"device type is the first-arrived event's", []ev{{base, "desktop"}, {base + s, "mobile"}}, want{1, base, base + s, 2, "desktop"}},
		{"missing device type is unknown", []ev{{base, ""}}, want{1, base, base, 1, messages.UnknownDeviceType}},
		{"a new session with the current id continues it",
			// start at 100 s, a late 80 s continues, then 100 s again is 20 s after 80 s: it would be a new session
			// with the same id (same start ms and device), so it continues the first.
			[]ev{{base + 100*s, "desktop"}, {base + 80*s, "desktop"}, {base + 100*s, "desktop"}}, want{1, base + 100*s, base + 100*s, 3, "desktop"}},
		{"same start ms on another device is a new session",
			[]ev{{base + 100*s, "desktop"}, {base + 80*s, "desktop"}, {base + 100*s, "mobile"}}, want{2, base + 100*s, base + 100*s, 1, "mobile"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var z Sessionizer
			n := 0
			for _, e := range tc.events {
				if z.Add("user1", e.device, e.ts, DefaultGapMs) {
					n++
				}
			}
			c := z.Current
			got := want{n, c.StartMs, c.LastEventMs, c.EventCount, c.DeviceType}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if c.SessionID != messages.SessionID("user1", c.DeviceType, c.StartMs) || c.SessionTime != messages.SessionTime(c.StartMs) || c.UserID != "user1" {
				t.Fatalf("session naming: %+v", c)
			}
		})
	}
}

func poc(t *testing.T, name string, percent float64, tsMs int64) *messages.Event {
	t.Helper()
	return &messages.Event{Schema: messages.SchemaPOC, UserID: "u1", EventName: name, DeviceType: messages.UnknownDeviceType, EventTimeMs: tsMs,
		AdditionalData: &messages.AdditionalData{PercentViewed: percent, Set: messages.HasPercentViewed}}
}

func TestUserApply(t *testing.T) {
	r := DefaultRules()
	base := int64(1_626_091_318_000)
	u := User{ID: "u1"}
	first := messages.NewSession("u1", messages.UnknownDeviceType, base)
	first.LastEventMs, first.EventCount = base+3000, 4
	steps := []struct {
		name string
		pos  Position
		ev   *messages.Event
		want Outcome
	}{
		{"first event", position.At("100", 0), poc(t, "Search", 0, base), Outcome{Applied: true, NewSession: true}},
		{"offer above the threshold", position.At("101", 0), poc(t, "ViewContent", 61, base+1000), Outcome{Applied: true, Offer: true}},
		{"exactly 60 is no offer", position.At("102", 0), poc(t, "ViewContent", 60, base+2000), Outcome{Applied: true}},
		{"other event names are no offer", position.At("103", 0), poc(t, "Purchase", 99, base+3000), Outcome{Applied: true}},
		{"replay of an applied record", position.At("101", 0), poc(t, "ViewContent", 61, base+1000), Outcome{}},
		// The first session's row was never written, so its final values come back for the writer.
		{"sub-record after the applied one", position.At("103", 1), poc(t, "Search", 0, base+60000), Outcome{Applied: true, NewSession: true, Closed: first}},
		{"late timestamp keeps last access", position.At("104", 0), poc(t, "Search", 0, base+55000), Outcome{Applied: true}},
	}
	for _, s := range steps {
		if got := u.Apply(s.pos, s.ev, r); got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if u.LastAccessMs != base+60000 || u.Applied != (position.At("104", 0)) || u.Current.EventCount != 2 {
		t.Fatalf("state: %+v", u)
	}
	noData := &messages.Event{Schema: messages.SchemaPOC, UserID: "u1", EventName: "ViewContent", EventTimeMs: base}
	if r.IsOffer(noData) {
		t.Fatal("an event without percent_viewed is an offer")
	}
}

func TestFieldsRoundTrip(t *testing.T) {
	base := int64(1_626_091_318_000)
	u := User{ID: "u1"}
	r := DefaultRules()
	u.Apply(position.At("7", 0), &messages.Event{UserID: "u1", EventName: "x", DeviceType: "desktop", EventTimeMs: base}, r)
	u.Apply(position.At("8", 2), &messages.Event{UserID: "u1", EventName: "x", DeviceType: "mobile", EventTimeMs: base + 5000}, r)
	u.SetLocation("US", "California", "Riverside")
	u.SetLocation("", "", "") // an unresolved address keeps the location
	h := map[string]string{PositionField("shard-1"): u.Applied.Encode(), PositionField("shard-0"): "3:0", FieldName: "Ann"}
	kv := u.AppendFields(nil, "shard-1")
	for i := 0; i < len(kv); i += 2 {
		if kv[i] == FieldName {
			t.Fatal("AppendFields writes the name, which belongs to the names sync")
		}
	}
	u.Name = "Ann" // read back from the hash
	for i := 0; i < len(kv); i += 2 {
		h[kv[i].(string)] = fmt.Sprint(kv[i+1])
	}
	got, err := FromFields("u1", "shard-1", h)
	if err != nil {
		t.Fatal(err)
	}
	if got != u {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, u)
	}
	other, err := FromFields("u1", "shard-2", h)
	if err != nil || !other.Applied.IsZero() || other.Current != u.Current {
		t.Fatalf("another shard resumes the session but applies all its records: %+v %v", other, err)
	}
	if got.Country != "US" || got.Region != "California" || got.City != "Riverside" || got.Name != "Ann" {
		t.Fatalf("location and name: %+v", got)
	}
	fresh, err := FromFields("u9", "shard-1", nil)
	if err != nil || fresh.Started() || fresh.ID != "u9" {
		t.Fatalf("new user: %+v %v", fresh, err)
	}
	h[FieldDevice] = "tablet"
	if _, err := FromFields("u1", "shard-1", h); err == nil {
		t.Fatal("inconsistent session fields accepted")
	}
}

// A state write sets only the fields that changed: a hash kept by nothing but those partial writes
// always reads back as the user's state (random events, sessions, locations, row writes, click ids, a
// rehydration, a move to another shard, a forgotten write), and a write after an event that neither
// started a session nor changed anything else carries only the moving fields.
func TestAppendFieldsWritesOnlyChanges(t *testing.T) {
	r := DefaultRules()
	rnd := rand.New(rand.NewPCG(7, 7))
	base := int64(1_626_091_318_000)
	h := map[string]string{}
	write := func(u *User, shard string) []string {
		kv := u.AppendFields(nil, shard)
		h[PositionField(shard)] = u.Applied.Encode()
		var names []string
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = fmt.Sprint(kv[i+1])
			names = append(names, kv[i].(string))
		}
		return names
	}
	same := func(step int, u User, shard string) {
		t.Helper()
		got, err := FromFields(u.ID, shard, h)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if !slices.Equal(got.Recent.Fingerprints(), u.Recent.Fingerprints()) {
			t.Fatalf("step %d: the window reads back as %v, want %v", step, got.Recent.Fingerprints(), u.Recent.Fingerprints())
		}
		got.stored, u.stored = 0, 0
		got.Recent, u.Recent = RecentClicks{}, RecentClicks{}
		if got != u {
			t.Fatalf("step %d: the hash reads back as\n %+v\nwant %+v", step, got, u)
		}
	}
	shard := "shard-1"
	u := User{ID: "u1"}
	ts, seq := base, 10
	for step := range 400 {
		switch k := rnd.IntN(10); {
		case k < 6: // events, within the gap or not
			for range 1 + rnd.IntN(3) {
				seq++
				ts += []int64{1000, 4000, 11_000, 60_000}[rnd.IntN(4)]
				ev := &messages.Event{UserID: "u1", EventName: "x", DeviceType: []string{"desktop", "mobile"}[rnd.IntN(2)], EventTimeMs: ts}
				if rnd.IntN(3) == 0 {
					ev.ClickID = fmt.Sprint("click-", seq)
				}
				u.Apply(position.At(fmt.Sprint(seq), 0), ev, r)
			}
		case k == 6:
			u.SetLocation([]string{"US", "DE", ""}[rnd.IntN(3)], "R", []string{"A", "B"}[rnd.IntN(2)])
		case k == 7 && u.Started():
			u.RowWritten(ts, rnd.IntN(2) == 0)
		case k == 8: // a new holding period, maybe on a child shard
			if rnd.IntN(2) == 0 {
				shard = fmt.Sprint("shard-", 2+rnd.IntN(3))
			}
			var err error
			if u, err = FromFields("u1", shard, h); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			continue
		default:
			u.ForgetStored()
		}
		write(&u, shard)
		same(step, u, shard)
	}

	// An event within the session, nothing else changed: only the moving fields.
	seq++
	ts += 1000
	u.Apply(position.At(fmt.Sprint(seq), 0), &messages.Event{UserID: "u1", EventName: "x", DeviceType: u.Current.DeviceType, EventTimeMs: ts}, r)
	write(&u, shard)
	seq++
	ts += 1000
	u.Apply(position.At(fmt.Sprint(seq), 0), &messages.Event{UserID: "u1", EventName: "x", DeviceType: u.Current.DeviceType, EventTimeMs: ts}, r)
	want := []string{FieldLastAccess, FieldLastEventMs, FieldCount, FieldPrevMs}
	if got := write(&u, shard); !slices.Equal(got, want) {
		t.Fatalf("fields written after an event in the open session: %v, want %v", got, want)
	}
	u.ForgetStored()
	if got := write(&u, shard); len(got) < 11 {
		t.Fatalf("after ForgetStored only %v are written", got)
	}
	same(-1, u, shard)
}
