package bench_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/bench"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Every load scenario runs briefly with real worker processes, so the harness cannot rot; each ends with
// the counts verified exactly and its report written.
func TestLoadScenarios(t *testing.T) {
	kin, ddb, rdb := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t)
	bin := testenv.Binary(t)
	for _, sc := range []string{bench.Steady, bench.Failover, bench.Reshard, bench.ScaleOut} {
		t.Run(sc, func(t *testing.T) {
			proc := "actors"
			if sc == bench.ScaleOut {
				proc = "count" // both processors stay covered
			}
			if sc == bench.Reshard && os.Getenv("CLICKFLEET_STACK_KINESIS") == "kinesalite" {
				t.Skip("kinesalite has no UpdateShardCount")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cfg := bench.LoadConfig{Scenario: sc, Binary: bin,
				RedisURL: os.Getenv("CLICKFLEET_REDIS_URL"), Redis: rdb, Processor: proc, Shards: 2, Workers: 2, Rate: 200,
				Duration: 6 * time.Second, Users: 50, LogDir: t.TempDir(),
				// The drain waits for every session to close (its row has its final count then): a gap of 2 s
				// and a close delay of 0.5 s close them 2.5 s after the load, not 15 s (the defaults).
				WorkerArgs: []string{"--session-gap=2s", "--session-close-delay=500ms", "--failover-time=1s", "--take-interval=300ms",
					"--idle-time=200ms", "--checkpoint-interval=300ms",
					"--shard-sync-interval=1s", "--parent-poll-interval=200ms"},
				Progress: func(s string) { t.Log(s) }}
			var res bench.LoadResult
			var err error
			if sc == bench.Steady {
				res, err = steadyInReadMode(ctx, t, kin, ddb, cfg)
			} else {
				res, err = bench.Load(ctx, kin, ddb, cfg)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Verified || res.Produced == 0 || len(res.Points) == 0 || res.Latency.N == 0 || (proc == "actors" && res.SessionLatency.N == 0) {
				t.Fatalf("incomplete result: %+v", res)
			}
			if (sc == bench.Failover || sc == bench.Reshard) && res.RecoverySeconds == 0 {
				t.Fatalf("%s: no recovery measured; marks %v", sc, res.Marks)
			}
			var table, page strings.Builder
			if err := bench.WriteTable(&table, res); err != nil {
				t.Fatal(err)
			}
			if err := bench.WriteHTML(&page, res); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(page.String(), "<svg") || !strings.Contains(table.String(), fmt.Sprint(res.Produced)) {
				t.Fatalf("report incomplete:\n%s", table.String())
			}
		})
	}
}

// steadyInReadMode runs steady as `bench readmodes` does — a consume and an archive worker, in the efo
// mode where the stack has enhanced fan-out, behind the limits layer where the stack has one — and checks
// what only that run measures: the archived probes and the Kinesis calls (efo reads open shards with no
// GetRecords call at all; polling at the defaults makes at most 2 per shard per second and application).
func steadyInReadMode(ctx context.Context, t *testing.T, kin bench.KinesisAPI, ddb bench.DynamoDBAPI, cfg bench.LoadConfig) (bench.LoadResult, error) {
	cfg.S3, cfg.Workers, cfg.ArchiveInterval, cfg.Warmup = testenv.S3(t), 1, time.Second, 2*time.Second
	cfg.ArchiveArgs = []string{"--failover-time=1s", "--take-interval=300ms", "--shard-sync-interval=1s"}
	rc := bench.ReadModesConfig{Load: cfg, Modes: []string{bench.ReadPolling}}
	if os.Getenv("CLICKFLEET_STACK_KINESIS") != "kinesalite" {
		testenv.KinesisFanOut(t)
		rc.Modes, rc.EFOEndpoint = []string{bench.ReadEFO}, os.Getenv("CLICKFLEET_EFO_ENDPOINT")
	}
	if os.Getenv("CLICKFLEET_STACK_AWS_LIMITS") == "1" {
		rc.Load.LimitsURL = os.Getenv("AWS_ENDPOINT_URL_KINESIS")
	}
	out, err := bench.ReadModes(ctx, kin, ddb, rc)
	if err != nil || len(out) != 1 {
		return bench.LoadResult{}, fmt.Errorf("%d results: %w", len(out), err)
	}
	res, f := out[0].Result, out[0].Result.Reads
	var table strings.Builder
	if werr := bench.WriteReadModes(&table, out); werr != nil {
		t.Fatal(werr)
	}
	t.Logf("%s\n%s", rc.Modes[0], table.String())
	switch {
	case res.ArchiveLatency.N == 0:
		t.Fatalf("%s: no probe timed to the archive: %+v", rc.Modes[0], res)
	case f == nil || f.Seconds <= 0:
		t.Fatalf("%s: no read window: %+v", rc.Modes[0], f)
	case f.Limited != (rc.Load.LimitsURL != ""):
		t.Fatalf("%s: limits layer measured %v, want %v", rc.Modes[0], f.Limited, rc.Load.LimitsURL != "")
	case rc.Modes[0] == bench.ReadEFO && f.Calls != 0:
		t.Fatalf("efo made %.2f GetRecords calls/s per shard on open shards, want none", f.Calls)
	case rc.Modes[0] == bench.ReadPolling && (f.Calls == 0 || f.ConsumeCalls > 2.5 || f.ArchiveCalls > 2.5):
		t.Fatalf("polling at the defaults: %+v, want at most 2 GetRecords calls per shard per second and application (and some)", f)
	}
	return res, nil
}
