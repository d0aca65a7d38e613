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
			res, err := bench.Load(ctx, kin, ddb, bench.LoadConfig{Scenario: sc, Binary: bin,
				RedisURL: os.Getenv("CLICKFLEET_REDIS_URL"), Redis: rdb, Processor: proc, Shards: 2, Workers: 2, Rate: 200,
				Duration: 6 * time.Second, Users: 50, LogDir: t.TempDir(),
				// The drain waits for every session to close (its row has its final count then): a gap of 2 s
				// and a close delay of 0.5 s close them 2.5 s after the load, not 15 s (the defaults).
				WorkerArgs: []string{"--session-gap=2s", "--session-close-delay=500ms", "--failover-time=1s", "--take-interval=300ms",
					"--idle-time=200ms", "--checkpoint-interval=300ms",
					"--shard-sync-interval=1s", "--parent-poll-interval=200ms"},
				Progress: func(s string) { t.Log(s) }})
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
