package messages

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode checks that Decode never panics, that it accepts exactly the
// JSON syntax encoding/json accepts, that its strings agree with
// encoding/json's, and that every event it accepts re-encodes and decodes to
// the same event.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		seedPOC, seedLab, seedEnriched,
		`{"user_id":35,"event_timestamp":1626091318000,"event_name":"x"}`,
		`{"user_id":"u","timestamp":"2021-07-12T12:01:58.123+02:00","event_name":"Search","user_ip":"::1","device_type":"mobile"}`,
		`{"user_id":"u\u00e9\ud83d\ude00\ud800","event_timestamp":"1.626091318e12","event_name":"\n"}`,
		`{"user\u005fid":"u","timestamp":"2021-07-12 12:01:58","event_name":"x","additional_data":{"product_id":"12","price":0}}`,
		`{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"x","additional_data":{"percent_viewed":101}}`,
		`{"user_id":"u","event_timestamp":1626091318,"event_name":"x"}`,
		`{"user_id":"","timestamp":"yesterday","event_name":7,"user_ip":"999.1.1.1"}`,
		`{"a":[1,2,{"b":null}],"user_id":null}`,
		`{}`, `[]`, `"x"`, `null`, ``, `{`, `{"a":}`, `{"a":01}`, `{"a":1,}`, `{"a":"\x"}`, "{\"a\":\"\xff\"}",
		`{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`, ` {} `, `{}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		syntaxOK := json.Valid(data)
		if err != nil {
			if e != nil {
				t.Fatalf("non-nil event with error %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || len(ve.Errors) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *ValidationError matching ErrInvalid", err, err)
			}
			if isSyntaxErr(err) && syntaxOK && utf8.Valid(data) {
				t.Fatalf("Decode reports a syntax error json.Valid does not: %v", err)
			}
			if !isSyntaxErr(err) && !syntaxOK && utf8.Valid(data) && len(data) <= MaxRecordBytes {
				t.Fatalf("json.Valid rejects what Decode parsed: %v", err)
			}
			return
		}
		if !syntaxOK {
			t.Fatalf("Decode accepted invalid JSON")
		}
		if e.Schema == SchemaUnknown || e.UserID == "" || e.EventName == "" || e.DeviceType == "" || !TimeInRange(e.EventTimeMs) {
			t.Fatalf("decoded event breaks an invariant: %+v", *e)
		}
		var into Event
		if err := DecodeInto(data, &into); err != nil || !reflect.DeepEqual(&into, e) {
			t.Fatalf("DecodeInto = %+v, %v; Decode = %+v", into, err, *e)
		}

		// Strings agree with encoding/json's unescaping.
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("encoding/json cannot decode an accepted record: %v", err)
		}
		for name, got := range map[string]string{
			"pixel_id": e.PixelID, "click_id": e.ClickID, "event_name": e.EventName, "event_type": e.EventType,
			"name": e.Name, "country": e.Country, "region": e.Region, "city": e.City, "timestamp": e.Timestamp,
			"user_ip": e.UserIP, "insertion_timestamp": e.InsertionTimestamp,
		} {
			v, ok := raw[name]
			if !ok || string(v) == "null" {
				continue
			}
			var want string
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatalf("%s: encoding/json: %v", name, err)
			}
			if got != want {
				t.Fatalf("%s = %q, encoding/json says %q", name, got, want)
			}
		}

		out, err := e.AppendJSON(nil)
		if err != nil {
			t.Fatalf("AppendJSON: %v", err)
		}
		e2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip changed the event:\n  in %+v\n out %+v\njson %s", *e, *e2, out)
		}
	})
}

// FuzzParseTimeMs checks the hand-written time parser against package time.
func FuzzParseTimeMs(f *testing.F) {
	for _, s := range []string{
		"2021-07-12 12:01:58.732726", "2021-07-12T12:01:58Z", "2021-07-12T12:01:58.1-07:30",
		"2024-02-29 23:59:59", "0000-03-01 00:00:00", "9999-12-31t23:59:59.999999999z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimeMs(s)
		if !ok {
			return
		}
		norm := []byte(s)
		norm[10] = 'T'
		if c := norm[len(norm)-1]; c == 'z' {
			norm[len(norm)-1] = 'Z'
		}
		n := string(norm)
		if !strings.HasSuffix(n, "Z") && !strings.ContainsAny(n[19:], "+-") {
			n += "Z"
		}
		tm, err := time.Parse(time.RFC3339Nano, n)
		if err != nil {
			t.Fatalf("parseTimeMs(%q) = %d but time.Parse(%q): %v", s, got, n, err)
		}
		if tm.UnixMilli() != got {
			t.Fatalf("parseTimeMs(%q) = %d, time says %d", s, got, tm.UnixMilli())
		}
	})
}

// FuzzDecodeFields builds well-formed records from fuzzed field values (as
// producers would, with encoding/json) so that the fuzzer reaches the field
// rules, and checks that accepted values come back unchanged and round-trip.
func FuzzDecodeFields(f *testing.F) {
	f.Add("35", "2021-07-12 12:01:58.732726", "", "Search", "", "desktop", 39.7, 417.97, int64(557246), true)
	f.Add("user1", "", "1626091318000", "checkout", "10.0.0.1", "", 0.0, 0.0, int64(0), false)
	f.Add("u\x00\u2028", "2100-12-31T23:59:59.999Z", "4133980799999.5", "x", "::ffff:1.2.3.4", "unknown", 100.0, 1e300, int64(-1), true)
	f.Fuzz(func(t *testing.T, userID, ts, evTS, name, ip, device string, pv, price float64, product int64, withAD bool) {
		rec := map[string]any{"user_id": userID, "event_name": name, "user_ip": ip, "device_type": device}
		if ts != "" {
			rec["timestamp"] = ts
		}
		if evTS != "" {
			rec["event_timestamp"] = evTS
		}
		if withAD {
			rec["additional_data"] = map[string]any{"percent_viewed": pv, "price": price, "product_id": product}
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return // NaN or Inf
		}
		e, err := Decode(data)
		if err != nil {
			if isSyntaxErr(err) {
				t.Fatalf("syntax error on encoding/json output %s: %v", data, err)
			}
			return
		}
		if !utf8.ValidString(userID) || !utf8.ValidString(name) || !utf8.ValidString(ip) || !utf8.ValidString(device) {
			return // encoding/json replaced bytes; values legitimately differ
		}
		if e.UserID != userID || e.EventName != name || e.UserIP != ip {
			t.Fatalf("values changed: %+v from %s", *e, data)
		}
		if device != "" && e.DeviceType != device {
			t.Fatalf("device_type %q, want %q", e.DeviceType, device)
		}
		if withAD && (e.AdditionalData.PercentViewed != pv || e.AdditionalData.Price != price || e.AdditionalData.ProductID != product) {
			t.Fatalf("additional_data changed: %+v from %s", *e.AdditionalData, data)
		}
		out, err := e.AppendJSON(nil)
		if err != nil {
			t.Fatalf("AppendJSON: %v", err)
		}
		e2, err := Decode(out)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip: %v\n  in %+v\n out %+v\njson %s", err, *e, e2, out)
		}
	})
}
