package scale

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// With CloudWatch as the source (a fake: no emulator speaks it) the Scaler asks for enough minutes that
// the windows, which end at the newest published minute, are covered: 900 records/s on one shard for the
// last 20 minutes is a scale-up to 2 (the stream is the emulator's).
func TestScalerWithCloudWatchCoversTheWindows(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	now := time.Now().UTC()
	fake := &fakeCloudWatch{bytes: map[time.Time]float64{}, records: map[time.Time]float64{}}
	for m := now.Truncate(time.Minute).Add(-30 * time.Minute); m.Before(now); m = m.Add(time.Minute) {
		fake.records[m], fake.bytes[m] = 60*900, 60*900*200
	}
	var out syncBuf
	s, err := New(Config{Stream: stream, DryRun: true, Kinesis: kin, Source: &CloudWatch{API: fake, Stream: stream},
		Decisions: &out, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.WaitFor(t, "the first decision", 30*time.Second, func() bool { return out.String() != "" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "utilisation=90% shards=1→2 resize: above 75% for 5m0s") {
		t.Fatalf("decision: %s", out.String())
	}
	in := fake.requests[0]
	if got := in.EndTime.Sub(*in.StartTime); got < 17*time.Minute {
		t.Fatalf("asked CloudWatch for %s, too little for the 15-minute window ending 2-3 minutes ago", got)
	}
}
