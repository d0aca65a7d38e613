package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer/usercount"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lease"
)

// Scenarios run by Load.
const (
	Steady   = "steady"    // a fixed rate for the duration: throughput, latency, resources
	Failover = "failover"  // kill -9 one worker a third of the way in: the stall and the recovery
	Reshard  = "reshard"   // double the shards a third of the way in (UpdateShardCount)
	ScaleOut = "scale-out" // start with one worker and add the others at even intervals
)

// LoadConfig describes a scenario with worker processes under a steady load.
type LoadConfig struct {
	Scenario string
	// Binary is the clickfleet executable the workers run. Required.
	Binary string
	// RedisURL is given to the workers; Redis is used to see probes and verify counts. Required.
	RedisURL string
	Redis    *redis.Client
	Shards   int32         // Default: 4
	Workers  int           // Default: 2
	Rate     float64       // events/s produced. Default: 1000
	Duration time.Duration // of the load. Default: 30s
	Users    int           // Default: 1000
	// Processor is what the workers run: "actors" (sessions in DynamoDB, user state in Redis; verified
	// by summing each user's session event counts) or "count" (per-user counts in Redis). Default: actors.
	Processor string
	// WorkerArgs are passed to every `clickfleet consume` after the ones Load sets (timings …).
	WorkerArgs []string
	// ProbeInterval is how often a probe event is put to measure put → visible latency. Default: 250ms.
	ProbeInterval time.Duration
	// LogDir receives the workers' logs. Default: a temporary directory.
	LogDir   string
	Progress func(string)
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Point is one sample of the run, Seconds after the load started.
type Point struct {
	Seconds  float64            `json:"t"`
	Produced float64            `json:"produced"` // cumulative
	Consumed float64            `json:"consumed"` // cumulative, summed over every worker that ran (replays count again)
	Held     map[string]float64 `json:"held"`
	CPU      map[string]float64 `json:"cpu_percent"`
	RSSMiB   map[string]float64 `json:"rss_mib"`
}

// Mark is something the scenario did, Seconds after the load started.
type Mark struct {
	Seconds float64 `json:"t"`
	What    string  `json:"what"`
}

// LoadResult is what a scenario measured.
type LoadResult struct {
	Scenario     string    `json:"scenario"`
	When         time.Time `json:"when"`
	CPUs         int       `json:"cpus"`
	Shards       int32     `json:"shards"`
	Workers      int       `json:"workers"`
	Rate         float64   `json:"target_rate"`
	Seconds      float64   `json:"seconds"`
	Produced     int64     `json:"produced"`
	ProducedRate float64   `json:"produced_per_s"`
	ConsumedRate float64   `json:"consumed_per_s"` // over the load, records counted by the workers
	Processor    string    `json:"processor"`
	// Latency is put → the user's state visible in Redis (last access for actors, the count for count).
	Latency Percentiles `json:"put_to_state"`
	// SessionLatency is put → the session row visible in DynamoDB (actors).
	SessionLatency Percentiles `json:"put_to_session_row"`
	// RecoverySeconds: failover — kill until every shard is held again; reshard — the reshard call until
	// every open shard is held.
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`
	// StallSeconds is the longest run of samples during which the consumed count did not move while the
	// producer had records outstanding.
	StallSeconds  float64 `json:"stall_seconds"`
	DrainSeconds  float64 `json:"drain_seconds"` // after the load stopped, until every record was counted
	Verified      bool    `json:"counts_verified"`
	AvgCPUPercent float64 `json:"avg_worker_cpu_percent"` // mean over workers and samples
	MaxCPUPercent float64 `json:"max_worker_cpu_percent"` // highest one-second sample
	MaxRSSMiB     float64 `json:"max_worker_rss_mib"`
	Marks         []Mark  `json:"marks"`
	Points        []Point `json:"points"`
}

func (c *LoadConfig) defaults() error {
	if c.Binary == "" || c.RedisURL == "" || c.Redis == nil {
		return errors.New("load: Binary, RedisURL and Redis are required")
	}
	switch c.Scenario {
	case Steady, Failover, Reshard, ScaleOut:
	default:
		return fmt.Errorf("load: scenario must be %s, %s, %s or %s, not %q", Steady, Failover, Reshard, ScaleOut, c.Scenario)
	}
	if c.Processor == "" {
		c.Processor = "actors"
	}
	if c.Processor != "actors" && c.Processor != "count" {
		return fmt.Errorf("load: processor must be actors or count, not %q", c.Processor)
	}
	if c.Shards == 0 {
		c.Shards = 4
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.Scenario == Failover && c.Workers < 2 {
		return errors.New("load: failover needs at least 2 workers")
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Users == 0 {
		c.Users = 1000
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 250 * time.Millisecond
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	if c.LogDir == "" {
		d, err := os.MkdirTemp("", "clickfleet-bench-")
		if err != nil {
			return err
		}
		c.LogDir = d
	}
	return nil
}

// Load runs one scenario: a fresh stream and lease table, worker processes, a producer at cfg.Rate with
// probe events for latency, samples every second, the scenario's action, and at the end a wait until every
// record is counted exactly once (verified against what the producer stored).
func Load(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg LoadConfig) (LoadResult, error) {
	if err := cfg.defaults(); err != nil {
		return LoadResult{}, err
	}
	id := fmt.Sprintf("bench-%s-%d", cfg.Scenario, time.Now().UnixNano())
	prefix := id + ":"
	res := LoadResult{Scenario: cfg.Scenario, When: time.Now().UTC(), CPUs: runtime.NumCPU(), Shards: cfg.Shards,
		Workers: cfg.Workers, Rate: cfg.Rate, Processor: cfg.Processor}
	if _, err := provision.EnsureStream(ctx, kin, id, cfg.Shards); err != nil {
		return res, err
	}
	defer kin.DeleteStream(context.WithoutCancel(ctx), &kinesis.DeleteStreamInput{StreamName: aws.String(id)})
	if err := lease.EnsureTable(ctx, ddb, id); err != nil {
		return res, err
	}
	defer ddb.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(id)})
	defer cleanup(context.WithoutCancel(ctx), cfg.Redis, prefix)

	args := []string{"--stream", id, "--lease-table", id, "--redis-url", cfg.RedisURL, "--key-prefix", prefix, "--processor", cfg.Processor}
	if cfg.Processor == "actors" {
		// The run's own sessions table and output streams.
		if _, err := provision.EnsureSessionsTable(ctx, ddb, id+"-sessions"); err != nil {
			return res, err
		}
		defer ddb.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(id + "-sessions")})
		for _, out := range []string{id + "-offers", id + "-errors"} {
			if _, err := provision.EnsureStream(ctx, kin, out, 1); err != nil {
				return res, err
			}
			defer kin.DeleteStream(context.WithoutCancel(ctx), &kinesis.DeleteStreamInput{StreamName: aws.String(out)})
		}
		args = append(args, "--sessions-table", id+"-sessions", "--offers-stream", id+"-offers", "--errors-stream", id+"-errors")
	}
	fleet := &Fleet{Binary: cfg.Binary, LogDir: cfg.LogDir, Args: append(args, cfg.WorkerArgs...)}
	defer fleet.StopAll()
	first := cfg.Workers
	if cfg.Scenario == ScaleOut {
		first = 1
	}
	for i := 1; i <= first; i++ {
		if err := fleet.Start(ctx, fmt.Sprintf("w%d", i)); err != nil {
			return res, err
		}
	}
	cfg.Progress(fmt.Sprintf("%s: %d worker(s) ready on %d shards; producing %.0f events/s for %s (worker logs in %s)",
		cfg.Scenario, first, cfg.Shards, cfg.Rate, cfg.Duration, cfg.LogDir))

	// Producer and probes.
	var (
		mu       sync.Mutex
		want     = map[string]int64{}
		produced atomic.Int64
	)
	gen := clickgen.DefaultConfig(clickgen.ProfilePOC)
	gen.Count, gen.Duration, gen.Users, gen.Rate, gen.TimeScale = 0, cfg.Duration, cfg.Users, cfg.Rate, 1
	gen.BatchSize = max(1, min(500, int(cfg.Rate/10)))
	start := time.Now()
	genDone := make(chan error, 1)
	go func() {
		_, err := clickgen.Run(ctx, gen, &tallySink{inner: &clickgen.StreamSink{API: kin, Stream: id}, mu: &mu, want: want, sent: &produced}, nil)
		genDone <- err
	}()
	pctx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	probes := &prober{kin: kin, rdb: cfg.Redis, ddb: ddb, stream: id, prefix: prefix, putUntil: start.Add(cfg.Duration)}
	if cfg.Processor == "actors" {
		probes.sessions = id + "-sessions"
	}
	var probeWG sync.WaitGroup
	probeWG.Go(func() { probes.run(pctx, cfg.ProbeInterval) })

	// Sampling and the scenario's action.
	var marks []Mark
	mark := func(what string) {
		marks = append(marks, Mark{Seconds: time.Since(start).Seconds(), What: what})
		cfg.Progress(fmt.Sprintf("%5.1fs %s", time.Since(start).Seconds(), what))
	}
	var points []Point
	lastCPU := map[string]WorkerSample{}
	lastRecords := map[string]float64{} // a stopped worker's last count still counts
	sample := func() Point {
		s := fleet.Sample(ctx)
		p := Point{Seconds: time.Since(start).Seconds(), Produced: float64(produced.Load() + probes.sent.Load()),
			Held: map[string]float64{}, CPU: map[string]float64{}, RSSMiB: map[string]float64{}}
		for w, v := range s {
			lastRecords[w] = v.Records
			p.Held[w] = v.Held
			if prev, ok := lastCPU[w]; ok {
				p.CPU[w] = 100 * (v.CPUSeconds - prev.CPUSeconds) / v.At.Sub(prev.At).Seconds()
			}
			lastCPU[w] = v
			p.RSSMiB[w] = v.RSSBytes / (1 << 20)
		}
		for _, n := range lastRecords {
			p.Consumed += n
		}
		points = append(points, p)
		return p
	}
	action := start.Add(cfg.Duration / 3)
	acted := false
	var actedAt time.Time
	nextWorker := first + 1
	var addEvery time.Duration
	if cfg.Scenario == ScaleOut && cfg.Workers > 1 {
		addEvery = cfg.Duration / time.Duration(cfg.Workers)
	}
	openShards := int(cfg.Shards)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var genErr error
	loadOver := false
	for !loadOver {
		select {
		case <-ctx.Done():
			return res, context.Cause(ctx)
		case genErr = <-genDone:
			loadOver = true
		case <-tick.C:
		}
		p := sample()
		held := 0.0
		for _, h := range p.Held {
			held += h
		}
		switch {
		case cfg.Scenario == Failover && !acted && time.Now().After(action):
			ids := fleet.IDs()
			victim := ids[len(ids)-1]
			fleet.Kill(victim)
			acted, actedAt = true, time.Now()
			mark("kill -9 " + victim)
		case cfg.Scenario == Reshard && !acted && time.Now().After(action):
			target := cfg.Shards * 2
			if _, err := kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(id), TargetShardCount: aws.Int32(target),
				ScalingType: ktypes.ScalingTypeUniformScaling}); err != nil {
				return res, fmt.Errorf("reshard: %w", err)
			}
			acted, actedAt, openShards = true, time.Now(), int(target)
			mark(fmt.Sprintf("UpdateShardCount %d → %d", cfg.Shards, target))
		case cfg.Scenario == ScaleOut && addEvery > 0 && nextWorker <= cfg.Workers && time.Since(start) >= addEvery*time.Duration(nextWorker-1):
			w := fmt.Sprintf("w%d", nextWorker)
			if err := fleet.Start(ctx, w); err != nil {
				return res, err
			}
			nextWorker++
			mark("start " + w)
		case acted && res.RecoverySeconds == 0 && int(held) >= openShards:
			res.RecoverySeconds = time.Since(actedAt).Seconds()
			mark(fmt.Sprintf("all %d shards held again", openShards))
		}
	}
	if genErr != nil {
		return res, fmt.Errorf("producer: %w", genErr)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Produced = produced.Load() + probes.sent.Load()
	res.ProducedRate = float64(res.Produced) / res.Seconds
	if len(points) > 0 {
		res.ConsumedRate = points[len(points)-1].Consumed / res.Seconds
	}
	mark("load stopped")

	// Wait until everything is counted, then verify.
	mu.Lock()
	expect := make(map[string]int64, len(want)+len(probes.users))
	for u, n := range want {
		expect[u] = n
	}
	mu.Unlock()
	for _, u := range probes.usersSent() {
		expect[u]++
	}
	drainStart := time.Now()
	deadline := drainStart.Add(2*cfg.Duration + time.Minute)
	verify := func() error { return verifyCounts(ctx, cfg.Redis, prefix, expect) }
	if cfg.Processor == "actors" {
		verify = func() error { return verifySessions(ctx, ddb, id+"-sessions", expect) }
	}
	for {
		err := verify()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("after the load: %w", err)
		}
		select {
		case <-ctx.Done():
			return res, context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
		if time.Since(drainStart) > time.Second {
			sample()
		}
	}
	res.DrainSeconds = time.Since(drainStart).Seconds()
	res.Verified = true
	sample()
	stopProbes()
	probeWG.Wait()
	res.Latency, res.SessionLatency = probes.percentiles()
	res.StallSeconds = longestStall(points)
	cpuSamples := 0
	for _, p := range points {
		for _, c := range p.CPU {
			res.MaxCPUPercent = math.Max(res.MaxCPUPercent, c)
			res.AvgCPUPercent += c
			cpuSamples++
		}
		for _, r := range p.RSSMiB {
			res.MaxRSSMiB = math.Max(res.MaxRSSMiB, r)
		}
	}
	if cpuSamples > 0 {
		res.AvgCPUPercent /= float64(cpuSamples)
	}
	res.Marks, res.Points = marks, points
	return res, nil
}

// longestStall is the longest time the consumed count stood still while records were outstanding.
func longestStall(points []Point) float64 {
	longest, since := 0.0, -1.0
	for i := 1; i < len(points); i++ {
		p, prev := points[i], points[i-1]
		if p.Consumed <= prev.Consumed && p.Produced > p.Consumed {
			if since < 0 {
				since = prev.Seconds
			}
			longest = math.Max(longest, p.Seconds-since)
		} else {
			since = -1
		}
	}
	return longest
}

// prober puts one event for a fresh user every interval and records when its count appears in Redis.
type prober struct {
	kin    KinesisAPI
	rdb    *redis.Client
	ddb    DynamoDBAPI
	stream string
	prefix string
	// sessions, when set, is the sessions table: the actor processor's probes are visible when the user
	// hash has last_access_ms, and their session row is timed too.
	sessions string
	// putUntil ends the puts; checking goes on until the context ends.
	putUntil time.Time

	mu     sync.Mutex
	users  []string
	putAt  map[string]time.Time
	seenAt map[string]time.Time
	rowAt  map[string]time.Time
	sent   atomic.Int64
}

func (p *prober) usersSent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.users)
}

func (p *prober) run(ctx context.Context, every time.Duration) {
	p.putAt, p.seenAt, p.rowAt = map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
	put := time.NewTicker(every)
	defer put.Stop()
	check := time.NewTicker(20 * time.Millisecond)
	defer check.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-put.C:
			if time.Now().After(p.putUntil) {
				continue
			}
			n++
			user := fmt.Sprintf("probe-%d", n)
			data := fmt.Sprintf(`{"timestamp":%q,"user_id":%q,"event_name":"Search","user_ip":""}`, time.Now().UTC().Format("2006-01-02 15:04:05.000000"), user)
			at := time.Now()
			if _, err := p.kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: []ktypes.PutRecordsRequestEntry{{
				PartitionKey: aws.String(user), Data: []byte(data)}}}); err != nil {
				continue // a failed probe is not counted; nothing to verify for it
			}
			p.mu.Lock()
			p.users = append(p.users, user)
			p.putAt[user] = at
			p.mu.Unlock()
			p.sent.Add(1)
		case <-check.C:
			p.mu.Lock()
			var waiting []string
			for _, u := range p.users {
				if _, ok := p.seenAt[u]; !ok {
					waiting = append(waiting, u)
				}
			}
			p.mu.Unlock()
			if len(waiting) == 0 {
				continue
			}
			pipe := p.rdb.Pipeline()
			cmds := make([]*redis.BoolCmd, len(waiting))
			for i, u := range waiting {
				if p.sessions != "" {
					cmds[i] = pipe.HExists(ctx, session.UserKey(p.prefix, u), session.FieldLastAccess)
				} else {
					cmds[i] = pipe.HExists(ctx, usercount.Key(p.prefix, u), "count")
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				continue
			}
			now := time.Now()
			p.mu.Lock()
			for i, u := range waiting {
				if cmds[i].Val() {
					p.seenAt[u] = now
				}
			}
			p.mu.Unlock()
			p.checkRows(ctx)
		}
	}
}

// checkRows looks up the session rows of probes not seen in DynamoDB yet (at most a few per tick).
func (p *prober) checkRows(ctx context.Context) {
	if p.sessions == "" {
		return
	}
	p.mu.Lock()
	var waiting []string
	for _, u := range p.users {
		if _, ok := p.rowAt[u]; !ok && len(waiting) < 8 {
			waiting = append(waiting, u)
		}
	}
	p.mu.Unlock()
	for _, u := range waiting {
		out, err := p.ddb.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(p.sessions), IndexName: aws.String(provision.SessionsUserIndex),
			KeyConditionExpression:    aws.String("user_id = :u"),
			ExpressionAttributeValues: map[string]dtypes.AttributeValue{":u": &dtypes.AttributeValueMemberS{Value: u}}})
		if err != nil || out.Count == 0 {
			continue
		}
		p.mu.Lock()
		p.rowAt[u] = time.Now()
		p.mu.Unlock()
	}
}

func (p *prober) percentiles() (state, rows Percentiles) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percentilesOf(p.seenAt), p.percentilesOf(p.rowAt)
}

func (p *prober) percentilesOf(seenAt map[string]time.Time) Percentiles {
	var ms []float64
	for u, at := range p.putAt {
		if seen, ok := seenAt[u]; ok {
			ms = append(ms, float64(seen.Sub(at).Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	q := func(f float64) float64 {
		if len(ms) == 0 {
			return 0
		}
		return ms[min(len(ms)-1, int(math.Ceil(f*float64(len(ms))))-1)]
	}
	out := Percentiles{N: len(ms), P50: q(0.5), P95: q(0.95), P99: q(0.99)}
	if len(ms) > 0 {
		out.Max = ms[len(ms)-1]
	}
	return out
}
