package bench

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Item sizes and capacity units as the DynamoDB Developer Guide counts them, worked out by hand.
func TestCapacityUnits(t *testing.T) {
	item := map[string]types.AttributeValue{
		"leaseKey":     &types.AttributeValueMemberS{Value: "shardId-000000000001"}, // 8 + 20
		"leaseCounter": &types.AttributeValueMemberN{Value: "12345"},                // 12 + (5+1)/2+1 = 4
		"leaving":      &types.AttributeValueMemberBOOL{Value: true},                // 7 + 1
	}
	if got, want := itemSize(item), 8+20+12+4+7+1; got != want {
		t.Fatalf("itemSize = %d, want %d", got, want)
	}
	c := &capacityDB{}
	c.addRead(5000, true)  // 2 units
	c.addRead(5000, false) // 1 unit
	c.addRead(10, false)   // 0.5
	c.addWrite(1500, 0)    // 2
	c.addWrite(10, 2)      // 1 + 2 index writes
	if r, w := c.units(); r != 3.5 || w != 5 {
		t.Fatalf("units = %v read, %v write; want 3.5 and 5", r, w)
	}
	set := &dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET #o = :o, #c = :c"), ExpressionAttributeNames: map[string]string{"#o": "leaseOwner", "#c": "leaseCounter"}}
	remove := &dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET #c = :c REMOVE #o"), ExpressionAttributeNames: map[string]string{"#o": "leaseOwner", "#c": "leaseCounter"}}
	renew := &dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET #c = :c"), ExpressionAttributeNames: map[string]string{"#c": "leaseCounter"}}
	if a, b, c := ownerIndexWrites(set), ownerIndexWrites(remove), ownerIndexWrites(renew); a != 2 || b != 1 || c != 0 {
		t.Fatalf("index writes: owner set %d, removed %d, untouched %d; want 2, 1, 0", a, b, c)
	}
}

// A small run of the lease simulation: every shard held, the leader's reads far below the every-worker-scan
// baseline's, recovery after the kills, and never two holders of a shard.
func TestLeasesScenario(t *testing.T) {
	ddb := testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Leases(ctx, LeasesConfig{DynamoDB: ddb, Shards: 60, Workers: 6, Duration: 30 * time.Second,
		HotShards: 1, HotFactor: 10, FailoverTime: 3 * time.Second, Baseline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	switch {
	case res.BaselineReadUnitsPerS <= 0 || res.ReadUnitsPerS <= 0:
		t.Errorf("read units not measured: %v (baseline %v)", res.ReadUnitsPerS, res.BaselineReadUnitsPerS)
	case res.ReadUnitsPerS >= res.BaselineReadUnitsPerS:
		t.Errorf("the leader mode read %v units/s, the every-worker scan %v", res.ReadUnitsPerS, res.BaselineReadUnitsPerS)
	}
	if res.MaxOverMeanLoad > 1.2 {
		t.Errorf("balanced at %.2f × the mean load, want at most 1.2", res.MaxOverMeanLoad)
	}
	if res.SecondsToBalance < 0 || res.RecoverySeconds < 0 || res.FailoverSeconds < 0 || res.LeaderRecoverySeconds < 0 {
		t.Errorf("not balanced or not recovered: %+v", res)
	}
	if res.Violations != 0 {
		t.Errorf("%d samples saw a shard held by two workers", res.Violations)
	}
}
