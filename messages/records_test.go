package messages

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSessionID(t *testing.T) {
	for _, tc := range []struct {
		name, user, device string
		startMs            int64
		want               string
	}{
		{"lab", "user1", "desktop", 1626091318000, "user1_desktop_20210712T120158.000Z"},
		{"millis", "35", "mobile", 1626091318732, "35_mobile_20210712T120158.732Z"},
		{"empty device", "u", "", 946684800001, "u_unknown_20000101T000000.001Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SessionID(tc.user, tc.device, tc.startMs); got != tc.want {
				t.Errorf("SessionID = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewSession(t *testing.T) {
	s := NewSession("user1", "", 1626091318732)
	want := Session{SessionID: "user1_unknown_20210712T120158.732Z", UserID: "user1", DeviceType: "unknown",
		SessionTime: "12:01:58", StartMs: 1626091318732, LastEventMs: 1626091318732, EventCount: 1}
	if s != want {
		t.Errorf("NewSession = %+v\nwant %+v", s, want)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"session_id":"user1_unknown_20210712T120158.732Z","user_id":"user1","device_type":"unknown","session_time":"12:01:58","start_ms":1626091318732,"last_event_ms":1626091318732,"event_count":1,"updated_ms":0}`
	if string(b) != wantJSON {
		t.Errorf("json = %s\nwant %s", b, wantJSON)
	}
}

func TestDerivedClickID(t *testing.T) {
	a := DerivedClickID("shardId-000000000001", "49590338271490256608559692538361571095921575989136588898", 0)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a) {
		t.Errorf("DerivedClickID = %q, want 32 hex digits", a)
	}
	if b := DerivedClickID("shardId-000000000001", "49590338271490256608559692538361571095921575989136588898", 0); a != b {
		t.Errorf("not stable: %q vs %q", a, b)
	}
	for _, other := range []string{
		DerivedClickID("shardId-000000000001", "49590338271490256608559692538361571095921575989136588898", 1),
		DerivedClickID("shardId-000000000002", "49590338271490256608559692538361571095921575989136588898", 0),
		DerivedClickID("shardId-000000000001", "49590338271490256608559692538361571095921575989136588899", 0),
		DerivedClickID("shardId-000000000001"+"\x00"+"4959", "0338271490256608559692538361571095921575989136588898", 0),
	} {
		if other == a {
			t.Errorf("different inputs gave the same id %q", a)
		}
	}
	// Pinned: other processes and versions must derive the same id.
	if got, want := DerivedClickID("shardId-000000000000", "1", 0), "20c6574b69c20cc57c5431900802defd"; got != want {
		t.Errorf("DerivedClickID changed: %q, pinned %q", got, want)
	}
}

func TestNewErrorRecord(t *testing.T) {
	data := []byte(`{"user_id":""}`)
	_, decErr := Decode(data)
	r := NewErrorRecord("clickstream", "shardId-000000000003", "4959", data, decErr)
	data[0] = 'X' // the record must hold a copy
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"reason":"invalid event: timestamp: missing (an event needs timestamp or event_timestamp); user_id: empty; event_name: missing","stream":"clickstream","shard_id":"shardId-000000000003","sequence_number":"4959","data":"` +
		base64.StdEncoding.EncodeToString([]byte(`{"user_id":""}`)) + `"}`
	if string(b) != want {
		t.Errorf("json = %s\nwant %s", b, want)
	}

	t.Run("nil error and nil data", func(t *testing.T) {
		r := NewErrorRecord("s", "sh", "1", nil, nil)
		b, err := json.Marshal(r)
		if err != nil || string(b) != `{"reason":"unknown error","stream":"s","shard_id":"sh","sequence_number":"1","data":""}` {
			t.Errorf("json = %s, %v", b, err)
		}
	})
	t.Run("truncation keeps it under the Kinesis limit", func(t *testing.T) {
		big := []byte(strings.Repeat("x", MaxRecordBytes))
		r := NewErrorRecord("s", "sh", "1", big, errors.New(strings.Repeat("é", MaxErrorReason)))
		if !r.Truncated || len(r.Data) != MaxErrorData || len(r.Reason) > MaxErrorReason || !utf8.ValidString(r.Reason) {
			t.Errorf("truncated=%v data=%d reason=%d", r.Truncated, len(r.Data), len(r.Reason))
		}
		b, err := json.Marshal(r)
		if err != nil || len(b) >= MaxRecordBytes {
			t.Errorf("encoded %d bytes, %v", len(b), err)
		}
	})
}
