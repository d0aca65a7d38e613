package faults_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// limitsRig is a Limits layer of the test's own in front of the Kinesis emulator, a client through it
// that does not retry (so each refusal reaches the test) and a client to the emulator itself.
type limitsRig struct {
	lim         *faults.Limits
	via, direct *kinesis.Client
}

func newLimitsRig(t *testing.T) *limitsRig {
	t.Helper()
	testenv.Kinesis(t)
	upstream := testenv.KinesisEmulatorURL(t)
	lim, err := faults.NewKinesisLimits(upstream, faults.LimitsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim)
	t.Cleanup(srv.Close)
	cfg := testenv.AWSConfig(t)
	return &limitsRig{
		lim:    lim,
		via:    kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(srv.URL), 1 }),
		direct: kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(upstream) }),
	}
}

func (r *limitsRig) iterator(t *testing.T, stream, shard string) *string {
	t.Helper()
	out, err := r.via.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String(shard), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	return out.ShardIterator
}

func isThroughputExceeded(err error) bool {
	var e *ktypes.ProvisionedThroughputExceededException
	return errors.As(err, &e) && !retry.IsPermanent(err)
}

// GetRecords calls on one shard beyond 5 per second are refused with ProvisionedThroughputExceeded, and
// the layer counts what it admitted and refused.
func TestLimitsGetRecordsCalls(t *testing.T) {
	r := newLimitsRig(t)
	stream := testenv.Stream(t, r.direct, 1)
	const shard = "shardId-000000000000"
	it := r.iterator(t, stream, shard)
	start := time.Now()
	ok, refused := 0, 0
	for range 12 {
		out, err := r.via.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it})
		switch {
		case err == nil:
			ok++
			it = out.NextShardIterator
		case isThroughputExceeded(err):
			refused++
		default:
			t.Fatalf("GetRecords: %v, want success or a ProvisionedThroughputExceededException", err)
		}
	}
	elapsed := time.Since(start).Seconds()
	if refused == 0 || float64(ok) > 5+5*elapsed+1 {
		t.Fatalf("12 calls in %.2fs: %d admitted, %d refused; want at most 5 + 5/s admitted", elapsed, ok, refused)
	}
	st := r.lim.Stats("GetRecords", stream, shard)
	if st.Calls != 12 || st.Throttled != refused {
		t.Fatalf("layer counted %+v, the client saw 12 calls and %d refusals", st, refused)
	}
}

// A GetRecords answer's record bytes are charged to its shard at 2 MiB/s beyond a second's 2 MiB: after
// reading 5.7 MB the shard's next calls are refused for about 1.7 s.
func TestLimitsGetRecordsBytes(t *testing.T) {
	r := newLimitsRig(t)
	stream := testenv.Stream(t, r.direct, 1)
	const shard, size = "shardId-000000000000", 950_000
	const records = 6
	for i := range records {
		data := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := r.direct.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	it := r.iterator(t, stream, shard)
	var read int64
	start := time.Now()       // the debt starts when the layer has the first answer, after this
	for read < records*size { // an emulator may answer in more than one call: read it all, as fast as allowed
		out, err := r.via.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it})
		if isThroughputExceeded(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range out.Records {
			read += int64(len(rec.Data))
		}
		it = out.NextShardIterator
	}
	if st := r.lim.Stats("GetRecords", stream, shard); st.Bytes != read {
		t.Fatalf("layer charged %d bytes, the answers held %d", st.Bytes, read)
	}
	_, err := r.via.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it})
	if !isThroughputExceeded(err) {
		t.Fatalf("right after reading %d bytes: %v, want ProvisionedThroughputExceeded", read, err)
	}
	testenv.WaitFor(t, "the shard's reads admitted again", 10*time.Second, func() bool {
		_, err := r.via.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it})
		return err == nil
	})
	if waited, debt := time.Since(start), time.Duration(float64(read-2<<20)/(2<<20)*float64(time.Second)); waited < debt {
		t.Fatalf("reads admitted again %v after the first read of %d bytes began, want ≥ %v", waited, read, debt)
	}
}

// onShard returns n partition keys whose MD5 falls in shard's hash key range.
func onShard(t *testing.T, sh ktypes.Shard, n int) []string {
	t.Helper()
	lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("user-%d", i)
		sum := md5.Sum([]byte(k))
		if h := new(big.Int).SetBytes(sum[:]); h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			keys = append(keys, k)
		}
	}
	return keys
}

// PutRecords past a shard's 1,000 records/s fails those records in a 200 answer with
// ProvisionedThroughputExceeded, in their places; only the admitted records are stored; another shard's
// budget is its own.
func TestLimitsPutRecordsPerShard(t *testing.T) {
	r := newLimitsRig(t)
	stream := testenv.Stream(t, r.direct, 2)
	ls, err := r.direct.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil || len(ls.Shards) != 2 {
		t.Fatalf("list shards: %v (%d shards)", err, len(ls.Shards))
	}
	a, b := ls.Shards[0], ls.Shards[1]
	put := func(keys []string) *kinesis.PutRecordsOutput {
		t.Helper()
		in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
		for _, k := range keys {
			in.Records = append(in.Records, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte(k)})
		}
		out, err := r.via.PutRecords(context.Background(), in)
		if err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
		return out
	}
	keysA := onShard(t, a, 500)
	start := time.Now()
	put(keysA)
	put(keysA)
	third := put(keysA)
	elapsed := time.Since(start).Seconds()
	admitted := 0
	for i, rec := range third.Records {
		switch {
		case rec.ErrorCode == nil && aws.ToString(rec.ShardId) == aws.ToString(a.ShardId):
			admitted++
		case aws.ToString(rec.ErrorCode) == "ProvisionedThroughputExceededException":
		default:
			t.Fatalf("record %d: shard %s, error %s %s", i, aws.ToString(rec.ShardId), aws.ToString(rec.ErrorCode), aws.ToString(rec.ErrorMessage))
		}
	}
	if got := int(aws.ToInt32(third.FailedRecordCount)); got != 500-admitted || admitted > int(1000*elapsed)+1 {
		t.Fatalf("third 500 records %.2fs after the first: %d admitted, FailedRecordCount %d; want at most 1,000/s", elapsed, admitted, got)
	}
	if out := put(onShard(t, b, 100)); aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("shard %s refused %d of 100 records while only the other shard was busy", aws.ToString(b.ShardId), aws.ToInt32(out.FailedRecordCount))
	}
	stored := countRecords(t, r.direct, stream, aws.ToString(a.ShardId))
	if stored != 1000+admitted {
		t.Fatalf("shard %s holds %d records, want the 1000 + %d admitted", aws.ToString(a.ShardId), stored, admitted)
	}
	if st := r.lim.Stats("PutRecords", stream, aws.ToString(a.ShardId)); st.Calls != 1500 || st.Throttled != 500-admitted {
		t.Fatalf("layer counted %+v, want 1500 records, %d throttled", st, 500-admitted)
	}
}

// PutRecords past a shard's 1 MiB/s: of ten records of 300,000 bytes in one call, the first three fit.
func TestLimitsPutRecordsBytes(t *testing.T) {
	r := newLimitsRig(t)
	stream := testenv.Stream(t, r.direct, 1)
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for i := range 10 {
		in.Records = append(in.Records, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: bytes.Repeat([]byte{'x'}, 300_000-1)})
	}
	out, err := r.via.PutRecords(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range out.Records {
		if failed := rec.ErrorCode != nil; failed != (i >= 3) {
			t.Fatalf("record %d: error %q, want the first three stored and the rest refused", i, aws.ToString(rec.ErrorCode))
		}
	}
	if n := countRecords(t, r.direct, stream, "shardId-000000000000"); n != 3 {
		t.Fatalf("the shard holds %d records, want 3", n)
	}
}

// Control-plane rates are answered with LimitExceededException; GetShardIterator's per-shard rate with
// ProvisionedThroughputExceeded.
func TestLimitsControlPlane(t *testing.T) {
	r := newLimitsRig(t)
	stream := testenv.Stream(t, r.direct, 1)
	for _, tc := range []struct {
		op    string
		rate  float64
		call  func() error
		check func(error) bool
	}{
		{"DescribeStreamSummary", 20, func() error {
			_, err := r.via.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
			return err
		}, func(err error) bool {
			var e *ktypes.LimitExceededException
			return errors.As(err, &e) && !retry.IsPermanent(err)
		}},
		{"GetShardIterator", 5, func() error {
			_, err := r.via.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
				ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeLatest})
			return err
		}, isThroughputExceeded},
	} {
		t.Run(tc.op, func(t *testing.T) {
			// All at once: the emulator answers slower than the rate, one call after another.
			n := 3 * int(tc.rate)
			errs := make(chan error, n)
			start := time.Now()
			for range n {
				go func() { errs <- tc.call() }()
			}
			ok, refused := 0, 0
			for range n {
				switch err := <-errs; {
				case err == nil:
					ok++
				case tc.check(err):
					refused++
				default:
					t.Fatalf("%s: %v", tc.op, err)
				}
			}
			if elapsed := time.Since(start).Seconds(); refused == 0 || float64(ok) > tc.rate*(1+elapsed)+1 {
				t.Fatalf("%d calls at once, answered in %.2fs: %d admitted, %d refused; want at most %g + %g/s admitted", n, elapsed, ok, refused, tc.rate, tc.rate)
			}
		})
	}
}

// countRecords reads a shard to its tip directly from the emulator.
func countRecords(t *testing.T, kin *kinesis.Client, stream, shard string) int {
	t.Helper()
	ctx := context.Background()
	it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	iter, n := it.ShardIterator, 0
	for iter != nil {
		out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Records)
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return n
		}
		iter = out.NextShardIterator
	}
	return n
}
