package session_test

import (
	"fmt"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

// A user's window of recent click ids, as the UserActor keeps it and the user's hash stores it.
func ExampleRecentClicks() {
	var w session.RecentClicks
	for _, id := range []string{"0190f2a4-7c1e-7d3a-9b1f-2f6c0e5a8d41", "0190f2a4-7c1e-7d3a-9b1f-2f6c0e5a8d42"} {
		w.Add(session.ClickFingerprint(id))
	}
	stored := w.Encode() // the value of the field recent_clicks
	back, err := session.ParseRecentClicks(stored)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(stored), back.Len())
	fmt.Println(back.Contains(session.ClickFingerprint("0190f2a4-7c1e-7d3a-9b1f-2f6c0e5a8d41")))
	fmt.Println(back.Contains(session.ClickFingerprint("0190f2a4-7c1e-7d3a-9b1f-2f6c0e5a8d43")))
	_, err = session.ParseRecentClicks("not base64!")
	fmt.Println(err != nil)
	// Output:
	// 22 2
	// true
	// false
	// true
}

// A user's events applied in arrival order: sessions split at gaps over 10 s, a replayed record and a
// producer's retry of the same click change nothing.
func ExampleUser() {
	u := session.User{ID: "user1"}
	rules := session.DefaultRules()
	at := func(i int) session.Position { return position.At(fmt.Sprint(4960000000000+i), 0) }
	ev := func(ts int64, click string) *messages.Event {
		return &messages.Event{UserID: "user1", EventName: "search", DeviceType: "desktop", EventTimeMs: ts, ClickID: click}
	}
	const t0 = 1_626_091_318_000
	for i, e := range []*messages.Event{ev(t0, "c1"), ev(t0+2000, "c2"), ev(t0+30_000, "c3")} {
		o := u.Apply(at(i), e, rules)
		fmt.Println(o.Applied, o.NewSession, u.Current.SessionID, u.Current.EventCount)
	}
	fmt.Println(u.Apply(at(1), ev(t0+2000, "c2"), rules).Applied)     // a replay: at or below the applied position
	fmt.Println(u.Apply(at(7), ev(t0+30_000, "c3"), rules).Duplicate) // the same click under a new position
	fmt.Println(u.Current.EventCount, u.LastAccessMs)
	// Output:
	// true true user1_desktop_20210712T120158.000Z 1
	// true false user1_desktop_20210712T120158.000Z 2
	// true true user1_desktop_20210712T120228.000Z 1
	// false
	// true
	// 1 1626091348000
}
