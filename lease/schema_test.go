package lease

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// keySchema renders a key schema as "name HASH, name RANGE".
func keySchema(ks []types.KeySchemaElement) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	return strings.Join(parts, ", ")
}

func describeTable(t *testing.T, db *dynamodb.Client, name string) *types.TableDescription {
	t.Helper()
	out, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	return out.Table
}

// tableExists reports whether DescribeTable finds the table.
func tableExists(t *testing.T, db *dynamodb.Client, name string) bool {
	t.Helper()
	_, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return false
	}
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	return true
}

// ownedKeys Queries the owner index for the keys of owner's leases until it
// returns want (the index is eventually consistent) or 10 s have passed.
func ownedKeys(t *testing.T, db *dynamodb.Client, table, owner string, want []string) []string {
	t.Helper()
	var keys []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := db.Query(context.Background(), &dynamodb.QueryInput{
			TableName:                 aws.String(table),
			IndexName:                 aws.String("LeaseOwnerToLeaseKeyIndex"),
			KeyConditionExpression:    aws.String("leaseOwner = :o"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: owner}},
		})
		if err != nil {
			t.Fatalf("query the owner index of %s: %v", table, err)
		}
		keys = keys[:0]
		for _, item := range out.Items {
			keys = append(keys, item["leaseKey"].(*types.AttributeValueMemberS).Value)
		}
		if slices.Equal(keys, want) || time.Now().After(deadline) {
			return keys
		}
		time.Sleep(100 * time.Millisecond) // polling an eventually consistent index, with a deadline
	}
}

// createOldTable creates a lease table as the code before the owner index
// did: hash key leaseKey only, on demand.
func createOldTable(t *testing.T, db *dynamodb.Client) string {
	t.Helper()
	name := testTableName(t)
	ctx := context.Background()
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeleteTables(context.Background(), db, name); err != nil {
			t.Logf("delete tables of %s: %v", name, err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); describeTable(t, db, name).TableStatus != types.TableStatusActive; {
		if time.Now().After(deadline) {
			t.Fatalf("table %s not ACTIVE after 10s", name)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's table status, with a deadline
	}
	return name
}

func TestEnsureTableCreatesTheLeaseTablesWithTheOwnerIndex(t *testing.T) {
	db := testDB(t)
	name := testTable(t, db)
	for _, c := range []struct{ table, keys string }{
		{name, "leaseKey HASH"},
		{name + "-CoordinatorState", "key HASH"},
		{name + "-WorkerMetricStats", "wid HASH"},
	} {
		d := describeTable(t, db, c.table)
		if got := keySchema(d.KeySchema); got != c.keys {
			t.Errorf("table %s: key schema %q, want %q", c.table, got, c.keys)
		}
		if d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("table %s: billing %+v, want PAY_PER_REQUEST", c.table, d.BillingModeSummary)
		}
		if d.TableStatus != types.TableStatusActive {
			t.Errorf("table %s is %s after EnsureTable, want ACTIVE", c.table, d.TableStatus)
		}
	}
	d := describeTable(t, db, name)
	if len(d.GlobalSecondaryIndexes) != 1 {
		t.Fatalf("lease table indexes: %+v, want one", d.GlobalSecondaryIndexes)
	}
	gsi := d.GlobalSecondaryIndexes[0]
	if aws.ToString(gsi.IndexName) != "LeaseOwnerToLeaseKeyIndex" || keySchema(gsi.KeySchema) != "leaseOwner HASH, leaseKey RANGE" ||
		gsi.Projection == nil || gsi.Projection.ProjectionType != types.ProjectionTypeKeysOnly || gsi.IndexStatus != types.IndexStatusActive {
		t.Fatalf("owner index %s: keys %q, projection %+v, status %s", aws.ToString(gsi.IndexName), keySchema(gsi.KeySchema), gsi.Projection, gsi.IndexStatus)
	}
	if CoordinatorStateTable(name) != name+"-CoordinatorState" || WorkerMetricsTable(name) != name+"-WorkerMetricStats" || OwnerIndex != "LeaseOwnerToLeaseKeyIndex" {
		t.Errorf("exported names %q %q %q", CoordinatorStateTable(name), WorkerMetricsTable(name), OwnerIndex)
	}

	// The index answers an owner's keys, and only theirs.
	tbl := NewTable(db, name)
	ctx := context.Background()
	keys := createLeases(t, tbl, 3)
	for _, k := range keys[:2] {
		l, err := tbl.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.take(ctx, l, map[string]string{keys[0]: "worker-a", keys[1]: "worker-b"}[k]); err != nil {
			t.Fatal(err)
		}
	}
	if got := ownedKeys(t, db, name, "worker-a", []string{keys[0]}); !slices.Equal(got, []string{keys[0]}) {
		t.Fatalf("owner index for worker-a: %v, want [%s]", got, keys[0])
	}
	if err := CheckIndex(ctx, db, name); err != nil {
		t.Fatalf("CheckIndex on a table EnsureTable made: %v", err)
	}
}

func TestCheckIndexNamesTheTableAndTheCommand(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	old := createOldTable(t, db)
	for name, check := range map[string]func(context.Context, DynamoDBAPI, string) error{"CheckIndex": CheckIndex, "EnsureTable": EnsureTable} {
		err := check(ctx, db, old)
		if !errors.Is(err, ErrNoOwnerIndex) || !strings.Contains(err.Error(), old) ||
			!strings.Contains(err.Error(), "run 'clickfleet setup' to add index LeaseOwnerToLeaseKeyIndex to lease table "+old) {
			t.Errorf("%s on a table without the index: %v, want ErrNoOwnerIndex naming the table and the command", name, err)
		}
	}

	// A table an offline upgrade is copying to: no worker may start, and EnsureTable creates nothing.
	current := testTable(t, db)
	copyName := current + "-upgrade"
	if err := EnsureTable(ctx, db, copyName); err != nil { // a table of that name, its shape does not matter
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTables(context.Background(), db, copyName) })
	err := CheckIndex(ctx, db, current)
	if !errors.Is(err, ErrUpgradeUnfinished) || !strings.Contains(err.Error(), copyName) || !strings.Contains(err.Error(), "clickfleet setup") {
		t.Errorf("CheckIndex with %s present: %v, want ErrUpgradeUnfinished naming it and the command", copyName, err)
	}
	missing := testTableName(t)
	if _, err := db.CreateTable(ctx, leaseTableInput(missing+"-upgrade")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTables(context.Background(), db, missing) })
	if err := EnsureTable(ctx, db, missing); !errors.Is(err, ErrUpgradeUnfinished) {
		t.Errorf("EnsureTable with %s-upgrade present: %v, want ErrUpgradeUnfinished", missing, err)
	}
	if tableExists(t, db, missing) {
		t.Errorf("EnsureTable created %s while its upgrade was unfinished", missing)
	}
}
