package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

const (
	labEvent = `{"user_id":"user1","event_timestamp":"1626091318000","event_name":"checkout","event_type":"click","device_type":"desktop"}`
	pocEvent = `{"timestamp":"2021-07-12 12:01:58.732726","user_id":"35","pixel_id":"p1","click_id":"c1","event_name":"Search","user_ip":"","additional_data":{"time_on_data":79,"percent_viewed":39.7,"product_id":557246,"price":417.97}}`
)

var testLimits = Limits{MaxEvents: 500, MaxEventBytes: messages.MaxRecordBytes}

func TestFormatOf(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want Format
	}{
		{"application/json", FormatJSON},
		{"application/json; charset=utf-8", FormatJSON},
		{"application/vnd.clicks+json", FormatJSON},
		{"application/x-ndjson", FormatNDJSON},
		{"application/jsonl", FormatNDJSON},
		{"text/plain", 0},
		{"", 0},
		{"application/json; charset=latin1", 0},
		{"multipart/form-data; boundary=x", 0},
		{"garbage;;;", 0},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			got, err := FormatOf(tc.ct)
			if tc.want == 0 {
				var re *RequestError
				if !errors.As(err, &re) || re.Status != http.StatusUnsupportedMediaType {
					t.Fatalf("FormatOf(%q) = %v, %v; want a 415 error", tc.ct, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FormatOf(%q) = %v, %v; want %v", tc.ct, got, err, tc.want)
			}
		})
	}
}

// Valid bodies split into the right events, in either format and schema.
func TestDecodeRequestSplits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		format Format
		users  []string
	}{
		{"one object", labEvent, FormatJSON, []string{"user1"}},
		{"one object with white space", "\n  " + pocEvent + " \r\n", FormatJSON, []string{"35"}},
		{"array", "[" + labEvent + " , " + pocEvent + "]", FormatJSON, []string{"user1", "35"}},
		{"array with strings holding brackets", `[{"user_id":"a]b,{","event_timestamp":1626091318000,"event_name":"x\"]"}]`, FormatJSON, []string{"a]b,{"}},
		{"ndjson", labEvent + "\n\n" + pocEvent + "\r\n", FormatNDJSON, []string{"user1", "35"}},
		{"ndjson without final newline", labEvent, FormatNDJSON, []string{"user1"}},
		{"integer user id", `{"user_id":42,"event_timestamp":1626091318000,"event_name":"x"}`, FormatJSON, []string{"42"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodeRequest([]byte(tc.body), tc.format, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(tc.users) {
				t.Fatalf("%d items, want %d", len(items), len(tc.users))
			}
			for i, it := range items {
				if it.Event == nil {
					t.Fatalf("item %d invalid: %v", i, it.Errors)
				}
				if it.Event.UserID != tc.users[i] {
					t.Errorf("item %d user %q, want %q", i, it.Event.UserID, tc.users[i])
				}
				if !json.Valid(it.Data) || bytes.TrimSpace(it.Data) == nil {
					t.Errorf("item %d data is not one JSON value: %q", i, it.Data)
				}
			}
		})
	}
}

// Malformed bodies get a clear error naming what is wrong; nothing panics or hangs.
func TestDecodeRequestMalformed(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	deepInEvent := `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","extra":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}"
	huge := `{"user_id":"` + strings.Repeat("x", 300) + `","event_timestamp":1626091318000,"event_name":"x"}`
	now := time.UnixMilli(1626091318000)
	for _, tc := range []struct {
		name    string
		body    string
		format  Format
		lim     *Limits
		status  int    // request-level error status; 0 when the error is per event
		field   string // expected field of the first error
		reason  string // substring of the first error's reason (or message)
		atIndex int
	}{
		{name: "empty", body: "", format: FormatJSON, status: 400, reason: "empty body"},
		{name: "empty array", body: "[]", format: FormatJSON, status: 400, reason: "no events"},
		{name: "blank ndjson", body: "\n \n", format: FormatNDJSON, status: 400, reason: "no events"},
		{name: "truncated object", body: `{"user_id":"u","event_na`, format: FormatJSON, status: 400, reason: "unexpected end of input"},
		{name: "truncated array", body: "[" + labEvent + ",", format: FormatJSON, status: 400, reason: "unexpected end of input", atIndex: 1},
		{name: "unclosed array", body: "[" + labEvent, format: FormatJSON, status: 400, reason: "not closed"},
		{name: "trailing data", body: labEvent + " x", format: FormatJSON, status: 400, reason: "unexpected data after"},
		{name: "two objects without array", body: labEvent + labEvent, format: FormatJSON, status: 400, reason: "unexpected data after"},
		{name: "not an object", body: `"hello"`, format: FormatJSON, status: 400, reason: "not a JSON object or array"},
		{name: "array of numbers", body: `[1,2]`, format: FormatJSON, field: "", reason: "must be a JSON object"},
		{name: "deep nesting", body: deep, format: FormatJSON, status: 400, reason: "nested deeper than 32"},
		{name: "deep nesting in ndjson", body: deep, format: FormatNDJSON, reason: "nested deeper than 32"},
		{name: "deep inside an event", body: deepInEvent, format: FormatJSON, status: 400, reason: "nested deeper"},
		{name: "huge user id", body: huge, format: FormatJSON, field: "user_id", reason: "too long"},
		{name: "wrong type", body: `{"user_id":"u","event_timestamp":1626091318000,"event_name":7}`, format: FormatJSON, field: "event_name", reason: "not a string"},
		{name: "missing field", body: `{"user_id":"u","event_timestamp":1626091318000}`, format: FormatJSON, field: "event_name", reason: "missing"},
		{name: "invalid UTF-8", body: "{\"user_id\":\"\xff\xfe\",\"event_timestamp\":1626091318000,\"event_name\":\"x\"}", format: FormatJSON, reason: "UTF-8"},
		{name: "duplicate key", body: `{"user_id":"a","user_id":"b","event_timestamp":1626091318000,"event_name":"x"}`, format: FormatJSON, field: "user_id", reason: "duplicate key"},
		{name: "duplicate key by escape", body: `{"user_id":"a","user\u005fid":"b","event_timestamp":1626091318000,"event_name":"x"}`, format: FormatJSON, field: "user_id", reason: "duplicate key"},
		{name: "duplicate nested key", body: `{"user_id":"a","timestamp":"2021-07-12 12:01:58","event_name":"x","additional_data":{"price":1,"price":2}}`, format: FormatJSON, field: "additional_data.price", reason: "duplicate key"},
		{name: "bad escape", body: `{"user_id":"a\q"}`, format: FormatJSON, status: 400, reason: "in string escape"},
		{name: "control character", body: "{\"user_id\":\"a\x01\"}", format: FormatJSON, status: 400, reason: "in string literal"},
		{name: "bad number", body: `{"user_id":"a","event_timestamp":01,"event_name":"x"}`, format: FormatNDJSON, reason: "invalid JSON"},
		{name: "second line bad", body: labEvent + "\n{\"user_id\":", format: FormatNDJSON, reason: "unexpected end of input", atIndex: 1},
		{name: "too many events", body: strings.Repeat(labEvent+"\n", 3), format: FormatNDJSON, lim: &Limits{MaxEvents: 2, MaxEventBytes: 1 << 20}, status: 413, reason: "too many events"},
		{name: "event too large", body: "[" + labEvent + "," + pocEvent + "]", format: FormatJSON, lim: &Limits{MaxEvents: 10, MaxEventBytes: 150}, status: 413, reason: "bytes, max 150", atIndex: 1},
		{name: "timestamp in the future", body: `{"user_id":"u","event_timestamp":1626095000000,"event_name":"x"}`, format: FormatJSON,
			lim: &Limits{MaxEvents: 10, MaxEventBytes: 1 << 20, MaxClockSkew: time.Minute, Now: now}, field: "event_timestamp", reason: "ahead of the server's clock"},
		{name: "timestamp too old", body: `{"user_id":"u","timestamp":"2021-07-01 00:00:00","event_name":"x"}`, format: FormatJSON,
			lim: &Limits{MaxEvents: 10, MaxEventBytes: 1 << 20, MaxEventAge: time.Hour, Now: now}, field: "timestamp", reason: "older than 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := testLimits
			if tc.lim != nil {
				lim = *tc.lim
			}
			items, err := DecodeRequest([]byte(tc.body), tc.format, lim)
			var fe FieldError
			if tc.status != 0 {
				var re *RequestError
				if !errors.As(err, &re) || re.Status != tc.status {
					t.Fatalf("err = %v; want a %d request error", err, tc.status)
				}
				if len(re.Errors) == 0 {
					if !strings.Contains(re.Message, tc.reason) {
						t.Fatalf("message %q does not contain %q", re.Message, tc.reason)
					}
					return
				}
				fe = re.Errors[0]
			} else {
				if err != nil {
					t.Fatalf("request error %v; want a per-event error", err)
				}
				var bad *Item
				for i := range items {
					if items[i].Event == nil {
						bad = &items[i]
						break
					}
				}
				if bad == nil {
					t.Fatalf("every event valid; want an error %q", tc.reason)
				}
				fe = bad.Errors[0]
			}
			if fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) || (tc.atIndex != 0 && fe.Index != tc.atIndex) {
				t.Fatalf("first error %+v; want index %d, field %q, reason containing %q", fe, tc.atIndex, tc.field, tc.reason)
			}
		})
	}
}

// FuzzDecodeRequest checks that the request decoder never panics, that every event it calls valid is
// one JSON object the messages decoder accepts, and that a JSON body it accepts whole is valid JSON.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{labEvent, pocEvent, "[" + labEvent + "," + pocEvent + "]", labEvent + "\n" + pocEvent,
		`[{"user_id":"a","user_id":"b"}]`, `[{`, "[1,{}]", `{"a":[[[[{}]]]]}`, "{\"user_id\":\"\xff\"}", `[{"user_id":"\u00e9"}]`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		format := FormatJSON
		if ndjson {
			format = FormatNDJSON
		}
		lim := Limits{MaxEvents: 50, MaxEventBytes: 4096}
		items, err := DecodeRequest(body, format, lim)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || (re.Status != 400 && re.Status != 413) {
				t.Fatalf("error %v is not a 400 or 413 RequestError", err)
			}
			return
		}
		if len(items) == 0 || len(items) > lim.MaxEvents {
			t.Fatalf("%d items", len(items))
		}
		allValid := true
		for i, it := range items {
			if it.Event == nil {
				allValid = false
				if len(it.Errors) == 0 {
					t.Fatalf("item %d invalid without errors", i)
				}
				continue
			}
			if !json.Valid(it.Data) || it.Data[0] != '{' {
				t.Fatalf("valid item %d is not a JSON object: %q", i, it.Data)
			}
			if _, err := messages.Decode(it.Data); err != nil {
				t.Fatalf("valid item %d does not decode: %v", i, err)
			}
		}
		if allValid && format == FormatJSON && !json.Valid(body) {
			t.Fatalf("accepted a JSON body that is not valid JSON: %q", body)
		}
	})
}
