package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/bench"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// The drain scenario runs end to end on small numbers with each processor, the exact ones verified, so
// the harness cannot rot.
func TestDrainScenario(t *testing.T) {
	kin, ddb, rdb := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t)
	for _, proc := range []string{"count", "actors", "lambda"} {
		t.Run(proc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := bench.Drain(ctx, kin, ddb, bench.DrainConfig{Shards: 2, Records: 1000, Users: 50, Writers: 2,
				Workers: 2, Processor: proc, Redis: rdb, Progress: func(s string) { t.Log(s) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.BareRate <= 0 || res.WorkerRate <= 0 || res.Ratio <= 0 || (proc != "lambda" && !res.Verified) {
				t.Fatalf("result not filled in: %+v", res)
			}
			// Rows on triggers: a start and a close at most (a lease moving between the two workers adds a
			// row at the handoff), not one per flush.
			if proc == "actors" && (res.Sessions == 0 || res.SessionWritesPerSession <= 0 || res.SessionWritesPerSession > 3) {
				t.Fatalf("session writes: %d for %d sessions (%.2f per session)", res.SessionWrites, res.Sessions, res.SessionWritesPerSession)
			}
		})
	}
}

// The archive drain stores every record, reads the lake back and fills in its figures.
func TestDrainScenarioArchive(t *testing.T) {
	kin, ddb, rdb, s3c := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t), testenv.S3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.Drain(ctx, kin, ddb, bench.DrainConfig{Shards: 2, Records: 1000, Users: 50, Writers: 2,
		Workers: 2, Processor: "archive", Redis: rdb, S3: s3c, ArchiveBufferBytes: 64 << 10, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Archive
	if !res.Verified || a == nil || a.RawLines != 1000 || a.ParquetRows != 1000 || a.ParquetVsRaw <= 0 || a.Objects < 4 {
		t.Fatalf("result not filled in: %+v %+v", res, a)
	}
}
