package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lease"
)

const startHint = `start the local stack and export its settings: deploy/local/stack up && eval "$(deploy/local/stack env)"`

// need returns the value of the environment variable name, or ends the test when it is unset.
func need(t testing.TB, name, server string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set, so no %s is configured; %s", name, server, startHint)
	if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
		t.Fatalf("integration test needs %s: %s", server, msg)
	}
	t.Skip(msg)
	return ""
}

// AWSConfig returns the SDK configuration the tests use: the SDK's own environment (AWS_ENDPOINT_URL_*,
// region, credentials) with local defaults for region and credentials.
func AWSConfig(t testing.TB) aws.Config {
	t.Helper()
	for name, def := range map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"} {
		if os.Getenv(name) == "" {
			t.Setenv(name, def)
		}
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("load AWS configuration: %v", err)
	}
	return cfg
}

// Kinesis returns a client for the Kinesis emulator named by AWS_ENDPOINT_URL_KINESIS.
func Kinesis(t testing.TB) *kinesis.Client {
	t.Helper()
	endpoint := need(t, "AWS_ENDPOINT_URL_KINESIS", "Kinesis emulator")
	c := kinesis.NewFromConfig(AWSConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("Kinesis emulator at %s (AWS_ENDPOINT_URL_KINESIS) does not answer: %v; %s", endpoint, err, startHint)
	}
	return c
}

// KinesisEmulatorURL returns the Kinesis emulator's own endpoint: CLICKFLEET_STACK_KINESIS_EMULATOR when the
// stack serves Kinesis through its limits layer (deploy/local/stack up --aws-limits), else
// AWS_ENDPOINT_URL_KINESIS. For tests that put a limits layer of their own in front of the emulator, or
// set up data faster than AWS's limits allow.
func KinesisEmulatorURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("CLICKFLEET_STACK_KINESIS_EMULATOR"); u != "" {
		return u
	}
	return need(t, "AWS_ENDPOINT_URL_KINESIS", "Kinesis emulator")
}

// DynamoDB returns a client for the DynamoDB emulator named by AWS_ENDPOINT_URL_DYNAMODB.
func DynamoDB(t testing.TB) *dynamodb.Client {
	t.Helper()
	endpoint := need(t, "AWS_ENDPOINT_URL_DYNAMODB", "DynamoDB emulator")
	c := dynamodb.NewFromConfig(AWSConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("DynamoDB emulator at %s (AWS_ENDPOINT_URL_DYNAMODB) does not answer: %v; %s", endpoint, err, startHint)
	}
	return c
}

// Redis returns a client for the Redis server named by CLICKFLEET_REDIS_URL; it is closed when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	url := need(t, "CLICKFLEET_REDIS_URL", "Redis server")
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("CLICKFLEET_REDIS_URL=%q: %v", url, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s (CLICKFLEET_REDIS_URL) does not answer: %v; %s", url, err, startHint)
	}
	return c
}

// PostgresDSN returns the DSN of the PostgreSQL server named by CLICKFLEET_PG_DSN after probing it.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := need(t, "CLICKFLEET_PG_DSN", "PostgreSQL server")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		err = pool.Ping(ctx)
		pool.Close()
	}
	if err != nil {
		t.Fatalf("PostgreSQL at %s (CLICKFLEET_PG_DSN) does not answer: %v; %s", dsn, err, startHint)
	}
	return dsn
}

// Postgres returns a pool on the PostgreSQL server named by CLICKFLEET_PG_DSN; it is closed when the test ends.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), PostgresDSN(t))
	if err != nil {
		t.Fatalf("PostgreSQL pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// EmptyDatabase creates a database of the test's own, without any schema, on the PostgreSQL server named
// by CLICKFLEET_PG_DSN, drops it when the test ends and returns its DSN.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	admin := Postgres(t)
	db := strings.ReplaceAll(Name(t, "t"), "-", "_")
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(PostgresDSN(t))
	if err != nil {
		t.Fatalf("CLICKFLEET_PG_DSN: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

// Name returns a name unique to this test run, for streams, tables and key prefixes: prefix, the test's
// name in lower case (letters and digits only, shortened) and a random suffix.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	base := b.String()
	if len(base) > 24 {
		base = base[:24]
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return prefix + "-" + base + "-" + hex.EncodeToString(rnd[:])
}

// Stream creates a stream with a name unique to the test and the given number of shards, waits until it
// is ACTIVE, and deletes it when the test ends (emulators slow down as they keep more shards).
func Stream(t testing.TB, kin *kinesis.Client, shards int32) string {
	t.Helper()
	name := Name(t, "s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := provision.EnsureStream(ctx, kin, name, shards); err != nil {
		t.Fatalf("create test stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kin.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	return name
}

// S3 returns a client for the S3 server named by AWS_ENDPOINT_URL_S3 (versitygw in the local stack), using
// path-style addressing as local servers need.
func S3(t testing.TB) *s3.Client {
	t.Helper()
	endpoint := need(t, "AWS_ENDPOINT_URL_S3", "S3 server")
	c := s3.NewFromConfig(AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("S3 server at %s (AWS_ENDPOINT_URL_S3) does not answer: %v; %s", endpoint, err, startHint)
	}
	return c
}

// Bucket creates a bucket with a name unique to the test and removes it, with every object in it, when
// the test ends.
func Bucket(t testing.TB, c *s3.Client) string {
	t.Helper()
	name := Name(t, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create test bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return
			}
			for _, o := range page.Contents {
				_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: o.Key})
			}
		}
		_, _ = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
	})
	return name
}

// LeaseTable creates a lease table (and the tables that go with it, lease.EnsureTable) with a name unique
// to the test, waits until it is ACTIVE, and deletes them when the test ends.
func LeaseTable(t testing.TB, ddb *dynamodb.Client) string {
	t.Helper()
	name := Name(t, "leases")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lease.EnsureTable(ctx, ddb, name); err != nil {
		t.Fatalf("create test lease table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = lease.DeleteTables(ctx, ddb, name)
	})
	return name
}
