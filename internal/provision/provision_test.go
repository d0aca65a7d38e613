package provision_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clickfleet/clickfleet/enrich/names"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

func TestSetupCreatesEverythingAndIsIdempotent(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	dsn := testenv.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	r := provision.DefaultResources()
	base := testenv.Name(t, "cf")
	r.Stream, r.OffersStream, r.ErrorsStream = base, base+"-offers", base+"-errors"
	r.LeaseTable, r.SessionsTable = base+"-leases", base+"-sessions"
	r.Shards = 3
	r.RouteStreams = []string{r.OffersStream, base + "-purchases"} // the offers stream once, a route's own
	clients := provision.Clients{Kinesis: kin, DynamoDB: ddb, Postgres: conn}
	for run := 1; run <= 2; run++ {
		if err := provision.Setup(ctx, clients, r, nil); err != nil {
			t.Fatalf("setup run %d: %v", run, err)
		}
	}
	for stream, shards := range map[string]int32{r.Stream: 3, r.OffersStream: 1, r.ErrorsStream: 1, base + "-purchases": 1} {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		if got := aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount); got != shards {
			t.Fatalf("stream %s has %d shards, want %d", stream, got, shards)
		}
	}
	desc, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.SessionsTable)})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(desc.Table.GlobalSecondaryIndexes[0].IndexName) != provision.SessionsUserIndex {
		t.Fatalf("sessions table indexes = %+v", desc.Table.GlobalSecondaryIndexes)
	}
	// The index answers by user.
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.SessionsTable), Item: map[string]dtypes.AttributeValue{
		"session_id": &dtypes.AttributeValueMemberS{Value: "user1_desktop_20210712T120158.732Z"},
		"user_id":    &dtypes.AttributeValueMemberS{Value: "user1"},
		"start_ms":   &dtypes.AttributeValueMemberN{Value: "1626091318732"},
	}}); err != nil {
		t.Fatal(err)
	}
	q, err := ddb.Query(ctx, &dynamodb.QueryInput{
		TableName: aws.String(r.SessionsTable), IndexName: aws.String(provision.SessionsUserIndex),
		KeyConditionExpression:    aws.String("user_id = :u"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":u": &dtypes.AttributeValueMemberS{Value: "user1"}},
	})
	if err != nil || q.Count != 1 {
		t.Fatalf("query by user_id: count %v, err %v", q, err)
	}

	// The customers trigger announces changes.
	listener, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+names.Channel); err != nil {
		t.Fatal(err)
	}
	id := base + "-customer"
	if _, err := conn.Exec(ctx, "INSERT INTO customers (customer_id, name, price_per_click) VALUES ($1, 'Semyon Ryan', 0.25)", id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DELETE FROM customers WHERE customer_id = $1", id) })
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != names.Channel || n.Payload != id {
		t.Fatalf("notification %s %q, want %s %q", n.Channel, n.Payload, names.Channel, id)
	}
}

func TestSessionsTableWithoutIndexIsRefused(t *testing.T) {
	ddb := testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := testenv.Name(t, "sessions")
	if _, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name), BillingMode: dtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("session_id"), AttributeType: dtypes.ScalarAttributeTypeS}},
		KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("session_id"), KeyType: dtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := provision.EnsureSessionsTable(ctx, ddb, name)
	if err == nil || !strings.Contains(err.Error(), provision.SessionsUserIndex) {
		t.Fatalf("err = %v, want a refusal naming the missing index", err)
	}
}

func TestResourcesValidateNamesTheSetting(t *testing.T) {
	r := provision.DefaultResources()
	r.SessionsTable = ""
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "sessions-table") {
		t.Fatalf("Validate() = %v, want an error naming sessions-table", err)
	}
	r = provision.DefaultResources()
	r.FailoverTime = 0
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "failover-time") {
		t.Fatalf("Validate() = %v, want an error naming failover-time", err)
	}
	r = provision.DefaultResources()
	r.Shards = 0
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Fatalf("Validate() = %v, want an error naming shards", err)
	}
}

// A lease table made before the owner index (hash key only), holding a lease with its checkpoint, is
// upgraded by setup: it gets the index and its two tables, and the lease is kept as it was. dynalite
// cannot add an index, so this is the offline copy, logged step by step.
func TestSetupUpgradesALeaseTableMadeBeforeTheIndex(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := provision.DefaultResources()
	base := testenv.Name(t, "up")
	r.Stream, r.OffersStream, r.ErrorsStream = base, base+"-offers", base+"-errors"
	r.LeaseTable, r.SessionsTable, r.ArchiveLeaseTable, r.ScaleLeaseTable = base+"-leases", base+"-sessions", base+"-archive-leases", base+"-scale"
	r.Shards, r.FailoverTime = 1, 300*time.Millisecond
	t.Cleanup(func() {
		for _, table := range []string{r.LeaseTable, r.ArchiveLeaseTable, r.ScaleLeaseTable} {
			_ = lease.DeleteTables(context.Background(), ddb, table)
		}
		_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(r.SessionsTable)})
	})
	if _, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(r.LeaseTable), BillingMode: dtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: dtypes.ScalarAttributeTypeS}},
		KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: dtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	old := map[string]dtypes.AttributeValue{
		"leaseKey": &dtypes.AttributeValueMemberS{Value: "shardId-000000000000"}, "leaseOwner": &dtypes.AttributeValueMemberS{Value: "worker-a"},
		"leaseCounter": &dtypes.AttributeValueMemberN{Value: "17"}, "checkpoint": &dtypes.AttributeValueMemberS{Value: "49590338271490256608559692538361571095921575989136588898"},
		"checkpointSubSequenceNumber": &dtypes.AttributeValueMemberN{Value: "0"}, "ownerSwitchesSinceCheckpoint": &dtypes.AttributeValueMemberN{Value: "0"},
	}
	testenv.WaitFor(t, "the old lease table to take a lease", 10*time.Second, func() bool {
		_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.LeaseTable), Item: old})
		return err == nil
	})
	if err := lease.CheckIndex(ctx, ddb, r.LeaseTable); !errors.Is(err, lease.ErrNoOwnerIndex) {
		t.Fatalf("CheckIndex before setup: %v, want ErrNoOwnerIndex", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	if err := provision.Setup(ctx, provision.Clients{Kinesis: kin, DynamoDB: ddb}, r, zap.New(core)); err != nil {
		t.Fatalf("setup: %v", err)
	}
	for _, table := range []string{r.LeaseTable, r.ArchiveLeaseTable, r.ScaleLeaseTable} {
		if err := lease.CheckIndex(ctx, ddb, table); err != nil {
			t.Errorf("CheckIndex of %s after setup: %v", table, err)
		}
		for _, name := range []string{table + "-CoordinatorState", table + "-WorkerMetricStats"} {
			if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}); err != nil {
				t.Errorf("table %s after setup: %v", name, err)
			}
		}
	}
	got, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.LeaseTable), Key: map[string]dtypes.AttributeValue{"leaseKey": old["leaseKey"]}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Item, old) {
		t.Errorf("the lease after setup: %v, want %v", got.Item, old)
	}
	if n := logs.FilterField(zap.String("table", r.LeaseTable)).FilterMessageSnippet("lease table upgrade").Len(); n < 5 {
		t.Errorf("setup logged %d steps of the upgrade of %s, want every step", n, r.LeaseTable)
	}
}
