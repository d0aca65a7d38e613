package lease

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// OwnerIndex is the lease table's global secondary index, with KCL 3.x's name
// and shape: hash key leaseOwner (S), range key leaseKey (S), projection
// KEYS_ONLY. A worker Queries it for the keys of the leases it owns. As every
// read of a global secondary index it is eventually consistent (a consistent
// Query is refused), and a lease without an owner is not in it.
const OwnerIndex = "LeaseOwnerToLeaseKeyIndex"

// Names and keys of the tables that go with a lease table T.
const (
	coordinatorStateSuffix = "-CoordinatorState"
	workerMetricsSuffix    = "-WorkerMetricStats"
	upgradeSuffix          = "-upgrade"
	attrCoordinatorKey     = "key"
	attrWorkerID           = "wid"
)

// Errors of the lease table's shape. Match them with errors.Is; the messages
// name the table and what to run.
var (
	// ErrNoOwnerIndex means the lease table has no ACTIVE OwnerIndex: it was
	// created before the index existed, or the index is still being built.
	// Running 'clickfleet setup' adds the index (Upgrade) and waits for it.
	ErrNoOwnerIndex = errors.New("lease: lease table has no owner index")

	// ErrUpgradeUnfinished means an offline upgrade of the lease table (Upgrade
	// copying it to "<table>-upgrade" and back) is running or was interrupted:
	// the table named by the copy exists. Running 'clickfleet setup' again
	// finishes it; until then no worker may use the lease table.
	ErrUpgradeUnfinished = errors.New("lease: lease table upgrade unfinished")
)

// CoordinatorStateTable returns the name of the coordinator-state table that
// goes with lease table table: table + "-CoordinatorState", hash key "key"
// (S). It holds the leader lock. EnsureTable creates it.
func CoordinatorStateTable(table string) string { return table + coordinatorStateSuffix }

// WorkerMetricsTable returns the name of the worker-metrics table that goes
// with lease table table: table + "-WorkerMetricStats", hash key "wid" (S),
// one item per live worker with its load. EnsureTable creates it.
func WorkerMetricsTable(table string) string { return table + workerMetricsSuffix }

// upgradeCopyTable is the table an offline upgrade copies the leases to.
func upgradeCopyTable(table string) string { return table + upgradeSuffix }

// tableSpec is one table of the lease layer: its role in messages and how it is created.
type tableSpec struct {
	role string
	in   *dynamodb.CreateTableInput
}

// tableSpecs returns the three tables of lease table table, the lease table first.
func tableSpecs(table string) []tableSpec {
	return []tableSpec{
		{"lease table", leaseTableInput(table)},
		{"coordinator-state table", hashKeyTableInput(CoordinatorStateTable(table), attrCoordinatorKey)},
		{"worker-metrics table", hashKeyTableInput(WorkerMetricsTable(table), attrWorkerID)},
	}
}

// hashKeyTableInput is an on-demand table with a string hash key and nothing else.
func hashKeyTableInput(name, hashKey string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(hashKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(hashKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}
}

// leaseTableInput is the lease table: hash key leaseKey and OwnerIndex.
func leaseTableInput(name string) *dynamodb.CreateTableInput {
	in := hashKeyTableInput(name, attrKey)
	in.AttributeDefinitions = ownerIndexAttributes()
	in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{{
		IndexName:  aws.String(OwnerIndex),
		KeySchema:  ownerIndexKeySchema(),
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}}
	return in
}

func ownerIndexAttributes() []types.AttributeDefinition {
	return []types.AttributeDefinition{
		{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(attrOwner), AttributeType: types.ScalarAttributeTypeS},
	}
}

func ownerIndexKeySchema() []types.KeySchemaElement {
	return []types.KeySchemaElement{
		{AttributeName: aws.String(attrOwner), KeyType: types.KeyTypeHash},
		{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeRange},
	}
}

// EnsureTable creates the tables of lease table table that do not exist, all
// on-demand (PAY_PER_REQUEST): the lease table itself (hash key leaseKey, S)
// with OwnerIndex, CoordinatorStateTable(table) and WorkerMetricsTable(table);
// then it waits until they and their indexes are ACTIVE. It is idempotent and
// safe to call from several processes at once. It waits at most five minutes
// unless ctx ends sooner.
//
// It never reshapes an existing table: a lease table without OwnerIndex gives
// an error wrapping ErrNoOwnerIndex (Upgrade adds the index), and while an
// offline upgrade is unfinished it creates nothing and returns an error
// wrapping ErrUpgradeUnfinished.
func EnsureTable(ctx context.Context, db DynamoDBAPI, table string) error {
	ctx, cancel := context.WithTimeout(ctx, defaultEnsureTableWait)
	defer cancel()
	if err := refuseUnfinishedUpgrade(ctx, db, table); err != nil {
		return err
	}
	specs := tableSpecs(table)
	for _, s := range specs {
		if err := createTable(ctx, db, s); err != nil {
			return err
		}
	}
	for _, s := range specs {
		if _, err := waitActive(ctx, db, aws.ToString(s.in.TableName), s.role); err != nil {
			return err
		}
	}
	return checkOwnerIndex(ctx, db, table)
}

// CheckIndex reports whether lease table table is ready for workers that find
// their leases through OwnerIndex: the index exists and is ACTIVE, and no
// offline upgrade is unfinished. Otherwise its error wraps ErrNoOwnerIndex or
// ErrUpgradeUnfinished and says to run 'clickfleet setup'; an error of
// DescribeTable (the table missing, the call denied) is returned wrapped. A
// worker calls it once at start; it makes two DescribeTable calls.
func CheckIndex(ctx context.Context, db DynamoDBAPI, table string) error {
	if err := refuseUnfinishedUpgrade(ctx, db, table); err != nil {
		return err
	}
	return checkOwnerIndex(ctx, db, table)
}

// checkOwnerIndex is CheckIndex without the look for an unfinished upgrade.
func checkOwnerIndex(ctx context.Context, db DynamoDBAPI, table string) error {
	desc, err := describe(ctx, db, table)
	if err != nil {
		return fmt.Errorf("describe lease table %s: %w", table, err)
	}
	if desc == nil {
		return fmt.Errorf("describe lease table %s: %w", table, &types.ResourceNotFoundException{Message: aws.String("table " + table + " not found")})
	}
	gsi := ownerIndexOf(desc)
	switch {
	case gsi == nil:
		return fmt.Errorf("%w: run 'clickfleet setup' to add index %s to lease table %s", ErrNoOwnerIndex, OwnerIndex, table)
	case !sameKeys(gsi.KeySchema, ownerIndexKeySchema()):
		return fmt.Errorf("%w: index %s of lease table %s has another key schema than hash %s, range %s; delete the index and run 'clickfleet setup'",
			ErrNoOwnerIndex, OwnerIndex, table, attrOwner, attrKey)
	case gsi.IndexStatus != types.IndexStatusActive:
		return fmt.Errorf("%w: index %s of lease table %s is %s, not ACTIVE yet: run 'clickfleet setup' to wait until it is built",
			ErrNoOwnerIndex, OwnerIndex, table, gsi.IndexStatus)
	}
	return nil
}

// refuseUnfinishedUpgrade fails when the table of an offline upgrade of table exists.
func refuseUnfinishedUpgrade(ctx context.Context, db DynamoDBAPI, table string) error {
	copyName := upgradeCopyTable(table)
	desc, err := describe(ctx, db, copyName)
	if err != nil {
		return fmt.Errorf("look for an unfinished upgrade of lease table %s (table %s): %w", table, copyName, err)
	}
	if desc != nil {
		return fmt.Errorf("%w: table %s exists, so an upgrade of lease table %s is running or was interrupted: run 'clickfleet setup' to finish it",
			ErrUpgradeUnfinished, copyName, table)
	}
	return nil
}

// describe returns a table's description, or nil when it does not exist.
func describe(ctx context.Context, db DynamoDBAPI, name string) (*types.TableDescription, error) {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, err
	case out.Table == nil:
		return nil, fmt.Errorf("describe table %s: no table description in the answer", name)
	}
	return out.Table, nil
}

func ownerIndexOf(desc *types.TableDescription) *types.GlobalSecondaryIndexDescription {
	for i := range desc.GlobalSecondaryIndexes {
		if aws.ToString(desc.GlobalSecondaryIndexes[i].IndexName) == OwnerIndex {
			return &desc.GlobalSecondaryIndexes[i]
		}
	}
	return nil
}

func sameKeys(a, b []types.KeySchemaElement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if aws.ToString(a[i].AttributeName) != aws.ToString(b[i].AttributeName) || a[i].KeyType != b[i].KeyType {
			return false
		}
	}
	return true
}

// createTable creates a table unless it exists. Another process creating it
// at the same time is no error.
func createTable(ctx context.Context, db DynamoDBAPI, s tableSpec) error {
	name := aws.ToString(s.in.TableName)
	desc, err := describe(ctx, db, name)
	if err != nil {
		return fmt.Errorf("describe %s %s: %w", s.role, name, err)
	}
	if desc != nil {
		return nil
	}
	_, err = db.CreateTable(ctx, s.in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create %s %s: %w", s.role, name, err)
	}
	return nil
}

// waitActive polls until the table and every index of it are ACTIVE, and
// returns its description then. A table not visible yet is waited for.
func waitActive(ctx context.Context, db DynamoDBAPI, name, role string) (*types.TableDescription, error) {
	delay := tableActivePollMin
	for {
		desc, err := describe(ctx, db, name)
		if err != nil {
			return nil, fmt.Errorf("wait for %s %s: %w", role, name, err)
		}
		if active(desc) {
			return desc, nil
		}
		if err := retry.Sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("wait for %s %s to become ACTIVE: %w", role, name, err)
		}
		delay = min(2*delay, tableActivePollMax)
	}
}

func active(desc *types.TableDescription) bool {
	if desc == nil || desc.TableStatus != types.TableStatusActive {
		return false
	}
	for _, gsi := range desc.GlobalSecondaryIndexes {
		if gsi.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}

// DeleteTables deletes lease table table and every table that goes with it
// (CoordinatorStateTable, WorkerMetricsTable, an upgrade's copy). A table that
// does not exist is skipped; it returns the first other error after trying
// every table. It does not wait for the deletions to finish. For tests and
// benchmarks that made their own tables: it deletes every lease.
func DeleteTables(ctx context.Context, db DynamoDBAPI, table string) error {
	var first error
	for _, name := range []string{table, CoordinatorStateTable(table), WorkerMetricsTable(table), upgradeCopyTable(table)} {
		_, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &notFound) && first == nil {
			first = fmt.Errorf("delete table %s: %w", name, err)
		}
	}
	return first
}
