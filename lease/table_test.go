package lease

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestEnsureTableIsIdempotent(t *testing.T) {
	db := testDB(t)
	name := testTable(t, db)
	for range 2 {
		if err := EnsureTable(context.Background(), db, name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTableFencing(t *testing.T) {
	db := testDB(t)
	tbl := NewTable(db, testTable(t, db))
	ctx := context.Background()
	createLeases(t, tbl, 1)
	key := "shardId-000000000000"
	if err := tbl.Create(ctx, Lease{Key: key}); !errors.Is(err, ErrLeaseExists) {
		t.Fatalf("second create: %v, want ErrLeaseExists", err)
	}
	l, err := tbl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if l.Counter != 0 || l.Owner != "" || l.Checkpoint != TrimHorizon {
		t.Fatalf("new lease %+v", l)
	}
	a, err := tbl.take(ctx, l, "a")
	if err != nil || a.Owner != "a" || a.Counter != 1 {
		t.Fatalf("take: %+v %v", a, err)
	}
	if _, err := tbl.take(ctx, l, "b"); !errors.Is(err, errConditionFailed) {
		t.Fatalf("take at a stale counter: %v, want condition failed", err)
	}
	b, err := tbl.take(ctx, a, "b") // as if a had expired
	if err != nil || b.Owner != "b" || b.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("take from a: %+v %v", b, err)
	}
	if _, err := tbl.renew(ctx, key, "a", a.Counter); !errors.Is(err, errConditionFailed) {
		t.Fatalf("deposed renew: %v, want condition failed", err)
	}
	if _, err := tbl.apply(ctx, "checkpoint", key, checkpointUpdate(Checkpoint{SequenceNumber: "5"}).fenceCounter(a.Counter).ownerIs("a")); !errors.Is(err, errConditionFailed) {
		t.Fatalf("deposed checkpoint: %v, want condition failed", err)
	}
	c, err := tbl.steal(ctx, b, "c")
	if err != nil || c.Owner != "c" || c.CheckpointOwner != "b" {
		t.Fatalf("steal: %+v %v", c, err)
	}
	if _, err := tbl.steal(ctx, c, "d"); !errors.Is(err, errConditionFailed) {
		t.Fatalf("steal during a handoff: %v, want condition failed", err)
	}
	if _, err := tbl.apply(ctx, "checkpoint", key, checkpointUpdate(Checkpoint{SequenceNumber: "7", SubSequence: 2}).checkpointOwnerIs("b")); err != nil {
		t.Fatalf("final checkpoint of the previous owner: %v", err)
	}
	p, err := tbl.passOn(ctx, key, "b")
	if err != nil || p.CheckpointOwner != "" || p.Owner != "c" || p.Counter != c.Counter || p.Checkpoint != (Checkpoint{SequenceNumber: "7", SubSequence: 2}) || p.OwnerSwitchesSinceCheckpoint != 0 {
		t.Fatalf("pass on: %+v %v", p, err)
	}
	if _, err := tbl.passOn(ctx, key, "b"); !errors.Is(err, errConditionFailed) {
		t.Fatalf("second pass on: %v, want condition failed", err)
	}
	e, err := tbl.evict(ctx, key, "c", p.Counter)
	if err != nil || e.Owner != "" || e.Counter != p.Counter+1 {
		t.Fatalf("evict: %+v %v", e, err)
	}
}

// TestUnknownAttributesSurvive shows that an attribute written by another
// tool survives take, renew, checkpoint, steal, handoff and release.
func TestUnknownAttributesSurvive(t *testing.T) {
	db := testDB(t)
	name := testTable(t, db)
	tbl := NewTable(db, name)
	ctx := context.Background()
	createLeases(t, tbl, 1)
	key := "shardId-000000000000"
	_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String("SET operatorNote = :n, throughputKBps = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": str("do not delete"), ":t": &types.AttributeValueMemberN{Value: "12.5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := tbl.Get(ctx, key)
	l, err = tbl.take(ctx, l, "a")
	if err == nil {
		l, err = tbl.renew(ctx, key, "a", l.Counter)
	}
	if err == nil {
		l, err = tbl.apply(ctx, "checkpoint", key, checkpointUpdate(Checkpoint{SequenceNumber: "42"}).fenceCounter(l.Counter).ownerIs("a"))
	}
	if err == nil {
		l, err = tbl.steal(ctx, l, "b")
	}
	if err == nil {
		l, err = tbl.passOn(ctx, key, "a")
	}
	if err == nil {
		_, err = tbl.evict(ctx, key, "b", l.Counter)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(name), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	note, ok := out.Item["operatorNote"].(*types.AttributeValueMemberS)
	if !ok || note.Value != "do not delete" {
		t.Fatalf("operatorNote lost: %#v", out.Item)
	}
	if _, ok := out.Item["throughputKBps"]; !ok {
		t.Fatalf("throughputKBps lost: %#v", out.Item)
	}
	if cp := out.Item["checkpoint"].(*types.AttributeValueMemberS).Value; cp != "42" {
		t.Fatalf("checkpoint %q", cp)
	}
}

func TestLineage(t *testing.T) {
	db := testDB(t)
	tbl := NewTable(db, testTable(t, db))
	ctx := context.Background()
	parents := createLeases(t, tbl, 2)
	child := "shardId-000000000009"
	for range 2 { // idempotent
		if err := tbl.CreateChild(ctx, child, parents, "0", "340282366920938463463374607431768211455"); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tbl.Get(ctx, child)
	if err != nil || len(c.ParentShardIDs) != 2 || c.Checkpoint != TrimHorizon || c.Owner != "" || c.StartingHashKey != "0" {
		t.Fatalf("child %+v %v", c, err)
	}
	may := func() bool {
		t.Helper()
		ok, err := tbl.MayStart(ctx, child)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if may() {
		t.Fatal("child may start before its parents ended")
	}
	for i, p := range parents {
		l, _ := tbl.Get(ctx, p)
		l, err := tbl.take(ctx, l, "a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.apply(ctx, "checkpoint", p, checkpointUpdate(ShardEnd).fenceCounter(l.Counter).ownerIs("a")); err != nil {
			t.Fatal(err)
		}
		if i == 0 && may() {
			t.Fatal("merge child may start with one parent unfinished")
		}
	}
	if !may() {
		t.Fatal("child may not start with both parents at SHARD_END")
	}
	if err := tbl.DeleteFinished(ctx, parents[0]); err != nil {
		t.Fatal(err)
	}
	if !may() {
		t.Fatal("a deleted parent blocks its child")
	}
	if err := tbl.DeleteFinished(ctx, child); !errors.Is(err, ErrInvalidCheckpoint) {
		t.Fatalf("delete unfinished: %v", err)
	}
	if _, err := tbl.MayStart(ctx, "nope"); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("may start unknown: %v", err)
	}
}
