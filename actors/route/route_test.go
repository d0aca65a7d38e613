package route_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/messages"
)

func decode(t testing.TB, s string) *messages.Event {
	t.Helper()
	ev, err := messages.Decode([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return ev
}

const (
	pocView     = `{"event_name":"ViewContent","user_id":"u1","timestamp":"2021-07-12 12:01:58.732726","pixel_id":"p1","click_id":"c1","additional_data":{"percent_viewed":75.5,"time_on_data":12,"product_id":42}}`
	pocViewLow  = `{"event_name":"ViewContent","user_id":"u1","timestamp":"2021-07-12 12:01:58.732726","additional_data":{"percent_viewed":60}}`
	pocPurchase = `{"event_name":"Purchase","user_id":"u2","timestamp":"2021-07-12 12:01:58.732726","additional_data":{"product_id":7,"price":150.25}}`
	labDetail   = `{"event_name":"detail","user_id":"17","device_type":"mobile","event_type":"click","event_timestamp":1626091318000,"user_ip":"81.2.69.142"}`
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name, expr, event string
		want              bool
	}{
		{"seed offer", `event_name == "ViewContent" && percent_viewed > 60`, pocView, true},
		{"seed at the bound", `event_name == "ViewContent" && percent_viewed > 60`, pocViewLow, false},
		{"seed absent percent", `event_name == "ViewContent" && percent_viewed > 60`, pocPurchase, false},
		{"absent compares false", `percent_viewed <= 60`, labDetail, false},
		{"absent negated is still no match", `!(percent_viewed > 60)`, labDetail, false},
		{"has absent", `has(e.price)`, pocView, false},
		{"has present", `has(e.price)`, pocPurchase, true},
		{"guarded absent", `!has(e.price) || e.price < 10`, pocView, true},
		{"e and bare agree", `e.price == price && price > 100`, pocPurchase, true},
		{"int against double", `price > 100`, pocPurchase, true},
		{"product id int", `product_id == 7`, pocPurchase, true},
		{"device filter", `device_type in ["mobile", "tablet"]`, labDetail, true},
		{"device unknown on poc", `device_type == "unknown"`, pocView, true},
		{"absent string", `event_type == "click"`, pocView, false},
		{"present string", `event_type == "click" && has(e.user_ip)`, labDetail, true},
		{"event time", `event_time_ms >= 1626091318000`, labDetail, true},
		{"schema", `schema == "lab"`, labDetail, true},
		{"string functions", `user_id.startsWith("1") && event_name.matches("^de")`, labDetail, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := route.Compile([]route.Route{{Name: "r", Stream: "s", Expr: tc.expr}})
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.expr, err)
			}
			if got := s.Match(decode(t, tc.event)) == 1; got != tc.want {
				t.Errorf("%q on %s: match %v, want %v", tc.expr, tc.event, got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route route.Route
		want  []string // substrings of the reason
	}{
		{"syntax", route.Route{Name: "bad", Stream: "s", Expr: `event_name == "x" &&`}, []string{`route "bad"`, "line 1, column 21 (offset 20)", "Syntax error"}},
		{"unknown bare field", route.Route{Name: "typo", Stream: "s", Expr: `prce > 100`}, []string{`route "typo"`, "column 1 (offset 0)", "undeclared reference to 'prce'"}},
		{"unknown e field", route.Route{Name: "typo", Stream: "s", Expr: `has(e.prce)`}, []string{"column 4 (offset 3)", "undefined field 'prce'"}},
		{"type error", route.Route{Name: "types", Stream: "s", Expr: `price == "high"`}, []string{`route "types"`, "column 7 (offset 6)", "no matching overload"}},
		{"second line", route.Route{Name: "ml", Stream: "s", Expr: "price > 1 &&\n  device_type > 3"}, []string{"line 2, column 15 (offset 27)"}},
		{"not a bool", route.Route{Name: "nb", Stream: "s", Expr: `price + 1.0`}, []string{`route "nb"`, "double, not a bool"}},
		{"no name", route.Route{Stream: "s", Expr: `true`}, []string{"no name"}},
		{"bad name", route.Route{Name: "a b", Stream: "s", Expr: `true`}, []string{"letters, digits"}},
		{"no stream", route.Route{Name: "n", Expr: `true`}, []string{`route "n": no stream`}},
		{"no expr", route.Route{Name: "n", Stream: "s"}, []string{`route "n": no expression`}},
		{"unknown projected field", route.Route{Name: "p", Stream: "s", Expr: `true`, Fields: []string{"prices"}}, []string{`unknown field "prices"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := route.Compile([]route.Route{tc.route})
			var se *settings.Error
			if !errors.As(err, &se) || se.Field != route.Field {
				t.Fatalf("Compile: %v, want a *settings.Error for %s", err, route.Field)
			}
			for _, w := range tc.want {
				if !strings.Contains(se.Reason, w) {
					t.Errorf("reason %q lacks %q", se.Reason, w)
				}
			}
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		_, err := route.Compile([]route.Route{{Name: "a", Stream: "s", Expr: "true"}, {Name: "a", Stream: "t", Expr: "true"}})
		if err == nil || !strings.Contains(err.Error(), "used twice") {
			t.Fatalf("Compile: %v, want a duplicate name error", err)
		}
	})
}

func TestParse(t *testing.T) {
	r, err := route.Parse(`offers=clickstream-offers:event_name == "ViewContent" && percent_viewed > 60`)
	if err != nil {
		t.Fatal(err)
	}
	want := route.Offers("clickstream-offers", "ViewContent", 60)
	if r.Name != want.Name || r.Stream != want.Stream || r.Expr != want.Expr || !r.Enrich {
		t.Errorf("Parse = %+v, want %+v", r, want)
	}
	for _, bad := range []string{"offers", "offers=stream", "=s", ""} {
		if _, err := route.Parse(bad); !errors.Is(err, settings.ErrInvalid) {
			t.Errorf("Parse(%q): %v, want a settings error", bad, err)
		}
	}
	// Parse checks the flag's syntax only: an empty name parses, and Compile refuses it.
	r, err = route.Parse("=s:true")
	if err != nil || r.Name != "" || r.Stream != "s" || r.Expr != "true" {
		t.Fatalf(`Parse("=s:true") = %+v, %v; want the route with no name`, r, err)
	}
	if _, err := route.Compile([]route.Route{r}); !errors.Is(err, settings.ErrInvalid) || !strings.Contains(err.Error(), "no name") {
		t.Errorf("Compile of a route with no name: %v, want a settings error saying so", err)
	}
}

func TestParseFile(t *testing.T) {
	good := `routes:
  - name: purchases
    stream: clickstream-purchases
    when: event_name == "Purchase" && price > 100
    fields: [user_id, product_id, price]
    enrich: false
  - name: mobile
    stream: clickstream-mobile
    when: device_type == "mobile"
`
	rs, err := route.ParseFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Enrich || !rs[1].Enrich || len(rs[0].Fields) != 3 || rs[1].Fields != nil {
		t.Fatalf("ParseFile = %+v", rs)
	}
	if _, err := route.Compile(rs); err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"unknown key", "routes:\n  - name: a\n    stream: s\n    where: true\n", "line 4: field where not found"},
		{"not a list", "routes: {name: a}\n", "line 1"},
		{"bad yaml", "routes:\n  - name: [\n", "line"},
		{"empty", "", "no routes"},
		{"wrong top key", "route:\n  - name: a\n", "field route not found"},
		{"enrich not bool", "routes:\n  - name: a\n    stream: s\n    when: 'true'\n    enrich: maybe\n", "line 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := route.ParseFile([]byte(tc.file))
			var se *settings.Error
			if !errors.As(err, &se) || se.Field != route.Field || !strings.Contains(se.Reason, tc.want) {
				t.Fatalf("ParseFile: %v, want a *settings.Error for %s containing %q", err, route.Field, tc.want)
			}
		})
	}
}

func TestEncodeProjection(t *testing.T) {
	s, err := route.Compile([]route.Route{{Name: "p", Stream: "s", Expr: "true", Fields: []string{"user_id", "price", "percent_viewed"}, Enrich: true}})
	if err != nil {
		t.Fatal(err)
	}
	ev := decode(t, pocPurchase)
	ev.ClickID, ev.Name, ev.Country = "c9", "Ann \"A\"", "GB"
	b, err := s.Encode(nil, 0, ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"click_id":"c9","user_id":"u2","price":150.25,"name":"Ann \"A\"","country":"GB"}`; string(b) != want {
		t.Errorf("Encode = %s, want %s", b, want)
	}
}
