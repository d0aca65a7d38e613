package consumer_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// The read counters (what clickfleet scale reads as the stream's rate) count each record GetRecords
// returned once, and its data plus partition key bytes.
func TestReadCountersCountWhatGetRecordsReturned(t *testing.T) {
	kin := testenv.Kinesis(t)
	ddb, table := leaseTable(t)
	stream := testenv.Stream(t, kin, 2)
	putUsers(t, kin, stream, 7, 30, 0) // "u3:12" with key "u3" …
	var wantBytes float64
	for n := 0; n < 30; n++ {
		for u := 0; u < 7; u++ {
			user := "u" + itoa(u)
			wantBytes += float64(len(user) + len(user+":"+itoa(n)))
		}
	}
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	w, err := consumer.New(kin, ddb, consumer.Config{Stream: stream, NewProcessor: rec.factory, IdleTime: 100 * time.Millisecond,
		Registerer: reg, Lease: lease.Config{Table: table, WorkerID: "w1", FailoverTime: time.Second, TakeInterval: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	value := func(name string) float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == name {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	testenv.WaitFor(t, "all 210 records read", 30*time.Second, func() bool { return w.RecordsProcessed() >= 210 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := value("clickfleet_consumer_read_records_total"); got != 210 {
		t.Fatalf("read_records_total %v, want 210", got)
	}
	if got := value("clickfleet_consumer_read_bytes_total"); got != wantBytes {
		t.Fatalf("read_bytes_total %v, want %v", got, wantBytes)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
