package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	// Archive, with S3, also runs one `clickfleet archive` worker on the stream (its own lease table and
	// bucket; objects rolled every ArchiveInterval, default 5s): the probes time put → archived too, and
	// the run ends once it has stored every record. ArchiveArgs are passed to it after the ones Load sets.
	Archive         bool
	S3              S3API
	ArchiveInterval time.Duration
	ArchiveArgs     []string
	// LimitsURL is the stack's Kinesis limits layer (http://host:port, deploy/local/stack up --aws-limits);
	// when set, steady counts the read calls it refused on the run's stream.
	LimitsURL string
	// Warmup is how long after the load starts steady starts counting the applications' Kinesis calls
	// (until the load's end). Default: a quarter of Duration, at most 15s.
	Warmup time.Duration
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
	// ArchiveLatency is put → the archive worker's checkpoint past the probe, its objects stored (Archive).
	ArchiveLatency Percentiles `json:"put_to_archived"`
	// Reads are the applications' Kinesis calls over the load after the warm-up (steady).
	Reads *ReadFigures `json:"reads,omitempty"`
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
	setDefault(&c.Processor, "actors")
	if c.Processor != "actors" && c.Processor != "count" {
		return fmt.Errorf("load: processor must be actors or count, not %q", c.Processor)
	}
	setDefault(&c.Shards, 4)
	setDefault(&c.Workers, 2)
	if c.Scenario == Failover && c.Workers < 2 {
		return errors.New("load: failover needs at least 2 workers")
	}
	setDefault(&c.Rate, 1000)
	setDefault(&c.Duration, 30*time.Second)
	setDefault(&c.Users, 1000)
	setDefault(&c.ProbeInterval, 250*time.Millisecond)
	setDefault(&c.Warmup, min(15*time.Second, c.Duration/4))
	setDefault(&c.ArchiveInterval, 5*time.Second)
	if c.Archive && c.S3 == nil {
		return errors.New("load: Archive needs S3")
	}
	c.Progress = orNop(c.Progress)
	var err error
	c.LogDir, err = orTempDir(c.LogDir, "clickfleet-bench-")
	return err
}

// Load runs one scenario: a fresh stream and lease table, worker processes, a producer at cfg.Rate with
// probe events for latency, samples every second, the scenario's action, and at the end a wait until every
// record is counted exactly once (verified against what the producer stored).
func Load(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg LoadConfig) (LoadResult, error) {
	if err := cfg.defaults(); err != nil {
		return LoadResult{}, err
	}
	r := newLoadRun(ctx, kin, ddb, cfg)
	defer r.stack.release()
	if err := runSteps(ctx, r.setUp, r.startWorkers); err != nil {
		return r.res, err
	}
	r.startLoad(ctx)
	defer r.stopProbes()
	if err := runSteps(ctx, r.runLoad, r.drain); err != nil {
		return r.res, err
	}
	r.summarize()
	return r.res, nil
}

// loadRun is one run of Load: its resources, its workers, the producer and the probes, and what it
// measured so far.
type loadRun struct {
	scenarioRun
	cfg     LoadConfig
	res     LoadResult
	fleet   *Fleet
	archive *Fleet // Archive's one worker; nil without
	first   int    // workers started before the load
	table   string // the actors processor's sessions table; "" for count

	start        time.Time // of the load
	mu           sync.Mutex
	want         map[string]int64 // per user, the events the producer stored (under mu)
	produced     atomic.Int64
	genDone      chan error
	probes       *prober
	cancelProbes context.CancelFunc
	probeWG      sync.WaitGroup

	samples loadSamples
	action  loadAction
	reads   readWindow
}

func newLoadRun(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg LoadConfig) *loadRun {
	id := fmt.Sprintf("bench-%s-%d", cfg.Scenario, time.Now().UnixNano())
	return &loadRun{scenarioRun: newScenarioRun(ctx, kin, ddb, id), cfg: cfg,
		res: LoadResult{Scenario: cfg.Scenario, When: time.Now().UTC(), CPUs: runtime.NumCPU(), Shards: cfg.Shards,
			Workers: cfg.Workers, Rate: cfg.Rate, Processor: cfg.Processor}}
}

// setUp creates the run's stream, lease table and (actors) sessions table and output streams, and the
// fleet's configuration; the release deletes them and the run's Redis keys.
func (r *loadRun) setUp(ctx context.Context) error {
	if err := r.stack.stream(ctx, r.id, r.cfg.Shards); err != nil {
		return err
	}
	if err := r.stack.leaseTable(ctx, r.id); err != nil {
		return err
	}
	r.stack.onRelease(func(ctx context.Context) { cleanup(ctx, r.cfg.Redis, r.prefix) })
	args := []string{"--stream", r.id, "--lease-table", r.id, "--redis-url", r.cfg.RedisURL, "--key-prefix", r.prefix, "--processor", r.cfg.Processor}
	if r.cfg.Processor == "actors" {
		// The run's own sessions table and output streams.
		t, err := r.stack.actorTargets(ctx, r.id, r.cfg.Shards)
		if err != nil {
			return err
		}
		r.table = t.sessions
		args = append(args, t.args()...)
	}
	r.fleet = &Fleet{Binary: r.cfg.Binary, LogDir: r.cfg.LogDir, Args: append(args, r.cfg.WorkerArgs...)}
	r.stack.stopFleets(r.fleet)
	if r.cfg.Archive {
		return r.setUpArchive(ctx)
	}
	return nil
}

// startWorkers starts the workers that run from the beginning: all of them, or one for scale-out.
func (r *loadRun) startWorkers(ctx context.Context) error {
	r.first = r.cfg.Workers
	if r.cfg.Scenario == ScaleOut {
		r.first = 1
	}
	for i := 1; i <= r.first; i++ {
		if err := r.fleet.Start(ctx, fmt.Sprintf("w%d", i)); err != nil {
			return err
		}
	}
	if r.archive != nil {
		if err := r.archive.Start(ctx, "a1"); err != nil {
			return err
		}
	}
	r.cfg.Progress(fmt.Sprintf("%s: %d worker(s) ready on %d shards; producing %.0f events/s for %s (worker logs in %s)",
		r.cfg.Scenario, r.first, r.cfg.Shards, r.cfg.Rate, r.cfg.Duration, r.cfg.LogDir))
	return nil
}

// startLoad starts the producer at cfg.Rate for cfg.Duration and the probes.
func (r *loadRun) startLoad(ctx context.Context) {
	r.want = map[string]int64{}
	gen := clickgen.DefaultConfig(clickgen.ProfilePOC)
	gen.Count, gen.Duration, gen.Users, gen.Rate, gen.TimeScale = 0, r.cfg.Duration, r.cfg.Users, r.cfg.Rate, 1
	gen.BatchSize = 500 // a put takes what is due, so the rate holds while PutRecords is slow
	r.start = time.Now()
	r.genDone = make(chan error, 1)
	go func() {
		sink := &tallySink{inner: &clickgen.StreamSink{API: r.kin, Stream: r.id}, mu: &r.mu, want: r.want, sent: &r.produced}
		_, err := clickgen.Run(ctx, gen, sink, nil)
		r.genDone <- err
	}()
	pctx, cancel := context.WithCancel(ctx)
	r.cancelProbes = cancel
	r.probes = &prober{kin: r.kin, rdb: r.cfg.Redis, ddb: r.ddb, stream: r.id, prefix: r.prefix, putUntil: r.start.Add(r.cfg.Duration),
		sessions: r.table, archiveLeases: r.archiveLeases()}
	r.probeWG.Go(func() { r.probes.run(pctx, r.cfg.ProbeInterval) })
	r.samples = newLoadSamples(r.start, r.cfg.Progress)
	r.action = newLoadAction(r.cfg, r.first, r.start)
}

// stopProbes ends the probes and waits for them.
func (r *loadRun) stopProbes() {
	r.cancelProbes()
	r.probeWG.Wait()
}

// runLoad samples every second and acts the scenario until the producer is done.
func (r *loadRun) runLoad(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var genErr error
	for loadOver := false; !loadOver; {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case genErr = <-r.genDone:
			loadOver = true
		case <-tick.C:
		}
		if err := r.act(ctx, r.sample(ctx)); err != nil {
			return err
		}
		if err := r.observeReads(ctx); err != nil {
			return err
		}
	}
	if genErr != nil {
		return fmt.Errorf("producer: %w", genErr)
	}
	if err := r.endReads(ctx); err != nil {
		return err
	}
	r.res.Seconds = time.Since(r.start).Seconds()
	r.res.Produced = r.produced.Load() + r.probes.sent.Load()
	r.res.ProducedRate = float64(r.res.Produced) / r.res.Seconds
	if n := len(r.samples.points); n > 0 {
		r.res.ConsumedRate = r.samples.points[n-1].Consumed / r.res.Seconds
	}
	r.samples.mark("load stopped")
	return nil
}

// sample reads every worker and adds a point.
func (r *loadRun) sample(ctx context.Context) Point {
	return r.samples.add(r.fleet.Sample(ctx), float64(r.produced.Load()+r.probes.sent.Load()))
}

// act does the scenario's action when it is due, and notes the recovery after it.
func (r *loadRun) act(ctx context.Context, p Point) error {
	a := &r.action
	switch {
	case r.cfg.Scenario == Failover && !a.acted && time.Now().After(a.at):
		r.killOne()
	case r.cfg.Scenario == Reshard && !a.acted && time.Now().After(a.at):
		return r.reshard(ctx)
	case r.cfg.Scenario == ScaleOut && a.addEvery > 0 && a.nextWorker <= r.cfg.Workers &&
		time.Since(r.start) >= a.addEvery*time.Duration(a.nextWorker-1):
		return r.addWorker(ctx)
	case a.acted && r.res.RecoverySeconds == 0 && int(p.held()) >= a.openShards:
		r.res.RecoverySeconds = time.Since(a.actedAt).Seconds()
		r.samples.mark(fmt.Sprintf("all %d shards held again", a.openShards))
	}
	return nil
}

// killOne kills the last worker started (failover).
func (r *loadRun) killOne() {
	ids := r.fleet.IDs()
	victim := ids[len(ids)-1]
	r.fleet.Kill(victim)
	r.action.acted, r.action.actedAt = true, time.Now()
	r.samples.mark("kill -9 " + victim)
}

// reshard doubles the stream's shards (reshard).
func (r *loadRun) reshard(ctx context.Context) error {
	target := r.cfg.Shards * 2
	if _, err := r.kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(r.id), TargetShardCount: aws.Int32(target),
		ScalingType: ktypes.ScalingTypeUniformScaling}); err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	r.action.acted, r.action.actedAt, r.action.openShards = true, time.Now(), int(target)
	r.samples.mark(fmt.Sprintf("UpdateShardCount %d → %d", r.cfg.Shards, target))
	return nil
}

// addWorker starts the next worker (scale-out).
func (r *loadRun) addWorker(ctx context.Context) error {
	w := fmt.Sprintf("w%d", r.action.nextWorker)
	if err := r.fleet.Start(ctx, w); err != nil {
		return err
	}
	r.action.nextWorker++
	r.samples.mark("start " + w)
	return nil
}

// drain waits until every record the producer and the probes stored is counted exactly once, sampling
// on; it gives up 2 × the duration + 1 minute after the load.
func (r *loadRun) drain(ctx context.Context) error {
	expect := r.expected()
	drainStart := time.Now()
	deadline := drainStart.Add(2*r.cfg.Duration + time.Minute)
	for {
		err := r.verify(ctx, expect)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the load: %w", err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
		if time.Since(drainStart) > time.Second {
			r.sample(ctx)
		}
	}
	r.res.DrainSeconds = time.Since(drainStart).Seconds()
	r.res.Verified = true
	r.sample(ctx)
	return nil
}

// expected is each user's event count: what the producer stored, and one per probe.
func (r *loadRun) expected() map[string]int64 {
	probes := r.probes.usersSent()
	r.mu.Lock()
	expect := make(map[string]int64, len(r.want)+len(probes))
	for u, n := range r.want {
		expect[u] = n
	}
	r.mu.Unlock()
	for _, u := range probes {
		expect[u]++
	}
	return expect
}

// verify compares the counts in Redis (count) or the session rows' event counts (actors) with expect,
// and checks that the archive (Archive) has stored every record.
func (r *loadRun) verify(ctx context.Context, expect map[string]int64) error {
	if err := r.archived(ctx); err != nil {
		return err
	}
	if r.cfg.Processor == "actors" {
		return verifySessions(ctx, r.ddb, r.table, expect)
	}
	return verifyCounts(ctx, r.cfg.Redis, r.prefix, expect)
}

// summarize fills in the latencies (once the probes have stopped), the longest stall, the resources
// and the points.
func (r *loadRun) summarize() {
	r.stopProbes()
	r.res.Latency, r.res.SessionLatency = r.probes.percentiles()
	r.res.ArchiveLatency = r.probes.archivedPercentiles()
	points := r.samples.points
	r.res.StallSeconds = longestStall(points)
	r.res.AvgCPUPercent, r.res.MaxCPUPercent, r.res.MaxRSSMiB = workerResources(points)
	r.res.Marks, r.res.Points = r.samples.marks, points
}

// loadAction is the state of the scenario's action: when it is due, whether it was done, the next
// worker to add (scale-out) and the shards that must be held to call it recovered.
type loadAction struct {
	at         time.Time // failover and reshard: a third of the way in
	acted      bool
	actedAt    time.Time
	nextWorker int
	addEvery   time.Duration // scale-out; 0: none
	openShards int
}

func newLoadAction(cfg LoadConfig, first int, start time.Time) loadAction {
	a := loadAction{at: start.Add(cfg.Duration / 3), nextWorker: first + 1, openShards: int(cfg.Shards)}
	if cfg.Scenario == ScaleOut && cfg.Workers > 1 {
		a.addEvery = cfg.Duration / time.Duration(cfg.Workers)
	}
	return a
}

// loadSamples are a run's points and marks, and the previous readings the next point is computed from.
type loadSamples struct {
	start       time.Time
	progress    func(string)
	points      []Point
	marks       []Mark
	lastCPU     map[string]WorkerSample
	lastRecords map[string]float64 // a stopped worker's last count still counts
}

func newLoadSamples(start time.Time, progress func(string)) loadSamples {
	return loadSamples{start: start, progress: progress, lastCPU: map[string]WorkerSample{}, lastRecords: map[string]float64{}}
}

// mark notes something the scenario did, now.
func (s *loadSamples) mark(what string) {
	s.marks = append(s.marks, Mark{Seconds: time.Since(s.start).Seconds(), What: what})
	s.progress(fmt.Sprintf("%5.1fs %s", time.Since(s.start).Seconds(), what))
}

// add makes a point of the workers' readings and the count produced so far, and appends it.
func (s *loadSamples) add(readings map[string]WorkerSample, produced float64) Point {
	p := Point{Seconds: time.Since(s.start).Seconds(), Produced: produced,
		Held: map[string]float64{}, CPU: map[string]float64{}, RSSMiB: map[string]float64{}}
	for w, v := range readings {
		s.lastRecords[w] = v.Records
		p.Held[w] = v.Held
		if prev, ok := s.lastCPU[w]; ok {
			p.CPU[w] = 100 * (v.CPUSeconds - prev.CPUSeconds) / v.At.Sub(prev.At).Seconds()
		}
		s.lastCPU[w] = v
		p.RSSMiB[w] = v.RSSBytes / (1 << 20)
	}
	for _, n := range s.lastRecords {
		p.Consumed += n
	}
	s.points = append(s.points, p)
	return p
}

// held is the number of leases the workers hold.
func (p Point) held() float64 {
	held := 0.0
	for _, h := range p.Held {
		held += h
	}
	return held
}

// workerResources are the mean and the highest CPU percentage over workers and samples, and the highest
// RSS.
func workerResources(points []Point) (avgCPU, maxCPU, maxRSS float64) {
	cpuSamples := 0
	for _, p := range points {
		for _, c := range p.CPU {
			maxCPU = math.Max(maxCPU, c)
			avgCPU += c
			cpuSamples++
		}
		for _, r := range p.RSSMiB {
			maxRSS = math.Max(maxRSS, r)
		}
	}
	if cpuSamples > 0 {
		avgCPU /= float64(cpuSamples)
	}
	return avgCPU, maxCPU, maxRSS
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

// prober puts one event for a fresh user every interval and records when it shows: its user state in Redis,
// its session row in DynamoDB (sessions), the archive's checkpoint past it (archiveLeases).
type prober struct {
	kin    KinesisAPI
	rdb    *redis.Client
	ddb    DynamoDBAPI
	stream string
	prefix string
	// sessions, when set, is the sessions table: the actor processor's probes are visible when the user
	// hash has last_access_ms, and their session row is timed too.
	sessions string
	// archiveLeases, when set, is the archive's lease table: a probe is archived once the archive has
	// checkpointed its shard at or past it (a checkpoint follows the objects' PUTs).
	archiveLeases string
	// putUntil ends the puts; checking goes on until the context ends.
	putUntil time.Time

	mu         sync.Mutex
	users      []string
	putAt      map[string]time.Time
	seenAt     map[string]time.Time
	rowAt      map[string]time.Time
	placed     map[string]probePlace // where each probe was stored
	archivedAt map[string]time.Time
	next       atomic.Int64 // the last probe's number
	sent       atomic.Int64
}

// probePlace is where a probe was stored.
type probePlace struct {
	shard string
	pos   lease.Checkpoint
}

func (p *prober) usersSent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.users)
}

// run puts a probe every interval until putUntil and checks, each in its own loop so a slow check never
// delays a put, until ctx ends: the user state in Redis every 20 ms, the session rows and the archive's
// checkpoints (when set) every 100 ms.
func (p *prober) run(ctx context.Context, every time.Duration) {
	p.putAt, p.seenAt, p.rowAt = map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
	p.placed, p.archivedAt = map[string]probePlace{}, map[string]time.Time{}
	var wg sync.WaitGroup
	wg.Go(func() { repeat(ctx, every, p.put) })
	if p.sessions != "" {
		wg.Go(func() { repeat(ctx, 100*time.Millisecond, p.checkRows) })
	}
	if p.archiveLeases != "" {
		wg.Go(func() { repeat(ctx, 100*time.Millisecond, p.checkArchived) })
	}
	repeat(ctx, 20*time.Millisecond, p.checkState)
	wg.Wait()
}

// repeat calls f every interval until ctx ends.
func repeat(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// put puts one probe event for a fresh user (none after putUntil) and notes when and where it was stored.
func (p *prober) put(ctx context.Context) {
	if time.Now().After(p.putUntil) {
		return
	}
	user := fmt.Sprintf("probe-%d", p.next.Add(1))
	data := fmt.Sprintf(`{"timestamp":%q,"user_id":%q,"event_name":"Search","user_ip":""}`, time.Now().UTC().Format("2006-01-02 15:04:05.000000"), user)
	at := time.Now()
	out, err := p.kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: []ktypes.PutRecordsRequestEntry{{
		PartitionKey: aws.String(user), Data: []byte(data)}}})
	if err != nil || len(out.Records) != 1 || out.Records[0].ErrorCode != nil {
		return // a failed probe is not counted; nothing to verify for it
	}
	p.mu.Lock()
	p.users = append(p.users, user)
	p.putAt[user] = at
	p.placed[user] = probePlace{shard: aws.ToString(out.Records[0].ShardId), pos: lease.Checkpoint{SequenceNumber: aws.ToString(out.Records[0].SequenceNumber)}}
	p.mu.Unlock()
	p.sent.Add(1)
}

// checkState notes the probes whose user state has appeared in Redis: last access (actors) or the count.
func (p *prober) checkState(ctx context.Context) {
	p.mu.Lock()
	var waiting []string
	for _, u := range p.users {
		if _, ok := p.seenAt[u]; !ok {
			waiting = append(waiting, u)
		}
	}
	p.mu.Unlock()
	if len(waiting) == 0 {
		return
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
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, u := range waiting {
		if cmds[i].Val() {
			p.seenAt[u] = now
		}
	}
}

// checkRows looks up the session rows of probes not seen in DynamoDB yet (at most a few per tick).
func (p *prober) checkRows(ctx context.Context) {
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

// checkArchived notes the probes whose shard the archive has checkpointed at or past them.
func (p *prober) checkArchived(ctx context.Context) {
	leases, err := lease.NewTable(p.ddb, p.archiveLeases).List(ctx)
	if err != nil {
		return
	}
	done := map[string]lease.Checkpoint{}
	for _, l := range leases {
		done[l.Key] = l.Checkpoint
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for u, pl := range p.placed {
		if _, ok := p.archivedAt[u]; !ok && done[pl.shard].Compare(pl.pos) >= 0 {
			p.archivedAt[u] = now
		}
	}
}

// unarchived is how many probes the archive has not checkpointed yet.
func (p *prober) unarchived() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.placed) - len(p.archivedAt)
}

// archivedPercentiles is put → archived (no probes without an archive).
func (p *prober) archivedPercentiles() Percentiles {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percentilesOf(p.archivedAt)
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
