package messages

import "testing"

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
