package bench

import (
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/faults"
)

// A prefix sums every label set of its metric and never a longer metric's lines; comments are skipped.
func TestSumLines(t *testing.T) {
	text := `# HELP clickfleet_consumer_kinesis_calls_total Kinesis calls.
# TYPE clickfleet_consumer_kinesis_calls_total counter
clickfleet_consumer_kinesis_calls_total{call="get_records",outcome="ok"} 120
clickfleet_consumer_kinesis_calls_total{call="get_records",outcome="error"} 3
clickfleet_consumer_kinesis_calls_total{call="get_shard_iterator",outcome="ok"} 8
clickfleet_consumer_throttled_total 2
clickfleet_consumer_throttled_total_other 100
clickfleet_archive_records_total{kind="raw"} 5e+03
`
	got := sumLines(text, []string{`clickfleet_consumer_kinesis_calls_total{call="get_records"`, "clickfleet_consumer_throttled_total",
		`clickfleet_archive_records_total{kind="raw"`, "clickfleet_consumer_kinesis_calls_total", "absent_total"})
	want := []float64{123, 2, 5000, 131, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sums %v, want %v", got, want)
		}
	}
}

// A window's figures are the differences of its counts per shard and second, throttles per minute.
func TestReadFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	layer := func(calls, throttled int) map[string]faults.LimitStats {
		return map[string]faults.LimitStats{"GetRecords": {Operation: "GetRecords", Calls: calls, Throttled: throttled},
			"GetShardIterator": {Operation: "GetShardIterator", Throttled: throttled / 2}}
	}
	from := readCounts{at: t0, consume: 100, archive: 50, subscribes: 8, throttled: 1, layer: layer(200, 10)}
	to := readCounts{at: t0.Add(30 * time.Second), consume: 340, archive: 290, subscribes: 12, throttled: 4, layer: layer(700, 40)}
	f := to.figures(from, 4)
	want := ReadFigures{Seconds: 30, ConsumeCalls: 2, ArchiveCalls: 2, Calls: 4, Subscribes: 2, WorkerThrottled: 3, Limited: true,
		Throttled: map[string]int{"GetRecords": 30, "GetShardIterator": 15}, ThrottledPerMinute: 90, LayerCalls: 500.0 / 30 / 4}
	if f.Seconds != want.Seconds || f.ConsumeCalls != want.ConsumeCalls || f.ArchiveCalls != want.ArchiveCalls || f.Calls != want.Calls ||
		f.Subscribes != want.Subscribes || f.WorkerThrottled != want.WorkerThrottled || !f.Limited || f.ThrottledPerMinute != want.ThrottledPerMinute ||
		f.LayerCalls != want.LayerCalls || f.Throttled["GetRecords"] != 30 || f.Throttled["GetShardIterator"] != 15 {
		t.Fatalf("figures\n %+v\nwant\n %+v", f, want)
	}
	to.layer, from.layer = nil, nil
	if f := to.figures(from, 4); f.Limited || f.Throttled != nil {
		t.Fatalf("without the layer: %+v", f)
	}
}
