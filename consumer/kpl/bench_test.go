package kpl_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/clickfleet/clickfleet/consumer/kpl"
)

// BenchmarkDeaggregate reads an aggregate of 100 sub-records of 300 bytes
// with distinct partition keys (the KPL's common case), without and with the
// shard's hash range (with it, every partition key is hashed once).
func BenchmarkDeaggregate(b *testing.B) {
	recs := make([]kpl.SubRecord, 100)
	for i := range recs {
		recs[i] = kpl.SubRecord{PartitionKey: fmt.Sprintf("session-%08d", i), Data: bytes.Repeat([]byte{'x'}, 300)}
	}
	agg, err := kpl.Aggregate(recs)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		r    *kpl.HashRange
	}{
		{"no range", nil},
		{"shard range", mustRange(b, "1", maxKey)}, // not the whole space, so keys are hashed
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(agg)))
			for b.Loop() {
				subs, ok, err := kpl.Deaggregate(agg, "session-00000000", bc.r)
				if err != nil || !ok || len(subs) != 100 {
					b.Fatal(len(subs), ok, err)
				}
			}
		})
	}
}

func BenchmarkAggregate(b *testing.B) {
	recs := make([]kpl.SubRecord, 100)
	for i := range recs {
		recs[i] = kpl.SubRecord{PartitionKey: fmt.Sprintf("session-%08d", i), Data: bytes.Repeat([]byte{'x'}, 300)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kpl.Aggregate(recs); err != nil {
			b.Fatal(err)
		}
	}
}
