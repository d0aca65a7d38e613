package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// The integration tests run against a real DynamoDB-compatible server named by
// AWS_ENDPOINT_URL_DYNAMODB (dynalite locally: deploy/local/stack up).

var (
	probeOnce sync.Once
	probeErr  error
)

// testDB returns a client for the server in AWS_ENDPOINT_URL_DYNAMODB, skips
// the test if none is configured (fails if CLICKFLEET_REQUIRE_STACK=1), and
// fails if it is configured but unreachable.
func testDB(t testing.TB) *dynamodb.Client {
	t.Helper()
	endpoint := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")
	if endpoint == "" {
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal("CLICKFLEET_REQUIRE_STACK=1 but AWS_ENDPOINT_URL_DYNAMODB is empty: no DynamoDB server (dynalite) configured; start the local stack with `deploy/local/stack up` and export its environment")
		}
		t.Skip("AWS_ENDPOINT_URL_DYNAMODB is not set: skipping DynamoDB integration test (start dynalite with `deploy/local/stack up`)")
	}
	db := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, probeErr = db.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	})
	if probeErr != nil {
		t.Fatalf("DynamoDB server at AWS_ENDPOINT_URL_DYNAMODB=%s is unreachable: %v (is dynalite running? `deploy/local/stack up`)", endpoint, probeErr)
	}
	return db
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// testTableName returns a lease table name unique to the test.
func testTableName(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := nonName.ReplaceAllString(t.Name(), "_")
	if len(name) > 180 {
		name = name[:180]
	}
	return "leases-" + name + "-" + hex.EncodeToString(b[:])
}

// testTable creates a uniquely named lease table (EnsureTable) for the test
// and deletes its tables afterwards.
func testTable(t testing.TB, db *dynamodb.Client) string {
	t.Helper()
	name := testTableName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTable(ctx, db, name); err != nil {
		t.Fatalf("ensure table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteTables(ctx, db, name); err != nil {
			t.Logf("delete tables of %s: %v", name, err)
		}
	})
	return name
}

// createLeases creates n unowned leases "shardId-000000000000".. in table.
func createLeases(t testing.TB, tbl *Table, n int) []string {
	t.Helper()
	var keys []string
	for i := range n {
		k := fmt.Sprintf("shardId-%012d", i)
		if err := tbl.Create(context.Background(), Lease{Key: k, Checkpoint: TrimHorizon}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// freezableDB is a DynamoDBAPI whose calls hang (until their context ends)
// while frozen: a worker whose process is stopped or cut off.
type freezableDB struct {
	DynamoDBAPI
	mu     sync.Mutex
	frozen chan struct{} // non-nil and open while frozen
	// late makes a call held by a freeze go through when thawed (a paused process whose requests arrive
	// late) instead of failing.
	late bool
}

var errFrozen = errors.New("frozen")

func (f *freezableDB) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen == nil {
		f.frozen = make(chan struct{})
	}
}

func (f *freezableDB) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen != nil {
		close(f.frozen)
		f.frozen = nil
	}
}

func (f *freezableDB) gate(ctx context.Context) error {
	f.mu.Lock()
	ch := f.frozen
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errFrozen, ctx.Err())
	case <-ch:
		f.mu.Lock()
		late := f.late
		f.mu.Unlock()
		if late {
			return nil // the paused process's request goes out late
		}
		return fmt.Errorf("%w: thawed mid-call", errFrozen) // the call was "in flight" during the freeze: drop it
	}
}

func (f *freezableDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.GetItem(ctx, in, o...)
}

func (f *freezableDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (f *freezableDB) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.Scan(ctx, in, o...)
}

func (f *freezableDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.Query(ctx, in, o...)
}

func (f *freezableDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.PutItem(ctx, in, o...)
}

func (f *freezableDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.DynamoDBAPI.DeleteItem(ctx, in, o...)
}

func shortName(worker string) string { return strings.TrimPrefix(worker, "worker-") }
