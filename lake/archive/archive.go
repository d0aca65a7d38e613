package archive

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/crashpoint"
	"github.com/clickfleet/clickfleet/internal/retry"
)

// S3API is the part of the S3 client the archive uses; *s3.Client has it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

// Locator locates addresses in bulk; *geo.Resolver implements it. LookupAll answers every address given
// (StatusUnavailable for those it could not locate in time) and may block up to its lookup timeout.
type Locator interface {
	LookupAll(ctx context.Context, ips []string) map[string]geo.Location
}

// RedisClient is the part of go-redis the names lookup uses; *redis.Client has it.
type RedisClient interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// FatalError is an S3 error that repeats on every attempt (retry.IsPermanent): a missing bucket, denied
// access, bad credentials. It names the location, so that the caller can name the setting.
type FatalError struct {
	Location Location
	Err      error
}

func (e *FatalError) Error() string { return fmt.Sprintf("%s: %v", e.Location, e.Err) }
func (e *FatalError) Unwrap() error { return e.Err }

// Archiver makes the archive's processors and tracks their health. Create it with New; use NewProcessor as
// the consumer.ProcessorFactory. Safe for concurrent use.
type Archiver struct {
	cfg     Config
	api     S3API
	m       *metrics
	log     *zap.Logger
	crash   func() // internal/crashpoint's after-put point; nil outside crash-point builds
	failing atomic.Int64
	fatal   chan error
	once    sync.Once

	encoders chan *encoder // idle encoders, the memory of encodes (a few, kept across GCs)
}

// New checks cfg and registers the metrics. It does no I/O and starts no goroutines.
func New(api S3API, cfg Config) (*Archiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("archive: register metrics: %w", err)
	}
	return &Archiver{cfg: cfg, api: api, m: m, log: cfg.Logger.Named("archive"), crash: crashpoint.At(crashpoint.AfterPut),
		fatal: make(chan error, 1), encoders: make(chan *encoder, runtime.GOMAXPROCS(0))}, nil
}

// Check asks S3 for each configured bucket (HeadBucket), retrying transient failures a few times. A
// missing bucket or denied access is a *FatalError; the process should not start.
func (a *Archiver) Check(ctx context.Context) error {
	seen := map[string]bool{}
	for _, l := range []Location{a.cfg.Raw, a.cfg.Events, a.cfg.Errors} {
		if seen[l.Bucket] {
			continue
		}
		seen[l.Bucket] = true
		err := retry.Do(ctx, retry.Policy{Backoff: a.cfg.Backoff, Attempts: 5}, func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, a.cfg.PutTimeout)
			defer cancel()
			_, err := a.api.HeadBucket(cctx, &s3.HeadBucketInput{Bucket: aws.String(l.Bucket)})
			return notFoundAsBucket(err)
		})
		if err != nil {
			if retry.IsPermanent(err) {
				return &FatalError{Location: l, Err: err}
			}
			return fmt.Errorf("%s: %w", l, err)
		}
	}
	return nil
}

// notFoundAsBucket makes HeadBucket's bodiless 404 ("NotFound") a permanent NoSuchBucket.
func notFoundAsBucket(err error) error {
	if err != nil && isNotFound(err) {
		return retry.Permanent(fmt.Errorf("no such bucket: %w", err))
	}
	return err
}

// Fatal delivers the first permanent error a processor met (at most one); the process should stop.
func (a *Archiver) Fatal() <-chan error { return a.fatal }

func (a *Archiver) reportFatal(err error) {
	a.once.Do(func() {
		a.log.Error("permanent S3 error; the archive cannot go on", zap.Error(err))
		a.fatal <- err
	})
}

// Healthy reports whether no shard is waiting on failing S3 calls now.
func (a *Archiver) Healthy() bool { return a.failing.Load() == 0 }

// NewProcessor returns the processor of one holding period of shardID; it is a consumer.ProcessorFactory.
func (a *Archiver) NewProcessor(shardID string) consumer.Processor {
	return &processor{a: a, cfg: &a.cfg, shard: shardID, log: a.log.With(zap.String("shard_id", shardID)), stop: make(chan struct{})}
}

var errNoHolder = errors.New("archive: processor not initialized")
