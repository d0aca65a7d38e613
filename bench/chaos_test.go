package bench_test

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/bench"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// The schedule is a function of the seed: the same seed draws the same faults, another seed others;
// every kind is in each minute, process faults never hit a worker that is already down, and SIGSTOP
// outlasts the failover time.
func TestChaosSchedule(t *testing.T) {
	workers := []string{"c1", "c2", "c3", "a1", "a2"}
	failover := 3 * time.Second
	a := bench.ChaosSchedule(7, time.Minute, failover, workers)
	if b := bench.ChaosSchedule(7, time.Minute, failover, workers); !slices.Equal(a, b) {
		t.Fatal("the same seed drew two schedules")
	}
	if c := bench.ChaosSchedule(8, time.Minute, failover, workers); slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 drew the same schedule")
	}
	kinds := map[string]int{}
	targets := map[string]map[string]bool{}
	down := map[string]time.Duration{}
	for i, f := range a {
		if i > 0 && f.At < a[i-1].At {
			t.Fatalf("schedule not in time order at %d: %v after %v", i, f.At, a[i-1].At)
		}
		if f.At < 5*time.Second || f.At > time.Minute-8*time.Second || f.For <= 0 {
			t.Fatalf("fault outside the window: %s", f)
		}
		kinds[f.Kind]++
		if targets[f.Kind] == nil {
			targets[f.Kind] = map[string]bool{}
		}
		targets[f.Kind][f.Target] = true
		switch f.Kind {
		case bench.FaultKill, bench.FaultTerm, bench.FaultStop:
			if !slices.Contains(workers, f.Target) {
				t.Fatalf("process fault on %q, not a worker", f.Target)
			}
			if down[f.Target] > f.At {
				t.Fatalf("%s hits %s while it is still down from an earlier fault", f, f.Target)
			}
			down[f.Target] = f.At + f.For
			if f.Kind == bench.FaultStop && f.For <= failover {
				t.Fatalf("SIGSTOP of %s for %s, not past the failover time %s", f.Target, f.For, failover)
			}
		}
	}
	for kind, n := range map[string]int{bench.FaultKill: 1, bench.FaultTerm: 1, bench.FaultStop: 1, bench.FaultRedisRestart: 1,
		bench.FaultThrottle: 2, bench.FaultErrors: 1, bench.FaultLatency: 5, bench.FaultReset: 5, bench.FaultStall: 1} {
		if kinds[kind] != n {
			t.Errorf("%d %s faults in a minute, want %d\n%v", kinds[kind], kind, n, a)
		}
	}
	for _, srv := range []string{"kinesis", "dynamodb", "redis", "s3", "postgres"} {
		if !targets[bench.FaultLatency][srv] || !targets[bench.FaultReset][srv] {
			t.Errorf("server %s gets no latency or no reset", srv)
		}
	}
	if !targets[bench.FaultThrottle]["kinesis"] || !targets[bench.FaultThrottle]["dynamodb"] {
		t.Error("no throttling burst on Kinesis or on DynamoDB")
	}
	if n := len(bench.ChaosSchedule(7, 3*time.Minute, failover, workers)); n < 3*len(a)-3 {
		t.Errorf("a 3-minute schedule has %d faults, a 1-minute one %d", n, len(a))
	}
}

// The chaos scenario (about 60 s of load plus the drain): 3 consume and 2 archive workers under faults
// drawn from a seed (CLICKFLEET_CHAOS_SEED, default 1), reading in CLICKFLEET_CHAOS_READ_MODE (polling,
// the default in make test, or efo), then every session, per-user count, last
// access, name and lake record checked against the oracle. Throttling bursts on Kinesis must find the
// workers backing off — GetRecords calls per second under the burst below Kinesis' per-shard limit —
// and every record caught up after it.
func TestChaosScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of load: not in -short")
	}
	kin, ddb, s3c := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.S3(t)
	testenv.Redis(t) // the stack is up, so redis-server is installed
	seed := uint64(1)
	if v := os.Getenv("CLICKFLEET_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CLICKFLEET_CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	mode := cmp.Or(os.Getenv("CLICKFLEET_CHAOS_READ_MODE"), "polling")
	if mode == "efo" {
		testenv.KinesisFanOut(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const shards = 4
	res, err := bench.Chaos(ctx, kin, ddb, bench.ChaosConfig{Binary: testenv.Binary(t), Seed: seed, Shards: shards,
		KinesisURL: os.Getenv("AWS_ENDPOINT_URL_KINESIS"), DynamoDBURL: os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"),
		S3URL: os.Getenv("AWS_ENDPOINT_URL_S3"), PostgresDSN: testenv.PostgresDSN(t), S3: s3c, LogDir: t.TempDir(),
		ReadMode: mode, EFOURL: os.Getenv("CLICKFLEET_EFO_ENDPOINT"), Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	var sb testWriter
	if err := bench.WriteChaos(&sb, res); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + string(sb))
	if res.Produced < 1000 || res.Sessions < 100 || res.Objects == 0 {
		t.Fatalf("too little happened to check anything: %+v", res)
	}
	kinesisBursts := 0
	for _, th := range res.Throttles {
		if th.CatchUpSeconds < 0 {
			t.Errorf("throttling burst on %s at %s: the workers never caught up", th.Service, th.At)
		}
		if th.Service != "kinesis" || mode == "efo" { // efo's reads are not calls the HTTP layer throttles
			continue
		}
		kinesisBursts++
		// Under a full throttle each reader's SDK call makes 3 attempts with the SDK's backoff, then the
		// reader pauses 200 ms doubling: about 1.5 calls/s per reader, 8 readers (4 shards, 2
		// applications) ≈ 12/s. A loop without backoff makes hundreds. The bound is Kinesis' own limit of
		// 5 GetRecords/s per shard, which the fleet must stay under while it is throttled. (The ratio to
		// the unthrottled rate is reported, not asserted: race-built workers on 2 shared cores poll
		// slower than production ones, so it depends on the machine.)
		if limit := 5 * float64(shards); th.During > limit {
			t.Errorf("throttling burst at %s: %.1f GetRecords calls/s under the burst (%.1f/s before), over Kinesis' %0.f/s for %d shards: no backoff",
				th.At, th.During, th.Before, limit, shards)
		}
		if th.During == 0 { // every lease lost to an overlapping DynamoDB fault, say: nothing to compare
			t.Logf("throttling burst at %s: no GetRecords call under the burst (no shard held)", th.At)
		}
	}
	if kinesisBursts == 0 && mode == "polling" {
		t.Fatal("no throttling burst on Kinesis was measured")
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
