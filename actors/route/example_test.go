package route_test

import (
	"fmt"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/messages"
)

func ExampleCompile() {
	offers, _ := route.Parse(`offers=clickstream-offers:event_name == "ViewContent" && percent_viewed > 60`)
	purchases := route.Route{Name: "purchases", Stream: "clickstream-purchases",
		Expr: `event_name == "Purchase" && has(e.price) && e.price > 100`, Fields: []string{"user_id", "price"}}
	set, err := route.Compile([]route.Route{offers, purchases})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, _ := messages.Decode([]byte(`{"event_name":"Purchase","user_id":"35","timestamp":"2021-07-12 12:01:58.732726","click_id":"c1","additional_data":{"price":417.97}}`))
	m := set.Match(ev)
	fmt.Printf("offers %v, purchases %v\n", m&1 != 0, m&2 != 0)
	b, _ := set.Encode(nil, 1, ev)
	fmt.Println(string(b))

	_, err = route.Compile([]route.Route{{Name: "typo", Stream: "s", Expr: "prce > 100"}})
	fmt.Println(err)
	// Output:
	// offers false, purchases true
	// {"click_id":"c1","user_id":"35","price":417.97}
	// Routes: route "typo": line 1, column 1 (offset 0): undeclared reference to 'prce' (in container '')
}
