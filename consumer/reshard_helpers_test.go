package consumer_test

import (
	"context"
	"math/big"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func waitActive(t *testing.T, kin *kinesis.Client, stream string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := kin.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not ACTIVE after a reshard: %v", stream, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openShards(t *testing.T, kin *kinesis.Client, stream string) []ktypes.Shard {
	t.Helper()
	out, err := kin.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var open []ktypes.Shard
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool {
		return hashOf(t, open[i].HashKeyRange.StartingHashKey).Cmp(hashOf(t, open[j].HashKeyRange.StartingHashKey)) < 0
	})
	return open
}

func hashOf(t *testing.T, s *string) *big.Int {
	v, ok := new(big.Int).SetString(aws.ToString(s), 10)
	if !ok {
		t.Fatalf("bad hash key %q", aws.ToString(s))
	}
	return v
}

func midpoint(t *testing.T, s ktypes.Shard) string {
	lo, hi := hashOf(t, s.HashKeyRange.StartingHashKey), hashOf(t, s.HashKeyRange.EndingHashKey)
	return new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1).String()
}

// adjacentPair returns two open shards whose hash ranges touch.
func adjacentPair(t *testing.T, open []ktypes.Shard) (ktypes.Shard, ktypes.Shard) {
	t.Helper()
	for i := 0; i+1 < len(open); i++ {
		end := hashOf(t, open[i].HashKeyRange.EndingHashKey)
		if new(big.Int).Add(end, big.NewInt(1)).Cmp(hashOf(t, open[i+1].HashKeyRange.StartingHashKey)) == 0 {
			return open[i], open[i+1]
		}
	}
	t.Fatal("no adjacent open shards")
	return ktypes.Shard{}, ktypes.Shard{}
}

// waitOpen waits until the stream lists n open shards (a reshard has taken effect).
func waitOpen(t *testing.T, kin *kinesis.Client, stream string, n int) {
	t.Helper()
	waitActive(t, kin, stream)
	deadline := time.Now().Add(30 * time.Second)
	for len(openShards(t, kin, stream)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("stream %s does not list %d open shards", stream, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
