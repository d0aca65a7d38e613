package messages

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestAppendJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"poc seed keeps its shape", seedPOC,
			`{"timestamp":"2021-07-12 12:01:58.732726","user_id":"35","pixel_id":"wjgao4w1oi","click_id":"a5cf179b9c9d483abf6d424d44a293be","insertion_timestamp":"2021-07-12 12:01:58.732754","event_name":"Search","user_ip":"","additional_data":{"time_on_data":79,"percent_viewed":39.7,"product_id":557246,"price":417.97}}`},
		{"lab seed keeps its quoted timestamp", seedLab,
			`{"user_id":"user1","event_timestamp":"1626091318000","event_name":"checkout","event_type":"click","device_type":"desktop"}`},
		{"lab numeric timestamp stays a number", `{"event_name":"search","event_timestamp":1.626091318e12,"user_id":7}`,
			`{"user_id":"7","event_timestamp":1.626091318e12,"event_name":"search"}`},
		{"enriched seed", seedEnriched,
			`{"timestamp":"2021-07-12 20:24:49.536462","user_id":"20","pixel_id":"fytil06mrm","click_id":"57ae98d7ffd94dc6a47fd756ab9c1cde","insertion_timestamp":"2021-07-12 20:24:49.536488","event_name":"AddToCart","user_ip":"","additional_data":{"time_on_data":83,"percent_viewed":87,"product_id":361482,"price":694.83},"name":"Semyon Ryan","country":"US","region":"California","city":"Riverside"}`},
		{"poc with missing optional fields", `{"timestamp":"2021-07-12 12:01:58","user_id":"u","event_name":"x","additional_data":{}}`,
			`{"timestamp":"2021-07-12 12:01:58","user_id":"u","pixel_id":"","click_id":"","event_name":"x","user_ip":"","additional_data":{}}`},
		{"lab with foreign fields", `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","device_type":"unknown","click_id":"c","user_ip":"::1","additional_data":{"price":0}}`,
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","click_id":"c","user_ip":"::1","additional_data":{"price":0}}`},
		{"escapes", `{"user_id":"a\"b\\c\u0001\u2028é","event_timestamp":1626091318000,"event_name":"<x>&"}`,
			`{"user_id":"a\"b\\c\u0001` + "\u2028" + `é","event_timestamp":1626091318000,"event_name":"<x>&"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, tc.want)
			}
			// json.Marshal re-compacts and HTML-escapes MarshalJSON's output;
			// it must still decode to the same event.
			viaJSON, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if back, err := Decode(viaJSON); err != nil || !reflect.DeepEqual(back, e) {
				t.Errorf("json.Marshal gave %s, decoding to %+v, %v", viaJSON, back, err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"poc seed", seedPOC},
		{"lab seed", seedLab},
		{"enriched seed", seedEnriched},
		{"lab number", `{"user_id":"u","event_timestamp":1626091318000.25,"event_name":"x","timestamp":"2021-07-12T12:01:58Z"}`},
		{"odd floats", `{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"x","additional_data":{"time_on_data":-1e-300,"percent_viewed":1e-7,"price":1e300,"product_id":-9223372036854775808}}`},
		{"unicode", `{"user_id":"\ud800x\u00e9","timestamp":"2021-07-12 12:01:58","event_name":"\u0000\t"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e1, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := e1.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			e2, err := Decode(out)
			if err != nil {
				t.Fatalf("decode of %s: %v", out, err)
			}
			if !reflect.DeepEqual(e1, e2) {
				t.Errorf("round trip changed the event:\n  in %+v\n out %+v\njson %s", *e1, *e2, out)
			}
		})
	}
}

func TestAppendJSONBuiltEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		e       Event
		want    string
		wantErr string
	}{
		{"poc timestamp from EventTimeMs", Event{Schema: SchemaPOC, EventTimeMs: 1626091318732, UserID: "u", EventName: "Search"},
			`{"timestamp":"2021-07-12 12:01:58.732000","user_id":"u","pixel_id":"","click_id":"","event_name":"Search","user_ip":""}`, ""},
		{"lab timestamp from EventTimeMs", Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "u", EventName: "search", DeviceType: "mobile"},
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"search","device_type":"mobile"}`, ""},
		{"invalid utf-8 replaced", Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "a\xffb", EventName: "e"},
			`{"user_id":"a\ufffdb","event_timestamp":1626091318000,"event_name":"e"}`, ""},
		{"unknown schema", Event{UserID: "u"}, "", `encode event of user "u": messages: unknown schema`},
		{"bad event_timestamp", Event{Schema: SchemaLab, UserID: "u", EventTimestamp: "12x"}, "",
			`messages: encode event of user "u": event_timestamp "12x" is not a JSON number`},
		{"NaN", Event{Schema: SchemaPOC, UserID: "u", AdditionalData: &AdditionalData{Price: math.NaN(), Set: HasPrice}}, "",
			`messages: encode event of user "u": additional_data.price is NaN`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			got, err := tc.e.AppendJSON(dst)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if string(got) != "prefix" {
					t.Errorf("dst changed on error: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := strings.CutPrefix(string(got), "prefix"); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
			if !json.Valid(got[len("prefix"):]) {
				t.Errorf("output is not valid JSON")
			}
		})
	}
}

func TestAdditionalDataHas(t *testing.T) {
	var nilAD *AdditionalData
	if nilAD.Has(HasPrice) {
		t.Error("nil Has = true")
	}
	a := &AdditionalData{Set: HasPrice | HasProductID}
	if !a.Has(HasPrice|HasProductID) || a.Has(HasPrice|HasPercentViewed) {
		t.Errorf("Has wrong for %b", a.Set)
	}
}
