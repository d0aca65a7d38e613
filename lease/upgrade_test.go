package lease

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// shortUpgrade keeps the tests' waits short: the leases are watched for
// 400ms, and an index that has not appeared 300ms after the server accepted
// it is taken as never coming (dynalite).
func shortUpgrade(log *zap.Logger) UpgradeConfig {
	return UpgradeConfig{FailoverTime: 400 * time.Millisecond, IndexAppearTimeout: 300 * time.Millisecond, IndexBuildTimeout: 20 * time.Second, Logger: log}
}

func s(v string) types.AttributeValue     { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue     { return &types.AttributeValueMemberN{Value: v} }
func ss(v ...string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: v} }

// oldLeases are items as the code before the owner index wrote them: owned
// and unowned, checkpointed, pending, in a handoff, parents and children, at
// SHARD_END, and an attribute of another tool.
func oldLeases() []map[string]types.AttributeValue {
	return []map[string]types.AttributeValue{
		{"leaseKey": s("shardId-000000000000"), "leaseCounter": n("41"), "leaseOwner": s("worker-a"), "checkpoint": s("SHARD_END"),
			"checkpointSubSequenceNumber": n("0"), "ownerSwitchesSinceCheckpoint": n("0"),
			"childShardIds": ss("shardId-000000000002", "shardId-000000000003")},
		{"leaseKey": s("shardId-000000000001"), "leaseCounter": n("7"), "checkpoint": s("49590338271490256608559692538361571095921575989136588898"),
			"checkpointSubSequenceNumber": n("3"), "ownerSwitchesSinceCheckpoint": n("2"),
			"pendingCheckpoint": s("49590338271490256608559692540000000000000000000000000001"), "pendingCheckpointSubSequenceNumber": n("1")},
		{"leaseKey": s("shardId-000000000002"), "leaseCounter": n("12"), "leaseOwner": s("worker-b"), "checkpointOwner": s("worker-a"),
			"checkpoint": s("49590338271490256608559692538361571095921575989136500000"), "checkpointSubSequenceNumber": n("0"),
			"ownerSwitchesSinceCheckpoint": n("1"), "parentShardId": ss("shardId-000000000000"),
			"startingHashKey": s("0"), "endingHashKey": s("170141183460469231731687303715884105727")},
		{"leaseKey": s("shardId-000000000003"), "leaseCounter": n("3"), "leaseOwner": s("worker-a"), "checkpoint": s("TRIM_HORIZON"),
			"checkpointSubSequenceNumber": n("0"), "ownerSwitchesSinceCheckpoint": n("0"), "parentShardId": ss("shardId-000000000000"),
			"operatorNote": s("do not delete"), "throughputKBps": n("12.5")},
	}
}

// writeOldLeases creates a lease table the old way and writes oldLeases to it.
func writeOldLeases(t *testing.T, db *dynamodb.Client) string {
	t.Helper()
	name := createOldTable(t, db)
	for _, item := range oldLeases() {
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(name), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// rawItems scans a table and returns its items by leaseKey, sets sorted.
func rawItems(t *testing.T, db *dynamodb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("scan %s: %v", table, err)
	}
	if out.LastEvaluatedKey != nil {
		t.Fatalf("scan %s: more than one page", table)
	}
	all := map[string]map[string]types.AttributeValue{}
	for _, item := range out.Items {
		for _, v := range item {
			if set, ok := v.(*types.AttributeValueMemberSS); ok {
				slices.Sort(set.Value)
			}
		}
		all[item["leaseKey"].(*types.AttributeValueMemberS).Value] = item
	}
	return all
}

// sameItems fails the test unless the table holds exactly the items of want, attribute for attribute.
func sameItems(t *testing.T, db *dynamodb.Client, table string, want map[string]map[string]types.AttributeValue) {
	t.Helper()
	got := rawItems(t, db, table)
	if len(got) != len(want) {
		t.Errorf("table %s holds %d items, want %d", table, len(got), len(want))
	}
	for key, w := range want {
		if !reflect.DeepEqual(got[key], w) {
			t.Errorf("table %s, lease %s:\n got %s\nwant %s", table, key, render(got[key]), render(w))
		}
	}
}

func render(item map[string]types.AttributeValue) string {
	var parts []string
	for k, v := range item {
		parts = append(parts, fmt.Sprintf("%s=%s%v", k, strings.TrimPrefix(fmt.Sprintf("%T", v), "*types.AttributeValueMember"),
			reflect.ValueOf(v).Elem().FieldByName("Value").Interface()))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// byKey returns items by their leaseKey.
func byKey(all []map[string]types.AttributeValue) map[string]map[string]types.AttributeValue {
	out := map[string]map[string]types.AttributeValue{}
	for _, item := range all {
		out[item["leaseKey"].(*types.AttributeValueMemberS).Value] = item
	}
	return out
}

func TestUpgradeKeepsEveryLeaseAttributeForAttribute(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	table := writeOldLeases(t, db)
	before := rawItems(t, db, table)
	if len(before) != len(oldLeases()) {
		t.Fatalf("wrote %d leases, read %d", len(oldLeases()), len(before))
	}
	core, logs := observer.New(zap.InfoLevel)
	if err := Upgrade(ctx, db, table, shortUpgrade(zap.New(core))); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	sameItems(t, db, table, before)
	if err := CheckIndex(ctx, db, table); err != nil {
		t.Fatalf("CheckIndex after the upgrade: %v", err)
	}
	if got := ownedKeys(t, db, table, "worker-a", []string{"shardId-000000000000", "shardId-000000000003"}); !slices.Equal(got, []string{"shardId-000000000000", "shardId-000000000003"}) {
		t.Errorf("owner index for worker-a after the upgrade: %v", got)
	}
	for _, name := range []string{table + "-CoordinatorState", table + "-WorkerMetricStats"} {
		if !tableExists(t, db, name) {
			t.Errorf("table %s missing after the upgrade", name)
		}
	}
	if tableExists(t, db, table+"-upgrade") {
		t.Errorf("the copy %s-upgrade is left after the upgrade", table)
	}
	// dynalite accepts the index and adds none: the offline copy did the work, step by step.
	for _, step := range []string{"adding the owner index online", "copying the table offline", "watching the leases", "leases copied", "table deleted", "leases copied back", "done"} {
		if logs.FilterMessageSnippet(step).Len() == 0 {
			t.Errorf("no log line for the step %q; logged: %v", step, messages(logs))
		}
	}

	// Run again: nothing to do.
	if err := Upgrade(ctx, db, table, shortUpgrade(nil)); err != nil {
		t.Fatalf("second upgrade: %v", err)
	}
	sameItems(t, db, table, before)
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

// renewing renews one lease as its owner every 50ms until stop is called,
// which returns how many renewals landed and the first error.
func renewing(t *testing.T, tbl *Table, key, owner string, counter int64) (stop func() (int, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		renewed int
		failed  error
	)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l, err := tbl.renew(ctx, key, owner, counter)
			if err != nil {
				if ctx.Err() == nil {
					failed = err
				}
				return
			}
			counter, renewed = l.Counter, renewed+1
		}
	})
	return func() (int, error) {
		cancel()
		wg.Wait()
		return renewed, failed
	}
}

func TestUpgradeRefusesWhileAWorkerRenews(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	table := writeOldLeases(t, db)
	stop := renewing(t, NewTable(db, table), "shardId-000000000003", "worker-a", 3)
	watch := shortUpgrade(nil)
	watch.FailoverTime = time.Second // 20 renewals
	err := Upgrade(ctx, db, table, watch)
	renewed, rerr := stop()
	if rerr != nil || renewed == 0 {
		t.Fatalf("the renewing worker: %d renewals, error %v", renewed, rerr)
	}
	if !errors.Is(err, ErrWorkersRunning) || !strings.Contains(err.Error(), table) || !strings.Contains(err.Error(), "shardId-000000000003") ||
		!strings.Contains(err.Error(), "stop every worker") {
		t.Fatalf("upgrade while a worker renews: %v, want ErrWorkersRunning naming the table, the lease and what to do", err)
	}
	if err := CheckIndex(ctx, db, table); !errors.Is(err, ErrNoOwnerIndex) {
		t.Errorf("CheckIndex after the refusal: %v, want ErrNoOwnerIndex (the table untouched)", err)
	}
	if tableExists(t, db, table+"-upgrade") {
		t.Errorf("the refused upgrade left %s-upgrade", table)
	}
	// The table is as written but for the counter the worker renewed.
	c := rawItems(t, db, table)["shardId-000000000003"]["leaseCounter"]
	if reflect.DeepEqual(c, n("3")) {
		t.Errorf("lease shardId-000000000003 not renewed in the table after %d renewals", renewed)
	}
	want := byKey(oldLeases())
	want["shardId-000000000003"]["leaseCounter"] = c
	sameItems(t, db, table, want)

	// The workers stopped: the upgrade goes through.
	stopped := rawItems(t, db, table)
	if err := Upgrade(ctx, db, table, shortUpgrade(nil)); err != nil {
		t.Fatalf("upgrade once the worker stopped: %v", err)
	}
	sameItems(t, db, table, stopped)
}

// TestUpgradeResumesAfterAnInterruption leaves the tables as an offline
// upgrade that crashed after each step would, then runs the upgrade again.
func TestUpgradeResumesAfterAnInterruption(t *testing.T) {
	// The offline upgrade's steps in order; a case crashes after the first steps of them.
	steps := []func(ctx context.Context, u *upgrader, snap items) error{
		func(ctx context.Context, u *upgrader, snap items) error { return u.copyOut(ctx, snap) },
		func(ctx context.Context, u *upgrader, snap items) error { return u.dropOriginal(ctx, snap) },
		func(ctx context.Context, u *upgrader, _ items) error {
			return u.ensureLeaseTable(ctx, u.table, "lease table")
		},
		func(ctx context.Context, u *upgrader, snap items) error { // one lease of four copied back
			first := "shardId-000000000000"
			return putItems(ctx, u.db, u.table, items{first: snap[first]})
		},
	}
	cases := []struct {
		name  string
		steps int
	}{
		{"after the copy", 1},
		{"after the table was deleted", 2},
		{"while copying back", 4},
	}
	crash := func(t *testing.T, ctx context.Context, u *upgrader, n int) {
		t.Helper()
		snap, err := u.observe(ctx)
		for _, step := range steps[:n] {
			if err != nil {
				break
			}
			err = step(ctx, u, snap)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := testDB(t)
			ctx := context.Background()
			table := writeOldLeases(t, db)
			before := rawItems(t, db, table)
			crash(t, ctx, newUpgrader(db, table, shortUpgrade(nil)), c.steps)
			if !tableExists(t, db, table+"-upgrade") {
				t.Fatalf("the simulated crash left no %s-upgrade", table)
			}
			if err := CheckIndex(ctx, db, table); !errors.Is(err, ErrUpgradeUnfinished) {
				t.Errorf("CheckIndex after the crash: %v, want ErrUpgradeUnfinished (no worker may start)", err)
			}
			core, logs := observer.New(zap.InfoLevel)
			if err := Upgrade(ctx, db, table, shortUpgrade(zap.New(core))); err != nil {
				t.Fatalf("upgrade after the crash: %v", err)
			}
			if logs.FilterMessageSnippet("interrupted").Len() == 0 {
				t.Errorf("the resumed upgrade did not log the interrupted one; logged: %v", messages(logs))
			}
			sameItems(t, db, table, before)
			if err := CheckIndex(ctx, db, table); err != nil {
				t.Errorf("CheckIndex after the resumed upgrade: %v", err)
			}
			if tableExists(t, db, table+"-upgrade") {
				t.Errorf("the copy %s-upgrade is left after the resumed upgrade", table)
			}
		})
	}
}

// indexBuildingDB answers like DynamoDB on AWS for the index of one table:
// UpdateTable adding it is accepted and shows it CREATING, DescribeTable shows
// it CREATING (backfilling) for the first building describes, then ACTIVE.
// Everything else goes to the real server (dynalite cannot add an index).
type indexBuildingDB struct {
	DynamoDBAPI
	table    string
	mu       sync.Mutex
	updates  []*dynamodb.UpdateTableInput
	building int // describes left that show the index CREATING
}

func (f *indexBuildingDB) UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error) {
	if aws.ToString(in.TableName) != f.table {
		return f.DynamoDBAPI.UpdateTable(ctx, in, o...)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, in)
	c := in.GlobalSecondaryIndexUpdates[0].Create
	if c.ProvisionedThroughput != nil { // on AWS: refused for an on-demand table
		return nil, errors.New("ValidationException: ProvisionedThroughput should not be specified for index when BillingMode is PAY_PER_REQUEST")
	}
	return &dynamodb.UpdateTableOutput{TableDescription: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusUpdating,
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndexDescription{{IndexName: c.IndexName, KeySchema: c.KeySchema, IndexStatus: types.IndexStatusCreating}}}}, nil
}

func (f *indexBuildingDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	out, err := f.DynamoDBAPI.DescribeTable(ctx, in, o...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || aws.ToString(in.TableName) != f.table || len(f.updates) == 0 {
		return out, err
	}
	status := types.IndexStatusActive
	if f.building > 0 {
		f.building--
		status = types.IndexStatusCreating
	}
	desc := *out.Table
	desc.GlobalSecondaryIndexes = []types.GlobalSecondaryIndexDescription{{IndexName: aws.String(OwnerIndex), KeySchema: ownerIndexKeySchema(),
		IndexStatus: status, Backfilling: aws.Bool(status == types.IndexStatusCreating)}}
	return &dynamodb.DescribeTableOutput{Table: &desc}, nil
}

// TestUpgradeOnlineWaitsForTheIndex: where the server adds the index (AWS),
// the upgrade asks for it as an on-demand table must (no provisioned
// throughput), waits while it is built, and copies nothing.
func TestUpgradeOnlineWaitsForTheIndex(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	table := writeOldLeases(t, db)
	before := rawItems(t, db, table)
	fake := &indexBuildingDB{DynamoDBAPI: db, table: table, building: 3}
	core, logs := observer.New(zap.InfoLevel)
	if err := Upgrade(ctx, fake, table, shortUpgrade(zap.New(core))); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if len(fake.updates) != 1 || fake.updates[0].GlobalSecondaryIndexUpdates[0].Create.ProvisionedThroughput != nil {
		t.Fatalf("UpdateTable calls: %d, want one without a provisioned throughput", len(fake.updates))
	}
	if fake.building != 0 {
		t.Errorf("the upgrade returned with the index still CREATING (%d describes left)", fake.building)
	}
	if logs.FilterMessageSnippet("being built").Len() == 0 || logs.FilterMessageSnippet("owner index ACTIVE").Len() == 0 {
		t.Errorf("the wait for the index was not logged; logged: %v", messages(logs))
	}
	if logs.FilterMessageSnippet("offline").Len() != 0 || tableExists(t, db, table+"-upgrade") {
		t.Errorf("the online upgrade copied the table; logged: %v", messages(logs))
	}
	sameItems(t, db, table, before)
}
