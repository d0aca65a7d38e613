package session_test

import (
	"fmt"

	"github.com/clickfleet/clickfleet/session"
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
