package clickgen

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// PutRecordsAPI is the part of the Kinesis client the stream sink uses.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// StreamSink writes events to a Kinesis stream with PutRecords, partition key user_id.
type StreamSink struct {
	API    PutRecordsAPI
	Stream string
}

// Put sends the batch in one PutRecords call and returns the entries Kinesis did not store
// (ProvisionedThroughputExceeded or internal failures), in their original order.
func (s *StreamSink) Put(ctx context.Context, batch []Event) ([]Event, error) {
	entries := make([]ktypes.PutRecordsRequestEntry, len(batch))
	for i, ev := range batch {
		entries[i] = ktypes.PutRecordsRequestEntry{Data: ev.Data, PartitionKey: aws.String(ev.UserID)}
	}
	out, err := s.API.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.Stream), Records: entries})
	if err != nil {
		return nil, fmt.Errorf("put %d records to stream %s: %w", len(batch), s.Stream, err)
	}
	if aws.ToInt32(out.FailedRecordCount) == 0 {
		return nil, nil
	}
	if len(out.Records) != len(batch) {
		return nil, fmt.Errorf("put records to stream %s: %d results for %d records", s.Stream, len(out.Records), len(batch))
	}
	var failed []Event
	for i, r := range out.Records {
		if r.ErrorCode != nil {
			failed = append(failed, batch[i])
		}
	}
	return failed, nil
}

// LineSink writes each event's JSON as one line (NDJSON) to W; it never fails an entry alone.
type LineSink struct {
	W io.Writer
}

// Put writes the batch and flushes it.
func (s *LineSink) Put(_ context.Context, batch []Event) ([]Event, error) {
	w := bufio.NewWriter(s.W)
	for _, ev := range batch {
		w.Write(ev.Data)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write events: %w", err)
	}
	return nil, nil
}
