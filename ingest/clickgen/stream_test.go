package clickgen_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Generated events land on a real stream once each, keyed by user, and a tail reads them all back.
func TestStreamSinkPutsEveryEventOnce(t *testing.T) {
	kin := testenv.Kinesis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := testenv.Stream(t, kin, 2)
	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Count, cfg.TimeScale, cfg.Users, cfg.BatchSize = 700, 0, 20, 250
	st, err := clickgen.Run(ctx, cfg, &clickgen.StreamSink{API: kin, Stream: stream}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 700 {
		t.Fatalf("sent %d, want 700", st.Sent)
	}

	errDone := errors.New("all read")
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		count int
	)
	readCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	err = streamtail.Tail(readCtx, kin, stream, streamtail.Options{PollInterval: 50 * time.Millisecond}, func(r streamtail.Record) error {
		mu.Lock()
		defer mu.Unlock()
		seen[string(r.Data)]++
		count++
		if count == 700 {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("tail ended with %v after %d of 700 records", err, count)
	}
	for data, n := range seen {
		if n != 1 {
			t.Fatalf("record stored %d times: %s", n, data)
		}
	}
	if len(seen) != 700 {
		t.Fatalf("%d distinct records, want 700", len(seen))
	}
}
