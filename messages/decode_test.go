package messages

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The seeds' exact examples.
const (
	seedPOC = `{"timestamp": "2021-07-12 12:01:58.732726", "user_id": "35", "pixel_id": "wjgao4w1oi", "click_id": "a5cf179b9c9d483abf6d424d44a293be", "insertion_timestamp": "2021-07-12 12:01:58.732754", "event_name": "Search", "user_ip": "", "additional_data": {"time_on_data": 79, "percent_viewed": 39.7, "product_id": 557246, "price": 417.97}}`
	seedLab = `{"user_id": "user1", "event_timestamp": "1626091318000", "event_name": "checkout", "event_type": "click", "device_type": "desktop"}`
	// seedEnriched is the POC seed's enriched example.
	seedEnriched = `{
  "timestamp": "2021-07-12 20:24:49.536462",
  "user_id": "20",
  "pixel_id": "fytil06mrm",
  "click_id": "57ae98d7ffd94dc6a47fd756ab9c1cde",
  "insertion_timestamp": "2021-07-12 20:24:49.536488",
  "event_name": "AddToCart",
  "user_ip": "",
  "additional_data": {
    "price": 694.83,
    "product_id": 361482,
    "time_on_data": 83,
    "percent_viewed": 87
  },
  "name": "Semyon Ryan",
  "country": "US",
  "region": "California",
  "city": "Riverside"
}`
)

func ms(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMilli()
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want func(t *testing.T) Event
	}{
		{"poc seed", seedPOC, func(t *testing.T) Event {
			return Event{
				Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58.732Z"),
				UserID: "35", EventName: "Search", DeviceType: "unknown",
				Timestamp: "2021-07-12 12:01:58.732726", InsertionTimestamp: "2021-07-12 12:01:58.732754",
				PixelID: "wjgao4w1oi", ClickID: "a5cf179b9c9d483abf6d424d44a293be",
				AdditionalData: &AdditionalData{TimeOnData: 79, PercentViewed: 39.7, ProductID: 557246, Price: 417.97,
					Set: HasTimeOnData | HasPercentViewed | HasProductID | HasPrice},
			}
		}},
		{"lab seed", seedLab, func(t *testing.T) Event {
			return Event{
				Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "user1", EventName: "checkout",
				EventType: "click", DeviceType: "desktop", EventTimestamp: "1626091318000", EventTimestampQuoted: true,
			}
		}},
		{"enriched seed", seedEnriched, func(t *testing.T) Event {
			return Event{
				Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T20:24:49.536Z"),
				UserID: "20", EventName: "AddToCart", DeviceType: "unknown",
				Timestamp: "2021-07-12 20:24:49.536462", InsertionTimestamp: "2021-07-12 20:24:49.536488",
				PixelID: "fytil06mrm", ClickID: "57ae98d7ffd94dc6a47fd756ab9c1cde",
				AdditionalData: &AdditionalData{TimeOnData: 83, PercentViewed: 87, ProductID: 361482, Price: 694.83,
					Set: HasTimeOnData | HasPercentViewed | HasProductID | HasPrice},
				Name: "Semyon Ryan", Country: "US", Region: "California", City: "Riverside",
			}
		}},
		{"lab numeric timestamp", `{"user_id":"u","event_timestamp":1626091318123,"event_name":"search"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318123, UserID: "u", EventName: "search",
				DeviceType: "unknown", EventTimestamp: "1626091318123"}
		}},
		{"lab fractional timestamp is floored", `{"user_id":"u","event_timestamp":1626091318123.9,"event_name":"search"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318123, UserID: "u", EventName: "search",
				DeviceType: "unknown", EventTimestamp: "1626091318123.9"}
		}},
		{"lab exponent timestamp", `{"user_id":"u","event_timestamp":"1.626091318e12","event_name":"search"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "u", EventName: "search",
				DeviceType: "unknown", EventTimestamp: "1.626091318e12", EventTimestampQuoted: true}
		}},
		{"integer user_id canonicalised", `{"user_id":35,"timestamp":"2021-07-12 12:01:58","event_name":"Purchase"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "35",
				EventName: "Purchase", DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"negative zero user_id", `{"user_id":-0,"timestamp":"2021-07-12 12:01:58","event_name":"Purchase"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "0",
				EventName: "Purchase", DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"rfc3339 with offset", `{"user_id":"u","timestamp":"2021-07-12T14:01:58.7+02:00","event_name":"Search","user_ip":"10.1.2.3"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58.7Z"), UserID: "u",
				EventName: "Search", DeviceType: "unknown", Timestamp: "2021-07-12T14:01:58.7+02:00", UserIP: "10.1.2.3"}
		}},
		{"both timestamps: lab wins", `{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_timestamp":1626091318000,"event_name":"x"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "u", EventName: "x",
				DeviceType: "unknown", EventTimestamp: "1626091318000", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"null event_timestamp counts as absent", `{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_timestamp":null,"event_name":"x","device_type":null}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "u", EventName: "x",
				DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"unknown event name, unknown fields, escapes, ipv6", `  {"user_id":"u\u00e9\n\ud83d\ude00","extra":[1,{"a":null}],"event_timestamp":"1626091318000",
			"event_name":"Refund","device_type":"","user_ip":"2001:db8::1","click_id":"c"} `, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: "ué\n😀", EventName: "Refund",
				DeviceType: "unknown", EventTimestamp: "1626091318000", EventTimestampQuoted: true,
				UserIP: "2001:db8::1", ClickID: "c"}
		}},
		{"duplicate key: last wins", `{"user_id":5.5,"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"x"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "u", EventName: "x",
				DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"escaped key matches", `{"user\u005fid":"u","timestamp":"2021-07-12 12:01:58","event_name":"x"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "u", EventName: "x",
				DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58"}
		}},
		{"partial additional_data, product_id as string, extra members", `{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"ViewContent","additional_data":{"product_id":"0557246","percent_viewed":100,"color":"red"}}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: ms(t, "2021-07-12T12:01:58Z"), UserID: "u", EventName: "ViewContent",
				DeviceType: "unknown", Timestamp: "2021-07-12 12:01:58",
				AdditionalData: &AdditionalData{ProductID: 557246, PercentViewed: 100, Set: HasProductID | HasPercentViewed}}
		}},
		{"range edges", `{"user_id":"u","timestamp":"2000-01-01 00:00:00.000","insertion_timestamp":"2100-12-31T23:59:59.999999999Z","event_name":"x"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaPOC, EventTimeMs: 946684800000, UserID: "u", EventName: "x",
				DeviceType: "unknown", Timestamp: "2000-01-01 00:00:00.000", InsertionTimestamp: "2100-12-31T23:59:59.999999999Z"}
		}},
		{"max lengths", `{"user_id":"` + strings.Repeat("u", 256) + `","event_timestamp":1626091318000,"event_name":"` + strings.Repeat("e", 64) + `"}`, func(t *testing.T) Event {
			return Event{Schema: SchemaLab, EventTimeMs: 1626091318000, UserID: strings.Repeat("u", 256),
				EventName: strings.Repeat("e", 64), DeviceType: "unknown", EventTimestamp: "1626091318000"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := tc.want(t); !reflect.DeepEqual(*got, want) {
				t.Errorf("Decode:\n got %+v\nwant %+v", *got, want)
				if got.AdditionalData != nil && want.AdditionalData != nil {
					t.Errorf("additional_data: got %+v want %+v", *got.AdditionalData, *want.AdditionalData)
				}
			}
			var into Event
			if err := DecodeInto([]byte(tc.in), &into); err != nil || !reflect.DeepEqual(into, *got) {
				t.Errorf("DecodeInto = %+v, %v; want %+v", into, err, *got)
			}
			var viaJSON Event
			if err := json.Unmarshal([]byte(tc.in), &viaJSON); err != nil || !reflect.DeepEqual(viaJSON, *got) {
				t.Errorf("json.Unmarshal = %+v, %v; want %+v", viaJSON, err, *got)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	const ts = `"timestamp":"2021-07-12 12:01:58"`
	for _, tc := range []struct {
		name string
		in   string
		want []string // every FieldError.Error(), in order
	}{
		{"empty input", ``, []string{"record is not valid JSON: unexpected end of input looking for a value at offset 0"}},
		{"not an object", `[1,2]`, []string{"record is not a JSON object (it is an array)"}},
		{"string record", `"x"`, []string{"record is not a JSON object (it is a string)"}},
		{"truncated", `{"user_id":"u"`, []string{"record is not valid JSON: unexpected end of input after object member at offset 14"}},
		{"trailing garbage", `{} x`, []string{`record is not valid JSON: unexpected 'x' after top-level value at offset 3`}},
		{"two objects", `{}{}`, []string{`record is not valid JSON: unexpected '{' after top-level value at offset 2`}},
		{"trailing comma", `{"a":1,}`, []string{`record is not valid JSON: unexpected '}' looking for an object key at offset 7`}},
		{"bad escape", `{"a":"\x"}`, []string{`record is not valid JSON: unexpected 'x' in string escape at offset 7`}},
		{"control char in string", "{\"a\":\"\t\"}", []string{`record is not valid JSON: unexpected '\t' in string literal at offset 6`}},
		{"leading zero", `{"a":01}`, []string{`record is not valid JSON: unexpected '1' after object member at offset 6`}},
		{"invalid utf-8", "{\"user_id\":\"\xff\"}", []string{"record is not valid UTF-8"}},
		{"too large", `{"a":"` + strings.Repeat("x", MaxRecordBytes) + `"}`, []string{"record is too large (1048584 bytes, max 1048576)"}},
		{"empty object", `{}`, []string{
			"timestamp: missing (an event needs timestamp or event_timestamp)", "user_id: missing", "event_name: missing"}},
		{"missing event_name", `{"user_id":"u",` + ts + `}`, []string{"event_name: missing"}},
		{"empty user_id and event_name", `{"user_id":"",` + ts + `,"event_name":""}`, []string{"user_id: empty", "event_name: empty"}},
		{"user_id too long", `{"user_id":"` + strings.Repeat("u", 300) + `",` + ts + `,"event_name":"x"}`,
			[]string{"user_id: too long (300 bytes, max 256)"}},
		{"event_name too long", `{"user_id":"u",` + ts + `,"event_name":"` + strings.Repeat("e", 65) + `"}`,
			[]string{"event_name: too long (65 bytes, max 64)"}},
		{"wrong types", `{"user_id":true,` + ts + `,"event_name":7,"device_type":1,"event_type":[],"pixel_id":{},"click_id":false,"user_ip":3,"name":1}`, []string{
			"user_id: not a string", "event_name: not a string", "event_type: not a string", "device_type: not a string",
			"pixel_id: not a string", "click_id: not a string", "user_ip: not a string", "name: not a string"}},
		{"fractional user_id", `{"user_id":3.5,` + ts + `,"event_name":"x"}`, []string{"user_id: not a string or an integer: 3.5"}},
		{"timestamp not a time", `{"user_id":"u","timestamp":"yesterday","event_name":"x"}`,
			[]string{`timestamp: not a time: "yesterday" (want "2006-01-02 15:04:05.000000" or RFC 3339)`}},
		{"timestamp not a string", `{"user_id":"u","timestamp":1626091318,"event_name":"x"}`, []string{"timestamp: not a string"}},
		{"timestamp out of range", `{"user_id":"u","timestamp":"1970-01-01 00:00:00","event_name":"x"}`,
			[]string{`timestamp: out of range: "1970-01-01 00:00:00" (want years 2000-2100)`}},
		{"offset moves timestamp out of range", `{"user_id":"u","timestamp":"2000-01-01T00:30:00+01:00","event_name":"x"}`,
			[]string{`timestamp: out of range: "2000-01-01T00:30:00+01:00" (want years 2000-2100)`}},
		{"impossible date", `{"user_id":"u","timestamp":"2021-02-29 00:00:00","event_name":"x"}`,
			[]string{`timestamp: not a time: "2021-02-29 00:00:00" (want "2006-01-02 15:04:05.000000" or RFC 3339)`}},
		{"bad insertion_timestamp", `{"user_id":"u",` + ts + `,"insertion_timestamp":"2021-07-12 25:00:00","event_name":"x"}`,
			[]string{`insertion_timestamp: not a time: "2021-07-12 25:00:00" (want "2006-01-02 15:04:05.000000" or RFC 3339)`}},
		{"lab timestamp in seconds", `{"user_id":"u","event_timestamp":"1626091318","event_name":"x"}`,
			[]string{`event_timestamp: out of range: "1626091318" (want Unix milliseconds in years 2000-2100; seconds instead of milliseconds?)`}},
		{"lab timestamp not digits", `{"user_id":"u","event_timestamp":"$EVENT_TIMESTAMP","event_name":"x"}`,
			[]string{`event_timestamp: not Unix milliseconds: "$EVENT_TIMESTAMP"`}},
		{"lab timestamp overflow", `{"user_id":"u","event_timestamp":99999999999999999999,"event_name":"x"}`,
			[]string{`event_timestamp: out of range: "99999999999999999999" (want Unix milliseconds in years 2000-2100)`}},
		{"lab timestamp wrong type", `{"user_id":"u","event_timestamp":true,"event_name":"x"}`,
			[]string{"event_timestamp: not a number (Unix milliseconds)"}},
		{"bad ip", `{"user_id":"u",` + ts + `,"event_name":"x","user_ip":"999.1.1.1"}`, []string{`user_ip: not an IP address: "999.1.1.1"`}},
		{"ip with zone", `{"user_id":"u",` + ts + `,"event_name":"x","user_ip":"fe80::1%eth0"}`, []string{`user_ip: not an IP address: "fe80::1%eth0"`}},
		{"device_type too long", `{"user_id":"u",` + ts + `,"event_name":"x","device_type":"` + strings.Repeat("d", 65) + `"}`,
			[]string{"device_type: too long (65 bytes, max 64)"}},
		{"additional_data not an object", `{"user_id":"u",` + ts + `,"event_name":"x","additional_data":"{}"}`, []string{"additional_data: not an object"}},
		{"additional_data wrong members", `{"user_id":"u",` + ts + `,"event_name":"x","additional_data":{"time_on_data":"79","percent_viewed":"39.7","product_id":1.5,"price":-1}}`, []string{
			"additional_data.time_on_data: not a number", "additional_data.percent_viewed: not a number",
			"additional_data.price: negative: -1", `additional_data.product_id: not an integer: "1.5"`}},
		{"additional_data ranges", `{"user_id":"u",` + ts + `,"event_name":"x","additional_data":{"percent_viewed":100.5,"product_id":"99999999999999999999","time_on_data":1e999,"price":true}}`, []string{
			"additional_data.time_on_data: out of range: 1e999", "additional_data.percent_viewed: out of range: 100.5 (want 0..100)",
			"additional_data.price: not a number", `additional_data.product_id: out of range: "99999999999999999999"`}},
		{"product_id wrong type", `{"user_id":"u",` + ts + `,"event_name":"x","additional_data":{"product_id":[]}}`,
			[]string{"additional_data.product_id: not an integer"}},
		{"long value is cut in message", `{"user_id":"u","timestamp":"` + strings.Repeat("y", 100) + `","event_name":"x"}`,
			[]string{`timestamp: not a time: "` + strings.Repeat("y", 64) + `"... (want "2006-01-02 15:04:05.000000" or RFC 3339)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode = %+v, want error", ev)
			}
			if ev != nil {
				t.Errorf("Decode returned a non-nil event with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("errors.As(%v, *ValidationError) = false", err)
			}
			var got []string
			for _, f := range ve.Errors {
				got = append(got, f.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("field errors:\n got %q\nwant %q", got, tc.want)
			}
			if want := "invalid event: " + strings.Join(tc.want, "; "); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestValidationErrorField(t *testing.T) {
	_, err := Decode([]byte(`{"timestamp":"yesterday","user_id":"u"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	if f, ok := ve.Field("event_name"); !ok || f.Reason != "missing" {
		t.Errorf(`Field("event_name") = %+v, %v`, f, ok)
	}
	if _, ok := ve.Field("user_id"); ok {
		t.Errorf(`Field("user_id") found, want none`)
	}
}

// TestDecodeIntoDoesNotAlias checks that DecodeInto leaves earlier events
// intact when reusing the Event.
func TestDecodeIntoDoesNotAlias(t *testing.T) {
	var e Event
	if err := DecodeInto([]byte(seedPOC), &e); err != nil {
		t.Fatal(err)
	}
	kept := e
	keptAD := *e.AdditionalData
	other := `{"timestamp":"2022-01-01 00:00:00","user_id":"99","event_name":"Purchase","additional_data":{"price":1}}`
	if err := DecodeInto([]byte(other), &e); err != nil {
		t.Fatal(err)
	}
	if kept.UserID != "35" || *kept.AdditionalData != keptAD {
		t.Errorf("earlier event changed: %+v %+v", kept, *kept.AdditionalData)
	}
	if e.AdditionalData == kept.AdditionalData {
		t.Errorf("AdditionalData reused")
	}
}

func TestMaxDepth(t *testing.T) {
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		in := `{"x":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		_, err := Decode([]byte(in))
		if json.Valid([]byte(in)) != !isSyntaxErr(err) {
			t.Errorf("depth %d: json.Valid = %v, Decode error %v", depth, json.Valid([]byte(in)), err)
		}
	}
}

func isSyntaxErr(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve) && len(ve.Errors) == 1 && ve.Errors[0].Field == "" &&
		strings.HasPrefix(ve.Errors[0].Reason, "record is not valid JSON")
}

func TestParseTimeMs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // RFC 3339 of the expected instant, "" for a parse failure
	}{
		{"2021-07-12 12:01:58.732726", "2021-07-12T12:01:58.732Z"},
		{"2021-07-12 12:01:58", "2021-07-12T12:01:58Z"},
		{"2021-07-12 12:01:58.7", "2021-07-12T12:01:58.7Z"},
		{"2021-07-12T12:01:58Z", "2021-07-12T12:01:58Z"},
		{"2021-07-12t12:01:58.123456789z", "2021-07-12T12:01:58.123Z"},
		{"2021-07-12T12:01:58-07:30", "2021-07-12T19:31:58Z"},
		{"2024-02-29 00:00:00", "2024-02-29T00:00:00Z"},
		{"2000-02-29 00:00:00", "2000-02-29T00:00:00Z"},
		{"1999-12-31 23:59:59.999", "1999-12-31T23:59:59.999Z"},
		{"2100-02-29 00:00:00", ""},
		{"2021-07-12 12:01:58.", ""},
		{"2021-07-12 12:01:58.1234567890", ""},
		{"2021-07-12 12:01:60", ""},
		{"2021-13-12 12:01:58", ""},
		{"2021-00-12 12:01:58", ""},
		{"2021-07-00 12:01:58", ""},
		{"2021-07-12_12:01:58", ""},
		{"2021-07-12 12:01:58+0200", ""},
		{"2021-07-12 12:01:58+24:00", ""},
		{"2021-07-12 12:01:58Z ", ""},
		{"2021-7-12 12:01:58", ""},
		{"+021-07-12 12:01:58", ""},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parseTimeMs(tc.in)
			if tc.want == "" {
				if ok {
					t.Fatalf("parseTimeMs = %d, want failure", got)
				}
				return
			}
			if !ok || got != ms(t, tc.want) {
				t.Fatalf("parseTimeMs = %d, %v; want %d", got, ok, ms(t, tc.want))
			}
		})
	}
}

func TestTimeInRange(t *testing.T) {
	lo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2101, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		ms   int64
		want bool
	}{{lo - 1, false}, {lo, true}, {hi - 1, true}, {hi, false}} {
		if got := TimeInRange(tc.ms); got != tc.want {
			t.Errorf("TimeInRange(%d) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestKnownEventName(t *testing.T) {
	for name, want := range map[string]bool{
		"Search": true, "AddToCart": true, "ViewContent": true, "Purchase": true,
		"checkout": true, "search": true, "category": true, "detail": true, "navigate": true,
		"search ": false, "Refund": false, "": false,
	} {
		if got := KnownEventName(name); got != want {
			t.Errorf("KnownEventName(%q) = %v, want %v", name, got, want)
		}
	}
}
