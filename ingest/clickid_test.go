package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/clickfleet/clickfleet/messages"
)

// fixedIDs returns a newID that hands out UUIDs ending in 1, 2, 3, ...
func fixedIDs() func() (uuid.UUID, error) {
	n := 0
	return func() (uuid.UUID, error) {
		n++
		return uuid.MustParse(fmt.Sprintf("01890a5d-ac96-774b-bcce-%012d", n)), nil
	}
}

func TestAssignClickIDs(t *testing.T) {
	const id1 = "01890a5d-ac96-774b-bcce-000000000001"
	tests := []struct {
		name string
		in   string
		want string // the bytes put on the stream
		id   string // the click_id they carry
	}{
		{"lab event: added as the last member", labEvent,
			labEvent[:len(labEvent)-1] + `,"click_id":"` + id1 + `"}`, id1},
		{"POC event with a click_id: unchanged", pocEvent, pocEvent, "c1"},
		{"null click_id: replaced in place",
			`{"user_id":"u","click_id" : null ,"event_timestamp":1626091318000,"event_name":"x"}`,
			`{"user_id":"u","click_id" : "` + id1 + `" ,"event_timestamp":1626091318000,"event_name":"x"}`, id1},
		{"empty click_id: replaced in place",
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","click_id":""}`,
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","click_id":"` + id1 + `"}`, id1},
		{"escaped key: the same member",
			`{"user_id":"u","click\u005fid":"","event_timestamp":1626091318000,"event_name":"x"}`,
			`{"user_id":"u","click\u005fid":"` + id1 + `","event_timestamp":1626091318000,"event_name":"x"}`, id1},
		{"a nested click_id is not the event's",
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","additional_data":{"click_id":"", "price":1}}`,
			`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","additional_data":{"click_id":"", "price":1},"click_id":"` + id1 + `"}`, id1},
		{"white space inside is kept",
			"{ \"user_id\" : \"u\",\n \"event_timestamp\":1626091318000, \"event_name\":\"x\"\t}",
			"{ \"user_id\" : \"u\",\n \"event_timestamp\":1626091318000, \"event_name\":\"x\"\t,\"click_id\":\"" + id1 + "\"}", id1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodeRequest([]byte(tc.in), FormatJSON, testLimits)
			if err != nil || items[0].Event == nil {
				t.Fatalf("decode: %v %+v", err, items)
			}
			if err := assignClickIDs(items, fixedIDs()); err != nil {
				t.Fatal(err)
			}
			it := items[0]
			if string(it.Data) != tc.want || it.Event.ClickID != tc.id {
				t.Fatalf("got %s with id %q\nwant %s with id %q", it.Data, it.Event.ClickID, tc.want, tc.id)
			}
			ev, err := messages.Decode(it.Data)
			if err != nil || ev.ClickID != tc.id {
				t.Fatalf("the consumer decodes %v, %v", ev, err)
			}
			again, err := DecodeRequest(it.Data, FormatJSON, testLimits)
			if err != nil || again[0].Errors != nil {
				t.Fatalf("the new bytes are not a valid event for the ingest: %v %+v", err, again)
			}
		})
	}
}

// In a request of several events only those without an id get one, each its own; invalid events and
// the others keep their bytes (the very slices of the body).
func TestAssignClickIDsRequest(t *testing.T) {
	body := strings.Join([]string{labEvent, pocEvent, `{"user_id":"u"}`, labEvent}, "\n")
	items, err := DecodeRequest([]byte(body), FormatNDJSON, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	before := make([][]byte, len(items))
	for i := range items {
		before[i] = items[i].Data
	}
	if err := assignClickIDs(items, uuid.NewV7); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, i := range []int{0, 3} {
		id, err := uuid.Parse(items[i].Event.ClickID)
		if err != nil || id.Version() != 7 {
			t.Fatalf("item %d: click_id %q is not a UUIDv7 (%v)", i, items[i].Event.ClickID, err)
		}
		ids[id.String()] = true
		if !bytes.Contains(items[i].Data, []byte(`"click_id":"`+id.String()+`"`)) {
			t.Fatalf("item %d: %s", i, items[i].Data)
		}
	}
	if len(ids) != 2 {
		t.Fatal("two events got the same id")
	}
	for _, i := range []int{1, 2} {
		if &items[i].Data[0] != &before[i][0] || len(items[i].Data) != len(before[i]) {
			t.Fatalf("item %d changed: %s", i, items[i].Data)
		}
	}
	if items[1].Event.ClickID != "c1" || items[2].Event != nil {
		t.Fatalf("items 1 and 2: %+v %+v", items[1].Event, items[2])
	}
}

func TestAssignClickIDsErrors(t *testing.T) {
	t.Run("an event the id would put over the record limit", func(t *testing.T) {
		head := `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","pad":"`
		big := head + strings.Repeat("a", messages.MaxRecordBytes-len(head)-2-20) + `"}`
		items, err := DecodeRequest([]byte(labEvent+"\n"+big), FormatNDJSON, testLimits)
		if err != nil || items[1].Event == nil {
			t.Fatalf("decode: %v", err)
		}
		err = assignClickIDs(items, uuid.NewV7)
		var re *RequestError
		if !errors.As(err, &re) || re.Status != http.StatusRequestEntityTooLarge || len(re.Errors) != 1 || re.Errors[0].Index != 1 {
			t.Fatalf("got %v, want a 413 naming event 1", err)
		}
		if items[0].Event.ClickID != "" || string(items[0].Data) != labEvent {
			t.Fatal("an item changed although the request is refused")
		}
	})
	t.Run("no randomness", func(t *testing.T) {
		items, err := DecodeRequest([]byte(labEvent), FormatJSON, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		broken := errors.New("entropy exhausted")
		if err := assignClickIDs(items, func() (uuid.UUID, error) { return uuid.UUID{}, broken }); !errors.Is(err, broken) {
			t.Fatalf("got %v", err)
		}
		if items[0].Event.ClickID != "" || string(items[0].Data) != labEvent {
			t.Fatal("the item changed")
		}
	})
}

// FuzzAssignClickIDs: whatever DecodeRequest accepts as a valid event comes out as a valid event with a
// click_id, and with exactly the bytes of the input outside the click_id member.
func FuzzAssignClickIDs(f *testing.F) {
	for _, s := range []string{labEvent, pocEvent, `{"user_id":"u","click_id":null,"event_timestamp":1,"event_name":"x"}`,
		`{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","click\u005fid":""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items, err := DecodeRequest([]byte(s), FormatJSON, testLimits)
		if err != nil || len(items) != 1 || items[0].Event == nil {
			return
		}
		orig := items[0].Data
		had := items[0].Event.ClickID
		if err := assignClickIDs(items, uuid.NewV7); err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		it := items[0]
		ev, err := messages.Decode(it.Data)
		if err != nil || ev.ClickID == "" || ev.ClickID != it.Event.ClickID {
			t.Fatalf("%q became %q: %v, %+v", s, it.Data, err, ev)
		}
		if had != "" {
			if string(it.Data) != string(orig) {
				t.Fatalf("%q with a click_id changed to %q", s, it.Data)
			}
			return
		}
		again, err := DecodeRequest(it.Data, FormatJSON, testLimits)
		if err != nil || again[0].Event == nil {
			t.Fatalf("%q became %q, which the ingest refuses: %v %+v", s, it.Data, err, again)
		}
		// Only the click_id changed: it was appended, or it replaced a null or "" in the input.
		if !onlyClickIDAdded(string(orig), string(it.Data), it.Event.ClickID) {
			t.Fatalf("%q became %q: more than the click_id changed", s, it.Data)
		}
	})
}

// onlyClickIDAdded reports whether out is orig with the member "click_id":"<id>" appended, or with one
// null or "" replaced by "<id>".
func onlyClickIDAdded(orig, out, id string) bool {
	quoted := `"` + id + `"`
	if out == orig[:len(orig)-1]+`,"click_id":`+quoted+`}` {
		return true
	}
	for _, lit := range []string{"null", `""`} {
		for i := 0; i+len(lit) <= len(orig); i++ {
			if orig[i:i+len(lit)] == lit && orig[:i]+quoted+orig[i+len(lit):] == out {
				return true
			}
		}
	}
	return false
}

// BenchmarkDecodeRequest measures the request path before the PutRecords call: decoding and validating a
// 100-event NDJSON body, and the same plus giving every event a click_id (lab events carry none).
func BenchmarkDecodeRequest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		event  string
		assign bool
	}{{"lab", labEvent, false}, {"lab+click_ids", labEvent, true}, {"poc", pocEvent, false}, {"poc+click_ids", pocEvent, true}} {
		b.Run(tc.name, func(b *testing.B) {
			body := []byte(strings.Repeat(tc.event+"\n", 100))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				items, err := DecodeRequest(body, FormatNDJSON, testLimits)
				if err != nil {
					b.Fatal(err)
				}
				if tc.assign {
					if err := assignClickIDs(items, uuid.NewV7); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
