package awscalls

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

func TestAction(t *testing.T) {
	for _, tc := range []struct{ service, op, want string }{
		{"Kinesis", "GetRecords", "kinesis:GetRecords"},
		{"DynamoDB", "BatchWriteItem", "dynamodb:BatchWriteItem"},
		{"S3", "HeadBucket", "s3:ListBucket"},
		{"S3", "ListObjectsV2", "s3:ListBucket"},
		{"S3", "HeadObject", "s3:GetObject"},
		{"S3", "PutObject", "s3:PutObject"},
		{"CloudWatch", "GetMetricData", "cloudwatch:GetMetricData"},
	} {
		if got := Action(tc.service, tc.op); got != tc.want {
			t.Errorf("Action(%s, %s) = %s, want %s", tc.service, tc.op, got, tc.want)
		}
	}
}

func TestResources(t *testing.T) {
	r := &Recorder{iters: map[string]string{}}
	for _, tc := range []struct {
		name    string
		service string
		op      string
		in      any
		want    []Resource
	}{
		{"stream by name", "Kinesis", "", &kinesis.ListShardsInput{StreamName: aws.String("s1")}, []Resource{{Stream, "s1"}}},
		{"stream by ARN", "Kinesis", "", &kinesis.PutRecordsInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s2")}, []Resource{{Stream, "s2"}}},
		{"consumer by ARN", "Kinesis", "SubscribeToShard", &kinesis.SubscribeToShardInput{ConsumerARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s3/consumer/c1:1700000000")},
			[]Resource{{Consumer, "s3/consumer/c1:1700000000"}}},
		{"consumer by stream and name", "Kinesis", "DescribeStreamConsumer",
			&kinesis.DescribeStreamConsumerInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s3"), ConsumerName: aws.String("c1")},
			[]Resource{{Consumer, "s3/consumer/c1:*"}}},
		{"consumer registration", "Kinesis", "RegisterStreamConsumer",
			&kinesis.RegisterStreamConsumerInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s3"), ConsumerName: aws.String("c1")},
			[]Resource{{Stream, "s3"}}},
		{"unknown iterator", "Kinesis", "", &kinesis.GetRecordsInput{ShardIterator: aws.String("never-seen")}, nil},
		{"table", "DynamoDB", "", &dynamodb.ScanInput{TableName: aws.String("t")}, []Resource{{Table, "t"}}},
		{"index", "DynamoDB", "", &dynamodb.QueryInput{TableName: aws.String("t"), IndexName: aws.String("i")}, []Resource{{Index, "t/index/i"}}},
		{"batch", "DynamoDB", "", &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{"b": nil, "a": nil}}, []Resource{{Table, "a"}, {Table, "b"}}},
		{"bucket", "S3", "", &s3.HeadBucketInput{Bucket: aws.String("lake")}, []Resource{{Bucket, "lake"}}},
		{"object", "S3", "", &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String("raw/x")}, []Resource{{Object, "lake/raw/x"}}},
		{"no resource", "CloudWatch", "", &struct{}{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.resources(tc.service, tc.op, tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("resources = %v, want %v", got, tc.want)
			}
		})
	}
}

// A GetRecords is recorded on the stream of the iterator it uses, learnt from GetShardIterator and from
// the previous GetRecords; calls are appended as JSON lines, failed ones marked.
func TestRecorderFollowsIterators(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls")
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	call := func(op string, in, result any, fail error) {
		next := middleware.InitializeHandlerFunc(func(context.Context, middleware.InitializeInput) (middleware.InitializeOutput, middleware.Metadata, error) {
			return middleware.InitializeOutput{Result: result}, middleware.Metadata{}, fail
		})
		_, _, _ = r.record(context.Background(), "Kinesis", op, middleware.InitializeInput{Parameters: in}, next)
	}
	call("GetShardIterator", &kinesis.GetShardIteratorInput{StreamName: aws.String("s")}, &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it1")}, nil)
	call("GetRecords", &kinesis.GetRecordsInput{ShardIterator: aws.String("it1")}, &kinesis.GetRecordsOutput{NextShardIterator: aws.String("it2")}, nil)
	call("GetRecords", &kinesis.GetRecordsInput{ShardIterator: aws.String("it2")}, nil, errors.New("expired"))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	calls, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Call{
		{Service: "Kinesis", Operation: "GetShardIterator", Action: "kinesis:GetShardIterator", Resources: []Resource{{Stream, "s"}}},
		{Service: "Kinesis", Operation: "GetRecords", Action: "kinesis:GetRecords", Resources: []Resource{{Stream, "s"}}},
		{Service: "Kinesis", Operation: "GetRecords", Action: "kinesis:GetRecords", Resources: []Resource{{Stream, "s"}}, Failed: true},
	}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls = %+v\nwant    %+v", calls, want)
	}
}
