package messages_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

func TestDecodeStrict(t *testing.T) {
	now := time.UnixMilli(1_626_091_318_000)
	s := messages.Strict{MaxDepth: 3, NoDuplicateKeys: true, Now: now, MaxClockSkew: time.Minute, MaxEventAge: time.Hour}
	lab := func(ts string) string {
		return `{"user_id":"u1","event_timestamp":` + ts + `,"event_name":"search"}`
	}
	for _, tc := range []struct {
		name, data   string
		field, wants string // the first field error's field and a part of its reason; "" for a valid event
		syntax       bool
	}{
		{"valid", lab("1626091318000"), "", "", false},
		{"duplicate key", `{"user_id":"u1","user_id":"u2","event_timestamp":1626091318000,"event_name":"x"}`, "user_id", "duplicate key", false},
		{"duplicate key by escape", `{"user_id":"u1","user\u005fid":"u2","event_timestamp":1626091318000,"event_name":"x"}`, "user_id", "duplicate key", false},
		{"nested duplicate", `{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"x","additional_data":{"price":1,"price":2}}`, "additional_data.price", "duplicate key", false},
		{"duplicate in an unknown object", `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","extra":[{"a":1,"a":2}]}`, "extra.a", "duplicate key", false},
		{"too deep", `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","a":{"b":{"c":{}}}}`, "", "nested deeper than 3 levels", true},
		{"as deep as allowed", `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","a":{"b":{}}}`, "", "", false},
		{"ahead of the clock", lab("1626091618000"), "event_timestamp", "ahead of the server's clock", false},
		{"too old", lab("1626001318000"), "event_timestamp", "older than 1h0m0s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := messages.DecodeStrict([]byte(tc.data), s)
			if tc.wants == "" {
				if err != nil {
					t.Fatalf("err = %v, want a valid event", err)
				}
				return
			}
			var ve *messages.ValidationError
			if !errors.As(err, &ve) || ve.Errors[0].Field != tc.field || !strings.Contains(ve.Errors[0].Reason, tc.wants) {
				t.Fatalf("err = %v, want %q about %q", err, tc.wants, tc.field)
			}
			if tc.syntax != strings.Contains(ve.Errors[0].Reason, "not valid JSON") {
				t.Fatalf("err = %v, syntax error %v", err, tc.syntax)
			}
		})
	}
	// Many keys: linear, and each repeat reported once.
	var b strings.Builder
	b.WriteString(`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x"`)
	for i := range 2000 {
		b.WriteString(`,"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `":1`)
	}
	b.WriteString("}")
	_, err := messages.DecodeStrict([]byte(b.String()), s)
	var ve *messages.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 100 {
		t.Fatalf("a 2000-key object with repeats: %d errors, want the first 100", len(ve.Errors))
	}
}

// DecodeNext delimits each value of a buffer, says where its click_id value is, and agrees with Decode on
// every value it delimits.
func TestDecodeNext(t *testing.T) {
	data := []byte(` {"user_id":"u1","event_timestamp":1,"event_name":"x","click_id":null} ,` +
		`{"user_id":"u2","click_id":"c-2","timestamp":"2021-07-12 12:01:58","event_name":"Search"} "str" {"user_id":`)
	d, end, err := messages.DecodeNext(data, 0, messages.Strict{})
	if err == nil || d.Event != nil || string(d.Raw) != `{"user_id":"u1","event_timestamp":1,"event_name":"x","click_id":null}` ||
		string(d.Raw[d.ClickIDStart:d.ClickIDEnd]) != "null" {
		t.Fatalf("first: %+v %d %v (event_timestamp 1 is out of range, so invalid)", d, end, err)
	}
	d, end, err = messages.DecodeNext(data, end+2, messages.Strict{})
	if err != nil || d.Event.UserID != "u2" || string(d.Raw[d.ClickIDStart:d.ClickIDEnd]) != `"c-2"` {
		t.Fatalf("second: %+v %v", d, err)
	}
	d, end, err = messages.DecodeNext(data, end, messages.Strict{})
	if err == nil || d.Event != nil || string(d.Raw) != `"str"` || d.ClickIDStart != -1 {
		t.Fatalf("third: %+v %v", d, err)
	}
	_, _, err = messages.DecodeNext(data, end, messages.Strict{})
	var se *messages.SyntaxError
	if !errors.As(err, &se) || se.Offset != len(data) {
		t.Fatalf("fourth: %v, want a *SyntaxError at the end of the input", err)
	}
}

func FuzzDecodeNext(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","event_timestamp":1626091318000,"event_name":"x"}`), 0)
	f.Add([]byte(`[{"user_id":"u","timestamp":"2021-07-12 12:01:58","event_name":"x","click_id":"a","additional_data":{"price":1}}]`), 1)
	f.Add([]byte(`{"a":{"a":1,"a":[{"b":1,"b\u0031":2}]}}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, start int) {
		if start < 0 || start > len(data) {
			return
		}
		d, end, err := messages.DecodeNext(data, start, messages.Strict{MaxDepth: 32, NoDuplicateKeys: true})
		var se *messages.SyntaxError
		if errors.As(err, &se) {
			return
		}
		if end > len(data) || len(d.Raw) == 0 || &d.Raw[len(d.Raw)-1] != &data[end-1] {
			t.Fatalf("Raw %q does not end at %d", d.Raw, end)
		}
		if d.ClickIDStart >= 0 && (d.ClickIDStart >= d.ClickIDEnd || d.ClickIDEnd > len(d.Raw)) {
			t.Fatalf("click_id span %d..%d outside %q", d.ClickIDStart, d.ClickIDEnd, d.Raw)
		}
		// Without the strict rules, the one value decodes as Decode decodes it alone.
		lax, _, laxErr := messages.DecodeNext(data, start, messages.Strict{})
		ev, decErr := messages.Decode(lax.Raw)
		if (laxErr == nil) != (decErr == nil) || (ev != nil && !reflect.DeepEqual(ev, lax.Event)) {
			t.Fatalf("DecodeNext and Decode disagree on %q: %v / %v", lax.Raw, laxErr, decErr)
		}
		if err == nil && laxErr != nil {
			t.Fatalf("strict accepted what lax rejected: %q", d.Raw)
		}
	})
}
