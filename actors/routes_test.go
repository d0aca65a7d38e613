package actors

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// Two routes beside the default one, through a real worker: purchases over 100 projected to three fields
// without enrichment, and a device filter on lab events, whole and enriched. Each stream receives exactly
// the events its predicate selects (checked here by hand-written Go conditions, not by the route package),
// field for field as encoding/json reads input and output, each user's in input order; events without
// the fields a predicate compares (no percent_viewed, no price) go nowhere.
func TestRoutesThroughAWorker(t *testing.T) {
	s := newSinks(t)
	stream := testenv.Stream(t, s.kin, 2)
	purchases, mobile := testenv.Stream(t, s.kin, 1), testenv.Stream(t, s.kin, 1)
	const users = 12
	base := time.Date(2021, 7, 12, 20, 24, 49, 0, time.UTC).UnixMilli()
	var evs []putEvent
	for i := range 360 {
		u := fmt.Sprint(1 + (i/5)%users)
		ts := base + int64(i)*1000
		ip := demoIP(i, 1+i%200)
		var data []byte
		switch i % 6 {
		case 0, 1: // ViewContent: over, at, under 60, or without percent_viewed
			extra := `"percent_viewed":` + []string{"75.5", "60", "12", "99"}[i%4] + `,`
			if i%5 == 0 {
				extra = ""
			}
			data = fmt.Appendf(nil, `{"timestamp":%q,"user_id":%q,"pixel_id":"px","click_id":"v%d","event_name":"ViewContent","user_ip":%q,"additional_data":{%s"product_id":%d}}`,
				time.UnixMilli(ts).UTC().Format("2006-01-02 15:04:05.000000"), u, i, ip, extra, i)
		case 2, 3: // Purchase: over or under 100, or without a price; half without click_id
			extra := `,"price":` + []string{"150.25", "100", "250", "9.99"}[i%4]
			if i%7 == 0 {
				extra = ""
			}
			click := fmt.Sprintf(`"click_id":"p%d",`, i)
			if i%2 == 1 {
				click = ""
			}
			data = fmt.Appendf(nil, `{"timestamp":%q,"user_id":%q,%s"event_name":"Purchase","user_ip":%q,"additional_data":{"product_id":%d%s}}`,
				time.UnixMilli(ts).UTC().Format("2006-01-02 15:04:05.000000"), u, click, ip, i, extra)
		default: // lab events on three devices, without click_id
			data = fmt.Appendf(nil, `{"user_id":%q,"event_timestamp":"%d","event_name":"detail","event_type":"click","device_type":%q,"user_ip":%q}`,
				u, ts, []string{"mobile", "desktop", "tablet"}[i%7%3], ip)
		}
		evs = append(evs, putEvent{user: u, data: data})
	}
	last := putAll(t, s.kin, stream, evs)
	for u := 1; u <= users; u++ {
		if err := s.rdb.HSet(context.Background(), session.UserKey(s.prefix, fmt.Sprint(u)), "name", fmt.Sprintf("Customer %d", u)).Err(); err != nil {
			t.Fatal(err)
		}
	}

	cfg := s.config(stream)
	cfg.FlushInterval, cfg.FlushMaxRecords = 100*time.Millisecond, 100
	cfg.Geo = newResolver(t, geo.Config{Provider: demoMMDB(t), Redis: s.rdb, Prefix: s.prefix})
	cfg.Routes = []route.Route{
		route.Offers(s.offers, messages.POCViewContent, 60),
		{Name: "purchases", Stream: purchases, Expr: `event_name == "Purchase" && price > 100`, Fields: []string{"user_id", "product_id", "price"}},
		{Name: "mobile", Stream: mobile, Expr: `device_type == "mobile"`, Enrich: true},
	}
	f := newFactory(t, cfg)
	table := leaseTable(t, s.ddb)
	defer runWorker(t, s, stream, table, "routes", f)()
	testenv.WaitFor(t, "every shard checkpointed at its last record", 60*time.Second, func() bool { return checkpointedTo(t, s.ddb, table, last) })

	// What each stream must hold, per user in input order. Expected values come from the input as
	// encoding/json reads it, not from package messages' decoder or encoder; a record without click_id gets
	// the id its position derives (messages.DerivedClickID, the contract's formula, tested in messages).
	want := map[string]map[string][]map[string]any{s.offers: {}, purchases: {}, mobile: {}}
	for _, e := range evs {
		in := jsonObject(t, e.data)
		if _, ok := in["click_id"]; !ok {
			in["click_id"] = messages.DerivedClickID(e.shard, e.seq, 0)
		}
		user := in["user_id"].(string)
		enriched := func() map[string]any {
			out := maps.Clone(in)
			loc, ok := demoLocation(in["user_ip"].(string))
			if !ok {
				t.Fatalf("address %s is in no demo network", in["user_ip"])
			}
			out["name"], out["country"], out["region"], out["city"] = "Customer "+user, loc.Country, loc.Region, loc.City
			return out
		}
		ad, _ := in["additional_data"].(map[string]any)
		if pv, ok := ad["percent_viewed"].(float64); in["event_name"] == "ViewContent" && ok && pv > 60 {
			want[s.offers][user] = append(want[s.offers][user], enriched())
		}
		if price, ok := ad["price"].(float64); in["event_name"] == "Purchase" && ok && price > 100 {
			want[purchases][user] = append(want[purchases][user],
				map[string]any{"click_id": in["click_id"], "user_id": user, "product_id": ad["product_id"], "price": price})
		}
		if in["device_type"] == "mobile" {
			want[mobile][user] = append(want[mobile][user], enriched())
		}
	}
	for name, st := range map[string]string{"offers": s.offers, "purchases": purchases, "mobile": mobile} {
		got := map[string][]map[string]any{}
		n := 0
		for _, r := range readStream(t, s.kin, st) {
			o := jsonObject(t, r.Data)
			user, _ := o["user_id"].(string)
			got[user] = append(got[user], o)
			n++
		}
		wantN := 0
		for _, l := range want[st] {
			wantN += len(l)
		}
		if n != wantN || wantN < 20 {
			t.Errorf("%s: %d records, want %d", name, n, wantN)
		}
		for u, l := range got {
			if _, ok := want[st][u]; !ok {
				t.Fatalf("%s: %d records of user %q, who has none to send there: %v", name, len(l), u, l[0])
			}
		}
		for u, l := range want[st] {
			for i := range max(len(l), len(got[u])) {
				if i >= len(l) || i >= len(got[u]) || !reflect.DeepEqual(got[u][i], l[i]) {
					t.Fatalf("%s: user %s record %d:\n got %v\nwant %v", name, u, i, at(got[u], i), at(l, i))
				}
			}
		}
		t.Logf("%s: %d records, e.g. %v", name, n, at(got["1"], 0))
	}
}

func at(l []map[string]any, i int) any {
	if i < len(l) {
		return l[i]
	}
	return "(none)"
}
