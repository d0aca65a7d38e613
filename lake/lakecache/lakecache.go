package lakecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lake"
)

// S3API is the part of the S3 client Sync uses; *s3.Client has it.
type S3API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// DefaultConcurrency is how many objects Sync fetches at once unless told otherwise.
const DefaultConcurrency = 8

// DefaultDir returns the default cache directory: clickfleet/lake under the user's cache directory
// (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on Linux).
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "clickfleet", "lake"), nil
}

// Config configures a Cache.
type Config struct {
	// Dir is the cache directory. Required.
	Dir string
	// Concurrency is how many objects are fetched at once. Default: 8.
	Concurrency int
	// Check, when set, inspects each fetched object's file (a Parquet footer, say); an error marks the
	// object unreadable: it stays in the copy with the reason, and Object.Invalid reports it until its
	// ETag changes. Default: nil (every object is readable).
	Check func(key, path string) error
	// Progress, when set, receives a progress line every ProgressInterval ("\r"-rewritten, for a
	// terminal) and a final one. Default: nil (none).
	Progress io.Writer
	// ProgressInterval paces Progress. Default: 250ms.
	ProgressInterval time.Duration
	// Backoff paces retries of failed S3 calls. Default: 100ms doubling to 5s.
	Backoff retry.Backoff
	// Attempts bounds the calls of one List or Get. Default: 5.
	Attempts int
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Validate fills in defaults and returns a *settings.Error for the first bad field.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return settings.Invalid("Dir", "is required")
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		return settings.Invalid("Concurrency", "must be 1..256, got %d", c.Concurrency)
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 250 * time.Millisecond
	}
	if c.Attempts == 0 {
		c.Attempts = 5
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Cache is a local copy of lake objects. Create it with New. Syncs of different tables may run at once;
// two processes syncing the same partitions at once are safe (renames are atomic) but do the work twice.
type Cache struct {
	cfg Config
	api S3API
	log *zap.Logger
}

// New checks cfg. It does no I/O.
func New(api S3API, cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cache{cfg: cfg, api: api, log: cfg.Logger.Named("lakecache")}, nil
}

// Object is one object of the copy.
type Object struct {
	Key  string
	Path string // the local file
	Size int64
	ETag string
	Hour time.Time // the hour partition
	// Invalid is why Check refused the object; nil when it is readable.
	Invalid error
}

// Result is what a Sync found and did.
type Result struct {
	// Objects are the partitions' objects in key order, readable or not.
	Objects []Object
	// Fetched objects were downloaded; Cached ones were already there with their ETag.
	Fetched, Cached int
	// FetchedBytes is the size of the fetched objects.
	FetchedBytes int64
	// Removed counts local files of listed partitions that are no longer in S3 (or were left partial).
	Removed int
}

// Files returns the paths of the readable objects.
func (r Result) Files() []string {
	var out []string
	for _, o := range r.Objects {
		if o.Invalid == nil {
			out = append(out, o.Path)
		}
	}
	return out
}

// Invalid returns the objects Check refused.
func (r Result) Invalid() []Object {
	var out []Object
	for _, o := range r.Objects {
		if o.Invalid != nil {
			out = append(out, o)
		}
	}
	return out
}

// record is what the cache stores about one object, beside it.
type record struct {
	ETag    string `json:"etag"`
	Size    int64  `json:"size"`
	Invalid string `json:"invalid,omitempty"`
}

// Path returns the local file of bucket/key.
func (c *Cache) Path(bucket, key string) string {
	return filepath.Join(c.cfg.Dir, bucket, filepath.FromSlash(key))
}

func (c *Cache) recordPath(bucket, key string) string {
	return filepath.Join(c.cfg.Dir, ".objects", bucket, filepath.FromSlash(key)+".json")
}

// Sync brings the copy of the objects under s3://bucket/prefix whose hour partition is in [from, to) up
// to date (a zero from or to leaves that side open) and returns them. Hours are UTC. It fails when a
// listing or a fetch fails after its retries; objects fetched before then stay in the copy.
func (c *Cache) Sync(ctx context.Context, bucket, prefix string, from, to time.Time) (Result, error) {
	listed, err := c.list(ctx, bucket, prefix, from, to)
	if err != nil {
		return Result{}, err
	}
	res := Result{Objects: listed}
	var todo []int
	for i := range res.Objects {
		o := &res.Objects[i]
		o.Path = c.Path(bucket, o.Key)
		if rec, ok := c.cached(bucket, *o); ok {
			if rec.Invalid != "" {
				o.Invalid = errors.New(rec.Invalid)
			}
			res.Cached++
			continue
		}
		todo = append(todo, i)
	}
	var total int64
	for _, i := range todo {
		total += res.Objects[i].Size
	}
	var done, doneBytes atomic.Int64
	stop := c.progress(bucket+"/"+prefix, len(todo), total, &done, &doneBytes)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for _, i := range todo {
		o := &res.Objects[i]
		g.Go(func() error {
			if err := c.fetch(gctx, bucket, o); err != nil {
				return err
			}
			done.Add(1)
			doneBytes.Add(o.Size)
			return nil
		})
	}
	err = g.Wait()
	stop()
	res.Fetched, res.FetchedBytes = int(done.Load()), doneBytes.Load()
	if err != nil {
		return res, err
	}
	res.Removed = c.prune(bucket, prefix, from, to, res.Objects)
	c.log.Info("synced", zap.String("bucket", bucket), zap.String("prefix", prefix), zap.Int("objects", len(res.Objects)),
		zap.Int("fetched", res.Fetched), zap.Int("cached", res.Cached), zap.Int64("fetched_bytes", res.FetchedBytes), zap.Int("removed", res.Removed))
	return res, nil
}

// inRange reports whether hour h is in [from, to).
func inRange(h, from, to time.Time) bool {
	return (from.IsZero() || !h.Before(from.Truncate(time.Hour))) && (to.IsZero() || h.Before(to))
}

// listPrefixes returns the prefixes to list: one per UTC day of a bounded range up to 400 days, else the
// table's prefix.
func listPrefixes(prefix string, from, to time.Time) []string {
	if from.IsZero() || to.IsZero() || to.Sub(from) > 400*24*time.Hour {
		return []string{prefix}
	}
	var out []string
	for d := from.UTC().Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		out = append(out, prefix+strings.TrimSuffix(lake.HourPrefix(d), "hour=00/"))
	}
	return out
}

func (c *Cache) policy() retry.Policy {
	return retry.Policy{Backoff: c.cfg.Backoff, Attempts: c.cfg.Attempts, OnRetry: func(attempt int, pause time.Duration, err error) {
		c.log.Warn("S3 call failed; retrying", zap.Int("attempt", attempt), zap.Duration("pause", pause), zap.Error(err))
	}}
}

func (c *Cache) list(ctx context.Context, bucket, prefix string, from, to time.Time) ([]Object, error) {
	var out []Object
	for _, p := range listPrefixes(prefix, from, to) {
		var token *string
		for {
			var page *s3.ListObjectsV2Output
			err := retry.Do(ctx, c.policy(), func(ctx context.Context) error {
				var err error
				page, err = c.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(p), ContinuationToken: token})
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, p, err)
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				h, ok := lake.PartitionHour(strings.TrimPrefix(key, prefix))
				if !ok || !inRange(h, from, to) || strings.HasSuffix(key, "/") {
					continue
				}
				out = append(out, Object{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), Hour: h})
			}
			if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
				break
			}
			token = page.NextContinuationToken
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// cached returns the stored record of o when the local file is there with o's ETag and size.
func (c *Cache) cached(bucket string, o Object) (record, bool) {
	b, err := os.ReadFile(c.recordPath(bucket, o.Key))
	if err != nil {
		return record{}, false
	}
	var rec record
	if json.Unmarshal(b, &rec) != nil || rec.ETag != o.ETag || rec.Size != o.Size {
		return record{}, false
	}
	if st, err := os.Stat(c.Path(bucket, o.Key)); err != nil || st.Size() != o.Size {
		return record{}, false
	}
	return rec, true
}

// writeAtomic writes data to path through a temporary file in its directory and a rename.
func writeAtomic(path string, write func(f *os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this finds nothing
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// fetch downloads o (if its ETag still matches the listing), checks it and records it.
func (c *Cache) fetch(ctx context.Context, bucket string, o *Object) error {
	err := retry.Do(ctx, c.policy(), func(ctx context.Context) error {
		out, err := c.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key), IfMatch: aws.String(o.ETag)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		return writeAtomic(o.Path, func(f *os.File) error {
			n, err := io.Copy(f, out.Body)
			if err == nil && n != o.Size {
				err = fmt.Errorf("got %d bytes, listed %d", n, o.Size)
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("get s3://%s/%s: %w", bucket, o.Key, err)
	}
	rec := record{ETag: o.ETag, Size: o.Size}
	if c.cfg.Check != nil {
		if err := c.cfg.Check(o.Key, o.Path); err != nil {
			o.Invalid = err
			rec.Invalid = err.Error()
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeAtomic(c.recordPath(bucket, o.Key), func(f *os.File) error { _, err := f.Write(b); return err })
}

// prune removes local files (and their records) of the listed partitions that the listing no longer
// has, partial downloads included. It returns how many it removed.
func (c *Cache) prune(bucket, prefix string, from, to time.Time, objs []Object) int {
	keep := make(map[string]bool, len(objs))
	for _, o := range objs {
		keep[o.Path] = true
	}
	root := c.Path(bucket, prefix)
	removed := 0
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || keep[path] {
			return nil
		}
		rel, err := filepath.Rel(c.Path(bucket, ""), path)
		if err != nil {
			return nil
		}
		key := filepath.ToSlash(rel)
		h, ok := lake.PartitionHour(strings.TrimPrefix(key, prefix))
		if !ok || !inRange(h, from, to) {
			return nil
		}
		if os.Remove(path) == nil {
			removed++
		}
		_ = os.Remove(c.recordPath(bucket, key))
		return nil
	})
	return removed
}

// progress starts the progress line of a sync of n objects of total bytes; the returned func stops it
// and writes the final line.
func (c *Cache) progress(what string, n int, total int64, done, doneBytes *atomic.Int64) func() {
	if c.cfg.Progress == nil || n == 0 {
		return func() {}
	}
	line := func(end string) {
		fmt.Fprintf(c.cfg.Progress, "\rsync s3://%s: %d/%d objects, %.1f/%.1f MiB%s", what, done.Load(), n,
			float64(doneBytes.Load())/(1<<20), float64(total)/(1<<20), end)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				line("")
			}
		}
	})
	return func() {
		close(stop)
		wg.Wait()
		line("\n")
	}
}

// MarkInvalid records that the copy of bucket/key cannot be read (a reader found it corrupt beyond what
// Check saw): later syncs report it in Object.Invalid until its ETag changes. It fails when the object
// is not in the copy.
func (c *Cache) MarkInvalid(bucket, key string, reason error) error {
	p := c.recordPath(bucket, key)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	rec.Invalid = reason.Error()
	if b, err = json.Marshal(rec); err != nil {
		return err
	}
	return writeAtomic(p, func(f *os.File) error { _, err := f.Write(b); return err })
}
