package provision_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// With Clients.FanOut, Setup registers the stream consumers of the efo read mode on the input stream,
// once: a second run finds them.
func TestSetupRegistersStreamConsumers(t *testing.T) {
	kin, ddb, efo := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.KinesisFanOut(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := provision.DefaultResources()
	base := testenv.Name(t, "cf")
	r.Stream, r.OffersStream, r.ErrorsStream = base, base+"-offers", base+"-errors"
	r.LeaseTable, r.SessionsTable, r.ArchiveLeaseTable = base+"-leases", base+"-sessions", base+"-archive"
	r.Shards, r.Buckets = 1, nil
	r.StreamConsumers = []string{r.LeaseTable, r.ArchiveLeaseTable}
	t.Cleanup(func() {
		for _, s := range []string{r.Stream, r.OffersStream, r.ErrorsStream} {
			_, _ = kin.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(s), EnforceConsumerDeletion: aws.Bool(true)})
		}
	})
	arns := map[string]string{}
	for run := 1; run <= 2; run++ {
		if err := provision.Setup(ctx, provision.Clients{Kinesis: kin, DynamoDB: ddb, FanOut: efo}, r, nil); err != nil {
			t.Fatalf("setup run %d: %v", run, err)
		}
		sum, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(r.Stream)})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range r.StreamConsumers {
			out, err := efo.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(name)})
			if err != nil {
				t.Fatalf("run %d: stream consumer %s: %v", run, name, err)
			}
			d := out.ConsumerDescription
			if d.ConsumerStatus != ktypes.ConsumerStatusActive {
				t.Fatalf("run %d: stream consumer %s is %s, want ACTIVE", run, name, d.ConsumerStatus)
			}
			if prev, ok := arns[name]; ok && prev != aws.ToString(d.ConsumerARN) {
				t.Fatalf("run %d registered %s again: ARN %s, was %s", run, name, aws.ToString(d.ConsumerARN), prev)
			}
			arns[name] = aws.ToString(d.ConsumerARN)
		}
	}
}
