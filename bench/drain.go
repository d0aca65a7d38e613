package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/consumer/usercount"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lease"
)

// DynamoDBAPI is the part of the DynamoDB client the benchmarks use.
type DynamoDBAPI interface {
	lease.DynamoDBAPI
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	DeleteTable(ctx context.Context, in *dynamodb.DeleteTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
}

// DrainConfig describes a drain run. Zero values take the defaults noted.
type DrainConfig struct {
	Shards  int32 // shards of the fresh stream. Default: 8
	Records int64 // records pre-filled. Default: 100000
	Users   int   // distinct users. Default: 10000
	Writers int   // concurrent PutRecords loops for the pre-fill. Default: 4
	Workers int   // consumer workers (in this process). Default: 1
	// Processor is "noop" (the consumer alone: read, de-aggregate, hand over, checkpoint), "count"
	// (per-user counts in Redis, exactly once; verified), "actors" (the production processor: sessions in
	// DynamoDB, user state in Redis; timed until every session row is written, verified) or "lambda" (the
	// seeds' per-record design as a baseline: one Redis write per event, one PutItem per session start).
	// Default: noop.
	Processor string
	Redis     *redis.Client // for the count processor, and the archive's names
	// S3 is for the archive processor ("archive": the lake writer at its default buffering, timed until
	// the workers have stored every record and stopped, verified by reading the objects back). A bucket
	// is created per run and left with its objects for inspection.
	S3 S3API
	// ArchiveBufferBytes is the archive's buffer size. Default: archive.DefaultBufferBytes (3 MiB).
	ArchiveBufferBytes int
	// ArchiveGeo locates the archive's events (nil: no location).
	ArchiveGeo archive.Locator
	// Servers are the local servers whose CPU time the run reports, per phase (StackServers reads the
	// local stack's). Default: none.
	Servers []Server
	// CPUProfile receives a CPU profile (pprof) of the workers' phase; nil: none. Profiling costs a few
	// per cent of CPU, which the phase's CPU figures then include.
	CPUProfile io.Writer
	Logger     *zap.Logger
	Progress   func(string) // progress lines; nil: none
}

// DrainResult is what a drain run measured.
type DrainResult struct {
	Scenario       string    `json:"scenario"`
	When           time.Time `json:"when"`
	Stream         string    `json:"stream"`
	Shards         int32     `json:"shards"`
	Records        int64     `json:"records"`
	Users          int       `json:"users"`
	Workers        int       `json:"workers"`
	Processor      string    `json:"processor"`
	CPUs           int       `json:"cpus"`
	PrefillSeconds float64   `json:"prefill_seconds"`
	PrefillRate    float64   `json:"prefill_records_per_s"`
	BareSeconds    float64   `json:"bare_reader_seconds"`
	BareRate       float64   `json:"bare_reader_records_per_s"`
	WorkerSeconds  float64   `json:"workers_seconds"`
	WorkerRate     float64   `json:"workers_records_per_s"`
	Ratio          float64   `json:"workers_vs_bare"`
	Verified       bool      `json:"counts_verified"`
	// CPU time (user + system) of this process — where the bare loop and the workers run — in each phase,
	// in total and per record, and the workers' over the bare loop's.
	BareCPUSeconds      float64 `json:"bare_cpu_seconds"`
	BareCPUPerRecord    float64 `json:"bare_cpu_ns_per_record"`
	WorkersCPUSeconds   float64 `json:"workers_cpu_seconds"`
	WorkersCPUPerRecord float64 `json:"workers_cpu_ns_per_record"`
	CPURatio            float64 `json:"workers_cpu_vs_bare"`
	// Servers' CPU time in each phase (DrainConfig.Servers).
	Servers []ServerCPU `json:"servers_cpu,omitempty"`
	// The actors processor's session rows: DynamoDB items written, sessions started, and their ratio.
	SessionWrites           int64   `json:"session_writes,omitempty"`
	Sessions                int64   `json:"sessions,omitempty"`
	SessionWritesPerSession float64 `json:"session_writes_per_session,omitempty"`
	// The archive processor's objects: raw input bytes, stored bytes by kind, object count and PUTs per
	// minute per shard during the drain.
	Archive *ArchiveFigures `json:"archive,omitempty"`
}

// ServerCPU is a local server's CPU time (user + system, with its child processes) in a drain's phases.
type ServerCPU struct {
	Name                string  `json:"name"`
	PID                 int     `json:"pid"`
	BareCPUSeconds      float64 `json:"bare_cpu_seconds"`
	WorkersCPUSeconds   float64 `json:"workers_cpu_seconds"`
	WorkersCPUPerRecord float64 `json:"workers_cpu_ns_per_record"`
}

// ArchiveFigures are what the archive processor stored in a drain.
type ArchiveFigures struct {
	Bucket          string  `json:"bucket"`
	InputBytes      int64   `json:"raw_input_bytes"`
	RawBytes        int64   `json:"raw_gzip_bytes"`
	ParquetBytes    int64   `json:"parquet_bytes"`
	ParquetRows     int64   `json:"parquet_rows"`
	RawLines        int64   `json:"raw_lines"`
	Objects         int     `json:"objects"`
	ParquetVsRaw    float64 `json:"parquet_vs_raw_json"`
	PutsPerMinShard float64 `json:"puts_per_minute_per_shard"`
	BufferedSeconds float64 `json:"all_buffered_seconds"`
}

func (c *DrainConfig) defaults() error {
	setDefault(&c.Shards, 8)
	setDefault(&c.Records, 100000)
	setDefault(&c.Users, 10000)
	setDefault(&c.Writers, 4)
	setDefault(&c.Workers, 1)
	setDefault(&c.Processor, "noop")
	setDefault(&c.Logger, zap.NewNop())
	c.Progress = orNop(c.Progress)
	switch c.Processor {
	case "noop":
	case "archive":
		if c.S3 == nil {
			return errors.New("drain: the archive processor needs S3")
		}
	case "count", "actors", "lambda":
		if c.Redis == nil {
			return fmt.Errorf("drain: the %s processor needs Redis", c.Processor)
		}
	default:
		return fmt.Errorf("drain: processor must be noop, count, actors, lambda or archive, not %q", c.Processor)
	}
	return nil
}

// Drain pre-fills a fresh stream, times a bare GetRecords loop over it, then times cfg.Workers consumer
// workers draining the same records (they start from TRIM_HORIZON on a fresh lease table). Both run in
// this process, one after the other: each phase's CPU is this process's in it, beside cfg.Servers'.
func Drain(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg DrainConfig) (DrainResult, error) {
	if err := cfg.defaults(); err != nil {
		return DrainResult{}, err
	}
	r := newDrainRun(ctx, kin, ddb, cfg)
	defer r.stack.release()
	err := runSteps(ctx, r.setUp, r.prefill, r.bareRead, r.newProcessors, r.runWorkers, r.verify)
	return r.res, err
}

// drainRun is one run of Drain: its resources, the records stored, the processors and what it measured.
type drainRun struct {
	scenarioRun
	cfg     DrainConfig
	res     DrainResult
	want    map[string]int64 // per user, the records the pre-fill stored
	counter *drainCounter
	factory consumer.ProcessorFactory
	actors  *actors.Factory // the actors processor's, for its session writes
	took    time.Duration   // the workers' drain
}

func newDrainRun(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg DrainConfig) *drainRun {
	id := fmt.Sprintf("bench-drain-%d", time.Now().UnixNano())
	return &drainRun{scenarioRun: newScenarioRun(ctx, kin, ddb, id), cfg: cfg, counter: newDrainCounter(cfg.Records),
		res: DrainResult{Scenario: "drain", When: time.Now().UTC(), Stream: id, Shards: cfg.Shards, Records: cfg.Records,
			Users: cfg.Users, Workers: cfg.Workers, Processor: cfg.Processor, CPUs: runtime.NumCPU()}}
}

// setUp creates the run's stream and lease table; the release deletes them.
func (r *drainRun) setUp(ctx context.Context) error {
	if err := r.stack.stream(ctx, r.id, r.cfg.Shards); err != nil {
		return err
	}
	return r.stack.leaseTable(ctx, r.id)
}

// prefill stores cfg.Records records and times it.
func (r *drainRun) prefill(ctx context.Context) error {
	want, took, err := prefill(ctx, r.kin, r.id, r.cfg.Records, r.cfg.Users, r.cfg.Writers, 1, r.cfg.Progress)
	if err != nil {
		return err
	}
	r.want = want
	r.res.PrefillSeconds, r.res.PrefillRate = took.Seconds(), float64(r.cfg.Records)/took.Seconds()
	r.cfg.Progress(fmt.Sprintf("pre-filled %d records in %.1fs (%.0f/s)", r.cfg.Records, took.Seconds(), r.res.PrefillRate))
	return nil
}

// bareRead times the baseline, a bare GetRecords loop over the stream, and measures its CPU.
func (r *drainRun) bareRead(ctx context.Context) error {
	mark, err := r.cpuMark()
	if err != nil {
		return err
	}
	took, err := bareRead(ctx, r.kin, r.id, r.cfg.Records)
	if err != nil {
		return err
	}
	used, err := r.cpuSince(mark)
	if err != nil {
		return err
	}
	r.res.BareSeconds, r.res.BareRate = took.Seconds(), float64(r.cfg.Records)/took.Seconds()
	r.cfg.Progress(fmt.Sprintf("bare GetRecords loop: %.2fs (%.0f records/s)", took.Seconds(), r.res.BareRate))
	r.bareCPU(used)
	return nil
}

// newProcessors makes the processor factory of cfg.Processor, counting what its processors accept,
// with what it writes to.
func (r *drainRun) newProcessors(ctx context.Context) error {
	switch r.cfg.Processor {
	case "noop":
		r.factory = func(string) consumer.Processor { return &noopProcessor{count: r.counter.add} }
	case "archive":
		return r.archiveProcessors(ctx)
	case "count":
		inner, err := usercount.Factory(usercount.Config{Redis: r.cfg.Redis, Prefix: r.prefix, Logger: r.cfg.Logger})
		if err != nil {
			return err
		}
		r.factory = r.counting(inner)
	case "actors":
		return r.actorsProcessors(ctx)
	case "lambda":
		t := actorTargetsOf(r.id)
		if err := r.stack.sessionsTable(ctx, t.sessions); err != nil {
			return err
		}
		r.factory = func(string) consumer.Processor {
			return &lambdaProcessor{rdb: r.cfg.Redis, ddb: r.ddb, table: t.sessions, prefix: r.prefix, count: r.counter.add}
		}
	}
	return nil
}

// counting wraps the processors of inner in countingProcessors.
func (r *drainRun) counting(inner consumer.ProcessorFactory) consumer.ProcessorFactory {
	return func(shard string) consumer.Processor {
		return &countingProcessor{Processor: inner(shard), count: r.counter.add}
	}
}

// archiveProcessors creates the run's bucket (left with its objects for inspection) and the archive.
func (r *drainRun) archiveProcessors(ctx context.Context) error {
	bucket := strings.ToLower(r.id)
	if _, err := provision.EnsureBucket(ctx, r.cfg.S3, bucket); err != nil {
		return err
	}
	r.res.Archive = &ArchiveFigures{Bucket: bucket}
	acfg := archive.Config{Stream: r.id, Raw: archive.Location{Bucket: bucket, Prefix: "raw/"}, Events: archive.Location{Bucket: bucket, Prefix: "events/"},
		Errors: archive.Location{Bucket: bucket, Prefix: "errors/"}, BufferBytes: r.cfg.ArchiveBufferBytes, Logger: r.cfg.Logger, Prefix: r.prefix}
	if r.cfg.Redis != nil {
		acfg.Names = r.cfg.Redis
	}
	if r.cfg.ArchiveGeo != nil {
		acfg.Geo = r.cfg.ArchiveGeo
	}
	a, err := archive.New(r.cfg.S3, acfg)
	if err != nil {
		return err
	}
	r.factory = r.counting(a.NewProcessor)
	return nil
}

// actorsProcessors creates the run's sessions table and output streams and the actors processor; the
// release closes it and deletes them.
func (r *drainRun) actorsProcessors(ctx context.Context) error {
	t, err := r.stack.actorTargets(ctx, r.id, r.cfg.Shards)
	if err != nil {
		return err
	}
	f, err := actors.New(actors.Config{Stream: r.id, Kinesis: r.kin, DynamoDB: r.ddb, Redis: r.cfg.Redis, SessionsTable: t.sessions,
		OffersStream: t.offers, ErrorsStream: t.errors, Prefix: r.prefix, Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	r.stack.onRelease(func(context.Context) { f.Close() })
	r.actors = f
	r.factory = r.counting(f.NewProcessor)
	return nil
}

// runWorkers starts cfg.Workers consumer workers and times them, and measures their CPU, until every
// record is processed (for actors and archive: until they have stopped cleanly after that).
func (r *drainRun) runWorkers(ctx context.Context) error {
	mark, err := r.cpuMark()
	if err != nil {
		return err
	}
	stopProfile, err := r.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	ws, err := r.startWorkers(ctx)
	if err != nil {
		return err
	}
	select {
	case <-r.counter.reached:
	case <-ctx.Done():
		ws.halt()
		return context.Cause(ctx)
	}
	end := r.finish(ws)
	stopProfile()
	used, err := r.cpuSince(mark)
	if err != nil {
		return err
	}
	r.took = end.Sub(ws.start)
	if err := ws.firstErr(); err != nil {
		return err
	}
	r.res.WorkerSeconds, r.res.WorkerRate = r.took.Seconds(), float64(r.cfg.Records)/r.took.Seconds()
	r.res.Ratio = r.res.WorkerRate / r.res.BareRate
	r.cfg.Progress(fmt.Sprintf("%d worker(s), %s processor: %.2fs (%.0f records/s, %.0f%% of the bare loop)",
		r.cfg.Workers, r.cfg.Processor, r.took.Seconds(), r.res.WorkerRate, 100*r.res.Ratio))
	r.workersCPU(used)
	return nil
}

// startWorkers starts the workers in this process; the release stops them.
func (r *drainRun) startWorkers(ctx context.Context) (*drainWorkers, error) {
	wctx, stop := context.WithCancel(ctx)
	ws := &drainWorkers{stop: stop, errc: make(chan error, r.cfg.Workers), start: time.Now()}
	r.stack.onRelease(func(context.Context) { ws.halt() })
	for i := range r.cfg.Workers {
		w, err := consumer.New(r.kin, r.ddb, consumer.Config{Stream: r.id, NewProcessor: r.factory, Logger: r.cfg.Logger,
			ShardSyncInterval: 10 * time.Second,
			// The clean stop that ends an actors drain writes the open sessions' rows: give it time.
			Lease: lease.Config{Table: r.id, WorkerID: fmt.Sprintf("bench-%d", i), TakeInterval: time.Second, ShutdownTimeout: time.Minute}})
		if err != nil {
			return nil, err
		}
		ws.wg.Go(func() { ws.errc <- w.Run(wctx) })
	}
	return ws, nil
}

// finish ends the workers' work once every record is processed, as the processor needs, and returns
// when it was done.
func (r *drainRun) finish(ws *drainWorkers) time.Time {
	switch r.cfg.Processor {
	case "actors":
		return r.finishActors(ws)
	case "archive":
		// Every record is buffered; stopping the workers stores the rest and checkpoints (the clean stop
		// of a real fleet), so the drain ends when the last object is durable.
		buffered := time.Since(ws.start)
		ws.halt()
		r.cfg.Progress(fmt.Sprintf("archive: every record buffered after %.2fs, stored and the workers stopped after %.2fs", buffered.Seconds(), time.Since(ws.start).Seconds()))
		r.res.Archive.BufferedSeconds = buffered.Seconds()
	}
	return time.Now()
}

// finishActors stops the workers. Every record is routed; stopping the workers flushes, writes the rows
// of the sessions still open (which would otherwise wait for their close) and checkpoints, as a fleet's
// clean stop does: the drain ends when they have stopped (verify then checks the rows).
func (r *drainRun) finishActors(ws *drainWorkers) time.Time {
	routed := time.Since(ws.start)
	ws.halt()
	end := time.Now()
	r.cfg.Progress(fmt.Sprintf("actors: every record routed after %.2fs; the workers stopped (open sessions' rows written, checkpointed) after %.2fs", routed.Seconds(), end.Sub(ws.start).Seconds()))
	r.res.SessionWrites, r.res.Sessions = r.actors.SessionWrites()
	if r.res.Sessions > 0 {
		r.res.SessionWritesPerSession = float64(r.res.SessionWrites) / float64(r.res.Sessions)
	}
	r.cfg.Progress(fmt.Sprintf("actors: %d session rows written for %d sessions (%.2f per session)", r.res.SessionWrites, r.res.Sessions, r.res.SessionWritesPerSession))
	return end
}

// verify reads the lake back (archive), checks that every user's session rows count its events
// (actors), or checks the counts in Redis and deletes them (count).
func (r *drainRun) verify(ctx context.Context) error {
	switch r.cfg.Processor {
	case "actors":
		if err := verifySessions(ctx, r.ddb, actorTargetsOf(r.id).sessions, r.want); err != nil {
			return err
		}
		r.res.Verified = true
	case "archive":
		a := r.res.Archive
		if err := measureLake(ctx, r.cfg.S3, a, r.cfg.Records); err != nil {
			return err
		}
		r.res.Verified = true
		a.PutsPerMinShard = float64(a.Objects) / r.took.Minutes() / float64(r.cfg.Shards)
		r.cfg.Progress(fmt.Sprintf("archive: %d objects; Parquet %.1f%% of the raw JSON bytes (%d of %d); raw gzip %d bytes",
			a.Objects, 100*a.ParquetVsRaw, a.ParquetBytes, a.InputBytes, a.RawBytes))
	case "count":
		if err := verifyCounts(ctx, r.cfg.Redis, r.prefix, r.want); err != nil {
			return err
		}
		r.res.Verified = true
		cleanup(ctx, r.cfg.Redis, r.prefix)
	}
	return nil
}

// drainWorkers are the consumer workers of a drain, in this process.
type drainWorkers struct {
	start time.Time // when the first was started
	stop  context.CancelFunc
	wg    sync.WaitGroup
	errc  chan error // each worker's exit
}

// halt stops the workers and waits for them; it may be called again.
func (w *drainWorkers) halt() {
	w.stop()
	w.wg.Wait()
}

// firstErr halts the workers and returns the first error one of them ended with. It is called once.
func (w *drainWorkers) firstErr() error {
	w.halt()
	close(w.errc)
	for err := range w.errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// drainCounter counts the records the processors accepted and closes reached at the total.
type drainCounter struct {
	total   int64
	n       atomic.Int64
	reached chan struct{}
	once    sync.Once
}

func newDrainCounter(total int64) *drainCounter {
	return &drainCounter{total: total, reached: make(chan struct{})}
}

func (c *drainCounter) add(n int) {
	if c.n.Add(int64(n)) >= c.total {
		c.once.Do(func() { close(c.reached) })
	}
}

type noopProcessor struct {
	count func(int)
	last  *consumer.Record
	at    time.Time
}

func (p *noopProcessor) Initialize(context.Context, consumer.InitInput) error {
	p.at = time.Now()
	return nil
}
func (p *noopProcessor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	last := b.Records[len(b.Records)-1]
	p.last = &last
	p.count(len(b.Records))
	if time.Since(p.at) > 5*time.Second {
		p.at = time.Now()
		return b.Checkpointer.Checkpoint(ctx, last.SequenceNumber, last.SubSequence)
	}
	return nil
}
func (p *noopProcessor) LeaseLost(context.Context) {}
func (p *noopProcessor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return cp.CheckpointShardEnd(ctx)
}
func (p *noopProcessor) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error {
	if p.last == nil {
		return nil
	}
	return cp.Checkpoint(ctx, p.last.SequenceNumber, p.last.SubSequence)
}

// countingProcessor counts what another processor accepted.
type countingProcessor struct {
	consumer.Processor
	count func(int)
}

func (p *countingProcessor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	if err := p.Processor.ProcessRecords(ctx, b); err != nil {
		return err
	}
	p.count(len(b.Records))
	return nil
}

func verifyCounts(ctx context.Context, rdb *redis.Client, prefix string, want map[string]int64) error {
	pipe := rdb.Pipeline()
	cmds := make(map[string]*redis.StringCmd, len(want))
	for u := range want {
		cmds[u] = pipe.HGet(ctx, usercount.Key(prefix, u), "count")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("verify counts: %w", err)
	}
	for u, c := range cmds {
		n, _ := c.Int64()
		if n != want[u] {
			return fmt.Errorf("verify counts: user %s counted %d, want %d", u, n, want[u])
		}
	}
	return nil
}

func cleanup(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Unlink(ctx, keys...)
	}
}

// verifySessions checks that each user's session rows count exactly the user's events (sum of
// event_count), reading the sessions table with a consistent scan.
func verifySessions(ctx context.Context, ddb DynamoDBAPI, table string, want map[string]int64) error {
	got := make(map[string]int64, len(want))
	var start map[string]dtypes.AttributeValue
	for {
		out, err := ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return fmt.Errorf("verify sessions: %w", err)
		}
		for _, it := range out.Items {
			u, _ := it["user_id"].(*dtypes.AttributeValueMemberS)
			n, _ := it["event_count"].(*dtypes.AttributeValueMemberN)
			if u == nil || n == nil {
				continue
			}
			c, _ := strconv.ParseInt(n.Value, 10, 64)
			got[u.Value] += c
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	for u, n := range want {
		if got[u] != n {
			return fmt.Errorf("verify sessions: user %s has %d events in its sessions, want %d", u, got[u], n)
		}
	}
	return nil
}
