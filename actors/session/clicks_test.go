package session

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

// window returns a window after adding fps in order.
func window(fps ...uint64) RecentClicks {
	var w RecentClicks
	for _, fp := range fps {
		w.Add(fp)
	}
	return w
}

// seq returns the fingerprints from, from+1, ..., to-1.
func seq(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v < to; v++ {
		out = append(out, v)
	}
	return out
}

// words encodes fps as the field value would hold them, without going through RecentClicks.
func words(fps ...uint64) string {
	raw := make([]byte, 0, 8*len(fps))
	for _, fp := range fps {
		raw = binary.BigEndian.AppendUint64(raw, fp)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestRecentClicksWindow(t *testing.T) {
	const n = RecentClicksSize
	tests := []struct {
		name string
		add  []uint64
		want []uint64 // oldest first
	}{
		{"empty", nil, nil},
		{"one", []uint64{7}, []uint64{7}},
		{"zero is a fingerprint like any other", []uint64{0, 1}, []uint64{0, 1}},
		{"full", seq(1, n+1), seq(1, n+1)},
		{"one past full drops the oldest", seq(1, n+2), seq(2, n+2)},
		{"wrapped more than once", seq(1, 3*n+6), seq(2*n+6, 3*n+6)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := window(tc.add...)
			if got := w.Fingerprints(); !slices.Equal(got, tc.want) {
				t.Fatalf("fingerprints %v, want %v", got, tc.want)
			}
			for _, fp := range tc.add {
				if got, want := w.Contains(fp), slices.Contains(tc.want, fp); got != want {
					t.Errorf("Contains(%d) = %v, want %v", fp, got, want)
				}
			}
			enc := w.Encode()
			if enc != words(tc.want...) {
				t.Fatalf("Encode = %q, want %q", enc, words(tc.want...))
			}
			if len(enc) > 342 {
				t.Fatalf("encoding of %d bytes", len(enc))
			}
			back, err := ParseRecentClicks(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.Fingerprints(), tc.want) {
				t.Fatalf("round trip gives %v, want %v", back.Fingerprints(), tc.want)
			}
			// The decoded window goes on as the original would.
			w.Add(1 << 40)
			back.Add(1 << 40)
			if !slices.Equal(back.Fingerprints(), w.Fingerprints()) {
				t.Fatalf("after one more: %v, want %v", back.Fingerprints(), w.Fingerprints())
			}
		})
	}
}

func TestParseRecentClicks(t *testing.T) {
	const n = RecentClicksSize
	tests := []struct {
		name    string
		in      string
		want    []uint64
		wantErr string
	}{
		{"empty field", "", nil, ""},
		{"one fingerprint", words(0xdeadbeef), []uint64{0xdeadbeef}, ""},
		{"a larger window keeps the newest", words(seq(1, 2*n+3)...), seq(n+3, 2*n+3), ""},
		{"padding", words(5) + "=", nil, "base64"},
		{"standard alphabet", strings.Repeat("/", 11), nil, "base64"},
		{"not base64", "not base64!", nil, "base64"},
		{"a partial fingerprint", words(9)[:8], nil, "whole number of 8-byte fingerprints"},
		{"trailing bits set (not canonical)", words(1)[:10] + "B", nil, "base64"},
		{"binary garbage", "\x00\xff\x10", nil, "base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := ParseRecentClicks(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				if w.Len() != 0 {
					t.Fatalf("a bad value gave a window of %d", w.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(w.Fingerprints(), tc.want) {
				t.Fatalf("fingerprints %v, want %v", w.Fingerprints(), tc.want)
			}
		})
	}
}

// FuzzParseRecentClicks: any field value decodes to a bounded window or an error, never a panic, and a
// value that decodes re-encodes to the same value (or to its newest RecentClicksSize fingerprints).
func FuzzParseRecentClicks(f *testing.F) {
	f.Add("")
	f.Add(words(1, 2, 3))
	f.Add(words(seq(0, RecentClicksSize+5)...))
	f.Add(words(7)[:5])
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseRecentClicks(s)
		if err != nil {
			if w.Len() != 0 {
				t.Fatalf("error %v with a window of %d", err, w.Len())
			}
			return
		}
		if w.Len() > RecentClicksSize {
			t.Fatalf("window of %d", w.Len())
		}
		raw, derr := base64.RawURLEncoding.Strict().DecodeString(s)
		if derr != nil {
			t.Fatalf("%q accepted but is not canonical base64: %v", s, derr)
		}
		if len(raw) > 8*RecentClicksSize {
			raw = raw[len(raw)-8*RecentClicksSize:]
		}
		if enc := w.Encode(); enc != base64.RawURLEncoding.EncodeToString(raw) {
			t.Fatalf("%q re-encodes as %q", s, enc)
		}
	})
}

// FuzzRecentClicksRoundTrip: any sequence of additions encodes within bounds and decodes to the same
// window.
func FuzzRecentClicksRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("0123456789abcdef"))
	f.Add(make([]byte, 8*(RecentClicksSize+3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var w RecentClicks
		var added []uint64
		for i := 0; i+8 <= len(b); i += 8 {
			fp := binary.LittleEndian.Uint64(b[i:])
			w.Add(fp)
			added = append(added, fp)
		}
		want := added[max(0, len(added)-RecentClicksSize):]
		if !slices.Equal(w.Fingerprints(), want) {
			t.Fatalf("window %v, want %v", w.Fingerprints(), want)
		}
		enc := w.Encode()
		if len(enc) > 342 {
			t.Fatalf("encoding of %d bytes", len(enc))
		}
		back, err := ParseRecentClicks(enc)
		if err != nil || !slices.Equal(back.Fingerprints(), w.Fingerprints()) {
			t.Fatalf("round trip: %v, %v; want %v", back.Fingerprints(), err, want)
		}
	})
}

// Copies of an applied event are dropped; events without click_id are not de-duplicated, even when the
// same bytes arrive at two positions.
func TestUserApplyDropsCopies(t *testing.T) {
	r := DefaultRules()
	base := int64(1_626_091_318_000)
	lab := func(click string, ts int64) *messages.Event {
		return &messages.Event{Schema: messages.SchemaLab, UserID: "u1", EventName: "search", DeviceType: "desktop", EventTimeMs: ts, ClickID: click}
	}
	offer := poc(t, "ViewContent", 90, base+3000)
	offer.ClickID = "offer-1"
	u := User{ID: "u1"}
	steps := []struct {
		name string
		pos  Position
		ev   *messages.Event
		want Outcome
	}{
		{"first event", position.At("100", 0), lab("a", base), Outcome{Applied: true, NewSession: true}},
		{"second event", position.At("101", 0), lab("b", base+1000), Outcome{Applied: true}},
		{"an offer", position.At("102", 0), offer, Outcome{Applied: true, Offer: true}},
		{"copy of a (retried put)", position.At("103", 0), lab("a", base), Outcome{Duplicate: true}},
		{"copy of the offer is no offer", position.At("104", 0), offer, Outcome{Duplicate: true}},
		{"replay of the copy's position", position.At("103", 0), lab("a", base), Outcome{}},
		{"no click_id", position.At("105", 0), lab("", base+2000), Outcome{Applied: true}},
		{"the same event without click_id again", position.At("106", 0), lab("", base+2000), Outcome{Applied: true}},
		{"a copy 60 s later still in the window", position.At("107", 0), lab("b", base+1000), Outcome{Duplicate: true}},
	}
	for _, s := range steps {
		if got := u.Apply(s.pos, s.ev, r); got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if u.Current.EventCount != 5 || u.LastAccessMs != base+3000 || u.Applied != (position.At("107", 0)) || u.Recent.Len() != 3 {
		t.Fatalf("state: count %d, last access %d, applied %v, window %d", u.Current.EventCount, u.LastAccessMs, u.Applied, u.Recent.Len())
	}
	// Once RecentClicksSize newer events are applied, the oldest id has left the window.
	for i := range RecentClicksSize {
		u.Apply(position.At(fmt.Sprint(200+i), 0), lab(fmt.Sprint("n", i), base+4000), r)
	}
	if o := u.Apply(position.At("300", 0), lab("a", base), r); !o.Applied {
		t.Fatalf("an id out of the window: %+v, want applied", o)
	}
}

// The window is part of the stored state: it round-trips through the hash fields, and a corrupt value is
// an error naming the field.
func TestRecentClicksInFields(t *testing.T) {
	r := DefaultRules()
	u := User{ID: "u1"}
	for i := range 40 {
		u.Apply(position.At(fmt.Sprint(10+i), 0), &messages.Event{UserID: "u1", EventName: "x", DeviceType: "desktop",
			EventTimeMs: 1_626_091_318_000 + int64(i), ClickID: fmt.Sprint("click-", i)}, r)
	}
	h := map[string]string{PositionField("shard-1"): u.Applied.Encode()}
	kv := u.AppendFields(nil, "shard-1")
	for i := 0; i < len(kv); i += 2 {
		h[kv[i].(string)] = fmt.Sprint(kv[i+1])
	}
	if len(h[FieldRecentClicks]) != 342 {
		t.Fatalf("field %s of %d bytes, want 342 for a full window", FieldRecentClicks, len(h[FieldRecentClicks]))
	}
	for _, shard := range []string{"shard-1", "shard-2"} { // a child shard resumes the same window
		got, err := FromFields("u1", shard, h)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Recent.Fingerprints(), u.Recent.Fingerprints()) {
			t.Fatalf("%s: window %v, want %v", shard, got.Recent.Fingerprints(), u.Recent.Fingerprints())
		}
		if o := got.Apply(position.At("999", 0), &messages.Event{UserID: "u1", EventName: "x", ClickID: "click-39"}, r); !o.Duplicate {
			t.Fatalf("%s: a copy after rehydration: %+v", shard, o)
		}
	}
	h[FieldRecentClicks] = "%%%"
	if _, err := FromFields("u1", "shard-1", h); err == nil || !strings.Contains(err.Error(), FieldRecentClicks) {
		t.Fatalf("corrupt window: %v", err)
	}
	fresh := User{ID: "u2"}
	for _, f := range fresh.AppendFields(nil, "shard-1") {
		if f == FieldRecentClicks {
			t.Fatal("an empty window is written")
		}
	}
}

// BenchmarkApply is the per-event cost of the window: Apply of events without click_id (the window is
// not touched) beside events with one (fingerprint, a scan of a full window, an insertion).
func BenchmarkApply(b *testing.B) {
	r := DefaultRules()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("0190f2a4-7c1e-7d3a-9b1f-%012d", i)
	}
	for _, withIDs := range []bool{false, true} {
		b.Run(fmt.Sprintf("click_ids=%v", withIDs), func(b *testing.B) {
			u := User{ID: "u1"}
			ev := messages.Event{UserID: "u1", EventName: "search", DeviceType: "desktop", EventTimeMs: 1_626_091_318_000}
			pos := Position{SequenceNumber: "49600000000000000000000000000000000000000000000000000000"}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				pos.SubSequence = int64(i)
				if withIDs {
					ev.ClickID = ids[i%len(ids)]
				}
				if !u.Apply(pos, &ev, r).Applied {
					b.Fatal("not applied")
				}
			}
		})
	}
}

// BenchmarkRecentClicksEncode is the cost a full window adds to each state write and each load.
func BenchmarkRecentClicksEncode(b *testing.B) {
	w := window(seq(1, RecentClicksSize+1)...)
	enc := w.Encode()
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = w.Encode()
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseRecentClicks(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
