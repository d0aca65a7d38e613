package consumer_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// onStream returns the per-user count of the records the stream holds, read back from every shard (open
// and closed) from TRIM_HORIZON: what exactly-once counting must end at. It is the producer's tally,
// except that a PutRecords call the SDK retried after the emulator had stored it leaves a second copy on
// the stream (a producer retry, which --processor count does not recognise); such copies are logged.
func onStream(t *testing.T, kin *kinesis.Client, stream string, produced map[string]int64) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("list shards of %s: %v", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	counts := map[string]int64{}
	copies := map[string]int{}
	for _, sh := range shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("iterator of %s: %v", aws.ToString(sh.ShardId), err)
		}
		next := it.ShardIterator
		for next != nil {
			out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next, Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatalf("read %s: %v", aws.ToString(sh.ShardId), err)
			}
			for _, r := range out.Records {
				var ev struct {
					UserID  string `json:"user_id"`
					ClickID string `json:"click_id"`
				}
				if err := json.Unmarshal(r.Data, &ev); err != nil || ev.UserID == "" {
					t.Fatalf("record %s of %s is not a generated event: %q", aws.ToString(r.SequenceNumber), aws.ToString(sh.ShardId), r.Data)
				}
				counts[ev.UserID]++
				copies[ev.ClickID]++
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			next = out.NextShardIterator
		}
	}
	for id, n := range copies {
		if n > 1 {
			t.Logf("click %s is on the stream %d times (a producer retry): counted %d times", id, n, n)
		}
	}
	for u, n := range produced {
		if counts[u] < n {
			t.Fatalf("user %s: %d records on the stream, but the producer had %d stored", u, counts[u], n)
		}
	}
	return counts
}
