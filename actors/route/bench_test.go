package route_test

import (
	"testing"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/messages"
)

// benchEvents are both seed shapes, offers and not, with and without percent_viewed.
func benchEvents(b *testing.B) []*messages.Event {
	var evs []*messages.Event
	for _, s := range []string{pocView, pocViewLow, pocPurchase, labDetail} {
		evs = append(evs, decode(b, s))
	}
	return evs
}

var sink int

// The seed's filter as today's hard-coded check (session.Rules.IsOffer), per event.
func BenchmarkHardCodedOffer(b *testing.B) {
	evs, rules := benchEvents(b), session.DefaultRules()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if rules.IsOffer(evs[i%len(evs)]) {
			sink++
		}
	}
}

// The seed's filter as the default route, compiled once, per event.
func BenchmarkSeedRoute(b *testing.B) {
	evs := benchEvents(b)
	set, err := route.Compile([]route.Route{route.Offers("s", "ViewContent", 60)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += int(set.Match(evs[i%len(evs)]))
	}
}

// Ten routes of the kinds the README shows, per event (all ten evaluated).
func BenchmarkTenRoutes(b *testing.B) {
	evs := benchEvents(b)
	exprs := []string{
		`event_name == "ViewContent" && percent_viewed > 60`,
		`event_name == "Purchase" && price > 100`,
		`device_type == "mobile"`,
		`device_type in ["tablet", "desktop"] && event_type == "click"`,
		`has(e.price) && e.price < 10`,
		`event_name == "AddToCart"`,
		`time_on_data > 30.0`,
		`user_id.startsWith("1")`,
		`product_id == 42 || product_id == 7`,
		`schema == "lab" && event_name == "checkout"`,
	}
	var rs []route.Route
	for i, x := range exprs {
		rs = append(rs, route.Route{Name: "r" + string(rune('a'+i)), Stream: "s", Expr: x})
	}
	set, err := route.Compile(rs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += int(set.Match(evs[i%len(evs)]))
	}
}
