package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
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
	// The actors processor's session rows: DynamoDB items written, sessions started, and their ratio.
	SessionWrites           int64   `json:"session_writes,omitempty"`
	Sessions                int64   `json:"sessions,omitempty"`
	SessionWritesPerSession float64 `json:"session_writes_per_session,omitempty"`
	// The archive processor's objects: raw input bytes, stored bytes by kind, object count and PUTs per
	// minute per shard during the drain.
	Archive *ArchiveFigures `json:"archive,omitempty"`
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

// Drain pre-fills a fresh stream, times a bare GetRecords loop over it, then times cfg.Workers consumer
// workers draining the same records (they start from TRIM_HORIZON on a fresh lease table).
func Drain(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg DrainConfig) (DrainResult, error) {
	if cfg.Shards == 0 {
		cfg.Shards = 8
	}
	if cfg.Records == 0 {
		cfg.Records = 100000
	}
	if cfg.Users == 0 {
		cfg.Users = 10000
	}
	if cfg.Writers == 0 {
		cfg.Writers = 4
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Processor == "" {
		cfg.Processor = "noop"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	switch cfg.Processor {
	case "noop":
	case "archive":
		if cfg.S3 == nil {
			return DrainResult{}, errors.New("drain: the archive processor needs S3")
		}
	case "count", "actors", "lambda":
		if cfg.Redis == nil {
			return DrainResult{}, fmt.Errorf("drain: the %s processor needs Redis", cfg.Processor)
		}
	default:
		return DrainResult{}, fmt.Errorf("drain: processor must be noop, count, actors, lambda or archive, not %q", cfg.Processor)
	}
	id := fmt.Sprintf("bench-drain-%d", time.Now().UnixNano())
	res := DrainResult{Scenario: "drain", When: time.Now().UTC(), Stream: id, Shards: cfg.Shards, Records: cfg.Records,
		Users: cfg.Users, Workers: cfg.Workers, Processor: cfg.Processor, CPUs: runtime.NumCPU()}
	if _, err := provision.EnsureStream(ctx, kin, id, cfg.Shards); err != nil {
		return res, err
	}
	defer kin.DeleteStream(context.WithoutCancel(ctx), &kinesis.DeleteStreamInput{StreamName: aws.String(id)})
	if err := lease.EnsureTable(ctx, ddb, id); err != nil {
		return res, err
	}
	defer ddb.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(id)})

	want, took, err := prefill(ctx, kin, id, cfg.Records, cfg.Users, cfg.Writers, 1, progress)
	if err != nil {
		return res, err
	}
	res.PrefillSeconds, res.PrefillRate = took.Seconds(), float64(cfg.Records)/took.Seconds()
	progress(fmt.Sprintf("pre-filled %d records in %.1fs (%.0f/s)", cfg.Records, took.Seconds(), res.PrefillRate))

	took, err = bareRead(ctx, kin, id, cfg.Records)
	if err != nil {
		return res, err
	}
	res.BareSeconds, res.BareRate = took.Seconds(), float64(cfg.Records)/took.Seconds()
	progress(fmt.Sprintf("bare GetRecords loop: %.2fs (%.0f records/s)", took.Seconds(), res.BareRate))

	prefix := id + ":"
	var factory consumer.ProcessorFactory
	var actorsFactory *actors.Factory
	var processed atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	count := func(n int) {
		if processed.Add(int64(n)) >= cfg.Records {
			once.Do(func() { close(reached) })
		}
	}
	switch cfg.Processor {
	case "noop":
		factory = func(string) consumer.Processor { return &noopProcessor{count: count} }
	case "archive":
		bucket := strings.ToLower(id)
		if _, err := provision.EnsureBucket(ctx, cfg.S3, bucket); err != nil {
			return res, err
		}
		res.Archive = &ArchiveFigures{Bucket: bucket}
		acfg := archive.Config{Stream: id, Raw: archive.Location{Bucket: bucket, Prefix: "raw/"}, Events: archive.Location{Bucket: bucket, Prefix: "events/"},
			Errors: archive.Location{Bucket: bucket, Prefix: "errors/"}, BufferBytes: cfg.ArchiveBufferBytes, Logger: cfg.Logger, Prefix: prefix}
		if cfg.Redis != nil {
			acfg.Names = cfg.Redis
		}
		if cfg.ArchiveGeo != nil {
			acfg.Geo = cfg.ArchiveGeo
		}
		a, err := archive.New(cfg.S3, acfg)
		if err != nil {
			return res, err
		}
		factory = func(shard string) consumer.Processor {
			return &countingProcessor{Processor: a.NewProcessor(shard), count: count}
		}
	case "count":
		inner, err := usercount.Factory(usercount.Config{Redis: cfg.Redis, Prefix: prefix, Logger: cfg.Logger})
		if err != nil {
			return res, err
		}
		factory = func(shard string) consumer.Processor {
			return &countingProcessor{Processor: inner(shard), count: count}
		}
	case "actors", "lambda":
		sessions := id + "-sessions"
		if _, err := provision.EnsureSessionsTable(ctx, ddb, sessions); err != nil {
			return res, err
		}
		defer ddb.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(sessions)})
		if cfg.Processor == "lambda" {
			factory = func(string) consumer.Processor {
				return &lambdaProcessor{rdb: cfg.Redis, ddb: ddb, table: sessions, prefix: prefix, count: count}
			}
			break
		}
		for _, out := range []string{id + "-offers", id + "-errors"} {
			if _, err := provision.EnsureStream(ctx, kin, out, 1); err != nil {
				return res, err
			}
			defer kin.DeleteStream(context.WithoutCancel(ctx), &kinesis.DeleteStreamInput{StreamName: aws.String(out)})
		}
		f, err := actors.New(actors.Config{Stream: id, Kinesis: kin, DynamoDB: ddb, Redis: cfg.Redis, SessionsTable: sessions,
			OffersStream: id + "-offers", ErrorsStream: id + "-errors", Prefix: prefix, Logger: cfg.Logger})
		if err != nil {
			return res, err
		}
		defer f.Close()
		actorsFactory = f
		factory = func(shard string) consumer.Processor {
			return &countingProcessor{Processor: f.NewProcessor(shard), count: count}
		}
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Workers)
	start := time.Now()
	for i := range cfg.Workers {
		w, err := consumer.New(kin, ddb, consumer.Config{Stream: id, NewProcessor: factory, Logger: cfg.Logger,
			ShardSyncInterval: 10 * time.Second,
			// The clean stop that ends an actors drain writes the open sessions' rows: give it time.
			Lease: lease.Config{Table: id, WorkerID: fmt.Sprintf("bench-%d", i), TakeInterval: time.Second, ShutdownTimeout: time.Minute}})
		if err != nil {
			return res, err
		}
		wg.Go(func() { errc <- w.Run(wctx) })
	}
	select {
	case <-reached:
	case <-ctx.Done():
		stop()
		wg.Wait()
		return res, context.Cause(ctx)
	}
	var end time.Time // when the workers' work was done
	if cfg.Processor == "actors" {
		// Every record is routed; stopping the workers flushes, writes the rows of the sessions still
		// open (which would otherwise wait for their close) and checkpoints, as a fleet's clean stop
		// does: the drain ends when they have stopped, and every user's sessions must count its events.
		routed := time.Since(start)
		stop()
		wg.Wait()
		end = time.Now()
		progress(fmt.Sprintf("actors: every record routed after %.2fs; the workers stopped (open sessions' rows written, checkpointed) after %.2fs", routed.Seconds(), end.Sub(start).Seconds()))
		if err := verifySessions(ctx, ddb, id+"-sessions", want); err != nil {
			return res, err
		}
		res.Verified = true
		res.SessionWrites, res.Sessions = actorsFactory.SessionWrites()
		if res.Sessions > 0 {
			res.SessionWritesPerSession = float64(res.SessionWrites) / float64(res.Sessions)
		}
		progress(fmt.Sprintf("actors: %d session rows written for %d sessions (%.2f per session)", res.SessionWrites, res.Sessions, res.SessionWritesPerSession))
	}
	if cfg.Processor == "archive" {
		// Every record is buffered; stopping the workers stores the rest and checkpoints (the clean stop
		// of a real fleet), so the drain ends when the last object is durable.
		buffered := time.Since(start)
		stop()
		wg.Wait()
		progress(fmt.Sprintf("archive: every record buffered after %.2fs, stored and the workers stopped after %.2fs", buffered.Seconds(), time.Since(start).Seconds()))
		res.Archive.BufferedSeconds = buffered.Seconds()
	}
	if end.IsZero() {
		end = time.Now()
	}
	took = end.Sub(start)
	stop()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return res, err
		}
	}
	res.WorkerSeconds, res.WorkerRate = took.Seconds(), float64(cfg.Records)/took.Seconds()
	res.Ratio = res.WorkerRate / res.BareRate
	progress(fmt.Sprintf("%d worker(s), %s processor: %.2fs (%.0f records/s, %.0f%% of the bare loop)",
		cfg.Workers, cfg.Processor, took.Seconds(), res.WorkerRate, 100*res.Ratio))
	if cfg.Processor == "archive" {
		if err := measureLake(ctx, cfg.S3, res.Archive, cfg.Records); err != nil {
			return res, err
		}
		res.Verified = true
		res.Archive.PutsPerMinShard = float64(res.Archive.Objects) / took.Minutes() / float64(cfg.Shards)
		progress(fmt.Sprintf("archive: %d objects; Parquet %.1f%% of the raw JSON bytes (%d of %d); raw gzip %d bytes",
			res.Archive.Objects, 100*res.Archive.ParquetVsRaw, res.Archive.ParquetBytes, res.Archive.InputBytes, res.Archive.RawBytes))
	}
	if cfg.Processor == "count" {
		if err := verifyCounts(ctx, cfg.Redis, prefix, want); err != nil {
			return res, err
		}
		res.Verified = true
		cleanup(ctx, cfg.Redis, prefix)
	}
	return res, nil
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
