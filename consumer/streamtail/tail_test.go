package streamtail_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

var errEnough = errors.New("enough records")

// A tail reads every record of every shard once, polling or through a stream consumer of its own; the
// consumer it registered is gone when it returns.
func TestTailReadsEveryRecordOnce(t *testing.T) {
	for _, mode := range []string{"polling", "efo"} {
		t.Run(mode, func(t *testing.T) {
			kin := testenv.Kinesis(t)
			var opts streamtail.Options
			var efo *kinesis.Client
			if mode == "efo" {
				efo = testenv.KinesisFanOut(t)
				opts.FanOut, opts.ConsumerName = efo, testenv.Name(t, "tail")
			}
			stream := testenv.Stream(t, kin, 2)
			const n = 40
			var entries []ktypes.PutRecordsRequestEntry
			for i := range n {
				entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String("k" + strconv.Itoa(i)), Data: []byte(strconv.Itoa(i))})
			}
			if _, err := kin.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var mu sync.Mutex
			seen := map[string]int{}
			total := 0
			err := streamtail.Tail(ctx, kin, stream, opts, func(r streamtail.Record) error {
				mu.Lock()
				defer mu.Unlock()
				seen[string(r.Data)]++
				if total++; total == n {
					return errEnough
				}
				return nil
			})
			if !errors.Is(err, errEnough) {
				t.Fatalf("Tail = %v after %d records, want all %d", err, total, n)
			}
			for i := range n {
				if c := seen[strconv.Itoa(i)]; c != 1 {
					t.Errorf("record %d read %d times, want once", i, c)
				}
			}
			if efo != nil {
				assertNoConsumer(t, efo, kin, stream, opts.ConsumerName)
			}
		})
	}
}

// assertNoConsumer fails unless the stream's consumer named name is deregistered (being deleted, or gone).
func assertNoConsumer(t *testing.T, efo, kin *kinesis.Client, stream, name string) {
	t.Helper()
	sum, err := kin.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := efo.DescribeStreamConsumer(context.Background(), &kinesis.DescribeStreamConsumerInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(name)})
	var notFound *ktypes.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		t.Fatal(err)
	case out.ConsumerDescription.ConsumerStatus != ktypes.ConsumerStatusDeleting:
		t.Fatalf("stream consumer %s is %s after the tail returned, want it deregistered (DELETING or gone)", name, out.ConsumerDescription.ConsumerStatus)
	}
}
