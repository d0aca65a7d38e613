package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// The classifier against the real servers' answers: what repeats is permanent, an unreachable server is not.
func TestIsPermanentAgainstServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kin, ddb, rdb, pg := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t), testenv.Postgres(t)
	missing := testenv.Name(t, "missing")
	check := func(what string, err error, want bool) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if got := retry.IsPermanent(err); got != want {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", what, err, got, want)
		}
	}
	_, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(missing),
		Records: []ktypes.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}})
	check("PutRecords to a missing stream", err, true)
	_, err = ddb.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{
		missing: {{PutRequest: &dtypes.PutRequest{Item: map[string]dtypes.AttributeValue{"k": &dtypes.AttributeValueMemberS{Value: "v"}}}}}}})
	check("BatchWriteItem to a missing table", err, true)
	err = rdb.Eval(ctx, `return redis.call('HSET')`, []string{"k"}).Err()
	check("a failing Lua script", err, true)
	key := testenv.Name(t, "str")
	if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	check("HGETALL of a string", rdb.HGetAll(ctx, key).Err(), true)
	_, err = pg.Exec(ctx, "SELECT * FROM "+`"`+missing+`"`)
	check("a query of a missing table", err, true)

	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer down.Close()
	check("Redis not listening", down.Ping(ctx).Err(), false)
	var s *kinesis.Client = kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	})
	_, err = s.ListStreams(ctx, &kinesis.ListStreamsInput{})
	check("Kinesis not listening", err, false)
}
