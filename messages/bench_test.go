package messages

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecode measures DecodeInto (reusing one Event, as the consumer
// does) and Decode on both seed shapes.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"poc", seedPOC},
		{"lab", seedLab},
	} {
		data := []byte(bc.in)
		b.Run(bc.name+"/DecodeInto", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var e Event
			for b.Loop() {
				if err := DecodeInto(data, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/Decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendJSON measures re-encoding into a reused buffer.
func BenchmarkAppendJSON(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"poc", seedEnriched},
		{"lab", seedLab},
	} {
		e, err := Decode([]byte(bc.in))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				if buf, err = e.AppendJSON(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodingJSONBaseline decodes the same records with encoding/json
// into a plain struct (no validation), for comparison with BenchmarkDecode
// in the same run.
func BenchmarkEncodingJSONBaseline(b *testing.B) {
	type additional struct {
		TimeOnData    float64 `json:"time_on_data"`
		PercentViewed float64 `json:"percent_viewed"`
		ProductID     int64   `json:"product_id"`
		Price         float64 `json:"price"`
	}
	type plain struct {
		Timestamp          string          `json:"timestamp"`
		EventTimestamp     json.RawMessage `json:"event_timestamp"`
		UserID             json.RawMessage `json:"user_id"`
		PixelID            string          `json:"pixel_id"`
		ClickID            string          `json:"click_id"`
		InsertionTimestamp string          `json:"insertion_timestamp"`
		EventName          string          `json:"event_name"`
		EventType          string          `json:"event_type"`
		DeviceType         string          `json:"device_type"`
		UserIP             string          `json:"user_ip"`
		AdditionalData     *additional     `json:"additional_data"`
	}
	for _, bc := range []struct{ name, in string }{{"poc", seedPOC}, {"lab", seedLab}} {
		data := []byte(bc.in)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var p plain
				if err := json.Unmarshal(data, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
