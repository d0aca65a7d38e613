package lakecache_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/lakecache"
)

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// failingGets fails every GetObject after the first n, permanently (as a denied key would).
type failingGets struct {
	*s3.Client
	n, calls atomic.Int64
}

func (f *failingGets) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if f.calls.Add(1) > f.n.Load() {
		return nil, retry.Permanent(errors.New("injected failure"))
	}
	return f.Client.GetObject(ctx, in, opts...)
}

// Sync mirrors a range of partitions, skips what it holds with the same ETag, fetches what changed,
// removes what disappeared and partial downloads, resumes after a failed run, and keeps Check's verdict.
func TestSync(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	keys := map[string]string{
		"lake/events/year=2026/month=12/day=01/hour=09/a.parquet": "A",
		"lake/events/year=2026/month=12/day=01/hour=10/b.parquet": "BB",
		"lake/events/year=2026/month=12/day=01/hour=10/c.parquet": "bad",
		"lake/events/year=2026/month=12/day=01/hour=11/d.parquet": "DDDD",
		"lake/events/year=2026/month=12/day=02/hour=00/e.parquet": "E",
		"lake/raw/year=2026/month=12/day=01/hour=10/b.ndjson.gz":  "raw",
		"lake/events/not-a-partition.parquet":                     "x",
	}
	for k, v := range keys {
		put(t, c, bucket, k, v)
	}
	dir := t.TempDir()
	api := &failingGets{Client: c}
	api.n.Store(2)
	var progress bytes.Buffer
	cache, err := lakecache.New(api, lakecache.Config{Dir: dir, Concurrency: 1, Progress: &progress, Attempts: 2,
		Check: func(key, path string) error {
			if b, _ := os.ReadFile(path); string(b) == "bad" {
				return errors.New("not Parquet")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	from, to := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)

	// A run that fails after two fetches keeps them; the next fetches only the rest.
	if _, err := cache.Sync(ctx, bucket, "lake/events/", from, to); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("first sync: %v, want the injected failure", err)
	}
	api.n.Store(1 << 30)
	api.calls.Store(0)
	res, err := cache.Sync(ctx, bucket, "lake/events/", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 4 || res.Fetched != 2 || res.Cached != 2 {
		t.Fatalf("second sync: %d objects, %d fetched, %d cached; want 4, 2, 2", len(res.Objects), res.Fetched, res.Cached)
	}
	if got := res.Files(); len(got) != 3 || !strings.HasSuffix(got[0], "b.parquet") {
		t.Fatalf("readable files %v", got)
	}
	if inv := res.Invalid(); len(inv) != 1 || !strings.HasSuffix(inv[0].Key, "c.parquet") || inv[0].Invalid.Error() != "not Parquet" {
		t.Fatalf("invalid objects %+v", inv)
	}
	if b, err := os.ReadFile(cache.Path(bucket, "lake/events/year=2026/month=12/day=01/hour=11/d.parquet")); err != nil || string(b) != "DDDD" {
		t.Fatalf("local copy %q %v", b, err)
	}
	if _, err := os.Stat(cache.Path(bucket, "lake/events/year=2026/month=12/day=01/hour=09/a.parquet")); !os.IsNotExist(err) {
		t.Fatalf("an hour before the range was fetched: %v", err)
	}
	if !strings.Contains(progress.String(), "/2 objects") || !strings.HasSuffix(progress.String(), "\n") {
		t.Fatalf("progress %q", progress.String())
	}

	// Nothing changed: nothing fetched; the invalid object keeps its verdict.
	api.calls.Store(0)
	if res, err = cache.Sync(ctx, bucket, "lake/events/", from, to); err != nil || res.Fetched != 0 || res.Cached != 4 || api.calls.Load() != 0 || len(res.Invalid()) != 1 {
		t.Fatalf("warm sync: %+v, %d gets, %v", res, api.calls.Load(), err)
	}

	// One object changes, one disappears, a partial download lies around: fetch one, remove two.
	put(t, c, bucket, "lake/events/year=2026/month=12/day=01/hour=10/b.parquet", "B2")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("lake/events/year=2026/month=12/day=01/hour=11/d.parquet")}); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(filepath.Dir(cache.Path(bucket, "lake/events/year=2026/month=12/day=01/hour=10/b.parquet")), ".part-123")
	if err := os.WriteFile(partial, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err = cache.Sync(ctx, bucket, "lake/events/", from, to); err != nil || res.Fetched != 1 || res.Removed != 2 || len(res.Objects) != 3 {
		t.Fatalf("sync after changes: fetched %d, removed %d, objects %d, %v", res.Fetched, res.Removed, len(res.Objects), err)
	}
	if b, _ := os.ReadFile(cache.Path(bucket, "lake/events/year=2026/month=12/day=01/hour=10/b.parquet")); string(b) != "B2" {
		t.Fatalf("changed object reads %q", b)
	}

	// Unbounded: the whole table, partitions only.
	if res, err = cache.Sync(ctx, bucket, "lake/events/", time.Time{}, time.Time{}); err != nil || len(res.Objects) != 4 {
		t.Fatalf("whole table: %d objects, %v", len(res.Objects), err)
	}
}

func TestConfigErrors(t *testing.T) {
	var se interface{ Error() string }
	_, err := lakecache.New(nil, lakecache.Config{})
	if se = err; se == nil || !strings.HasPrefix(err.Error(), "Dir:") {
		t.Fatalf("empty Dir: %v", err)
	}
	if _, err := lakecache.New(nil, lakecache.Config{Dir: "x", Concurrency: -1}); err == nil || !strings.HasPrefix(err.Error(), "Concurrency:") {
		t.Fatalf("bad concurrency: %v", err)
	}
}
