package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/consumer/kpl"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// recorder is a processor shared by all holding periods of a test: it checks that each user's records
// arrive in order, remembers what it saw, and checkpoints every batch.
type recorder struct {
	mu       sync.Mutex
	next     map[string]int // user → next expected counter
	seen     map[string]int // "shard/seq/sub" → deliveries
	errs     []string
	firstPos map[string]lease.Checkpoint // shard → first position delivered in its latest period
	// checkpointAt, when set, makes the processor checkpoint the first record it matches and never
	// checkpoint again: a holder that got no further.
	checkpointAt func(r consumer.Record) bool
	frozen       bool
}

func newRecorder() *recorder {
	return &recorder{next: map[string]int{}, seen: map[string]int{}, firstPos: map[string]lease.Checkpoint{}}
}

type recProc struct {
	r     *recorder
	shard string
	first bool
	last  *consumer.Record
}

func (r *recorder) factory(shard string) consumer.Processor {
	return &recProc{r: r, shard: shard, first: true}
}

func (p *recProc) Initialize(context.Context, consumer.InitInput) error { return nil }

func (p *recProc) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	r := p.r
	r.mu.Lock()
	if r.frozen {
		r.mu.Unlock()
		return nil
	}
	var cpAt *consumer.Record
	for i, rec := range b.Records {
		if p.first {
			r.firstPos[p.shard] = rec.Position()
			p.first = false
		}
		key := fmt.Sprintf("%s/%s/%d", rec.ShardID, rec.SequenceNumber, rec.SubSequence)
		r.seen[key]++
		user, n := parse(rec.Data)
		switch {
		case n == r.next[user]:
			r.next[user]++
		case n < r.next[user]: // a replay after a lease move: allowed
		default:
			r.errs = append(r.errs, fmt.Sprintf("user %s: record %d arrived before record %d (shard %s)", user, n, r.next[user], rec.ShardID))
		}
		if r.checkpointAt != nil && r.checkpointAt(rec) {
			cpAt = &b.Records[i]
			r.frozen = true
			break
		}
	}
	r.mu.Unlock()
	last := b.Records[len(b.Records)-1]
	if cpAt != nil {
		last = *cpAt
	}
	p.last = &last
	return b.Checkpointer.Checkpoint(ctx, last.SequenceNumber, last.SubSequence)
}

func (p *recProc) LeaseLost(context.Context) {}
func (p *recProc) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return cp.CheckpointShardEnd(ctx)
}
func (p *recProc) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error { return nil }

func parse(data []byte) (string, int) {
	user, n, _ := strings.Cut(string(data), ":")
	v, _ := strconv.Atoi(n)
	return user, v
}

func putUsers(t *testing.T, kin *kinesis.Client, stream string, users, perUser, from int) {
	t.Helper()
	var entries []ktypes.PutRecordsRequestEntry
	flush := func() {
		for len(entries) > 0 {
			out, err := kin.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			if err != nil {
				t.Fatal(err)
			}
			var again []ktypes.PutRecordsRequestEntry
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					again = append(again, entries[i])
				}
			}
			if len(again) > 0 {
				t.Fatalf("%d records failed; per-user order would break on retry", len(again))
			}
			entries = nil
		}
	}
	for n := from; n < from+perUser; n++ {
		for u := 0; u < users; u++ {
			user := "u" + strconv.Itoa(u)
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(user), Data: []byte(user + ":" + strconv.Itoa(n))})
		}
		flush() // one record per user per call keeps each user's order on the stream
	}
}

func leaseTable(t *testing.T) (*dynamodb.Client, string) {
	ddb := testenv.DynamoDB(t)
	return ddb, testenv.LeaseTable(t, ddb)
}

func startWorker(t *testing.T, kin *kinesis.Client, ddb *dynamodb.Client, stream, table, id string, f consumer.ProcessorFactory,
	opts ...func(*consumer.Config)) (stop func()) {
	t.Helper()
	cfg := consumer.Config{
		Stream: stream, NewProcessor: f, IdleTime: 100 * time.Millisecond, MinCallInterval: 250 * time.Millisecond,
		ShardSyncInterval: time.Second, ParentPollInterval: 200 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
		Lease: lease.Config{Table: table, WorkerID: id, FailoverTime: time.Second, TakeInterval: 300 * time.Millisecond},
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := consumer.New(kin, ddb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestReshardKeepsPerUserOrder(t *testing.T) { forEachReadMode(t, reshardKeepsPerUserOrder) }

// Children start only after their parents are finished, so each user's records keep their order across
// a split and a merge, and none is skipped.
func reshardKeepsPerUserOrder(t *testing.T, rm readMode) {
	kin := testenv.Kinesis(t)
	ddb, table := leaseTable(t)
	stream := testenv.Stream(t, kin, 2)
	rec := newRecorder()
	startWorker(t, kin, ddb, stream, table, "a", rec.factory, rm.config)
	startWorker(t, kin, ddb, stream, table, "b", rec.factory, rm.config)
	const users = 12
	putUsers(t, kin, stream, users, 20, 0)
	open := openShards(t, kin, stream)
	if _, err := kin.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: open[0].ShardId, NewStartingHashKey: aws.String(midpoint(t, open[0]))}); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, kin, stream, 3) // the split has taken effect before the next records are put
	putUsers(t, kin, stream, users, 20, 20)
	open = openShards(t, kin, stream)
	a, b := adjacentPair(t, open)
	if _, err := kin.MergeShards(context.Background(), &kinesis.MergeShardsInput{StreamName: aws.String(stream),
		ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId}); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, kin, stream, 2)
	putUsers(t, kin, stream, users, 20, 40)
	testenv.WaitFor(t, "every user's 60 records", 60*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for u := 0; u < users; u++ {
			if rec.next["u"+strconv.Itoa(u)] != 60 {
				return false
			}
		}
		return true
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) > 0 {
		t.Fatalf("order broken:\n%s", strings.Join(rec.errs, "\n"))
	}
	// The children were leased: every open shard has a lease.
	tbl := lease.NewTable(ddb, table)
	testenv.WaitFor(t, "a lease for every open shard", 30*time.Second, func() bool {
		leases, err := tbl.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, l := range leases {
			have[l.Key] = true
		}
		for _, sh := range openShards(t, kin, stream) {
			if !have[aws.ToString(sh.ShardId)] {
				return false
			}
		}
		return true
	})
}

func TestCheckpointInsideAggregateResumesAfterIt(t *testing.T) {
	forEachReadMode(t, checkpointInsideAggregateResumesAfterIt)
}

// A checkpoint in the middle of a KPL aggregate resumes after exactly that sub-record.
func checkpointInsideAggregateResumesAfterIt(t *testing.T, rm readMode) {
	kin := testenv.Kinesis(t)
	ddb, table := leaseTable(t)
	stream := testenv.Stream(t, kin, 1)
	subs := make([]kpl.SubRecord, 10)
	for i := range subs {
		subs[i] = kpl.SubRecord{PartitionKey: "u1", Data: []byte("u1:" + strconv.Itoa(i))}
	}
	agg, err := kpl.Aggregate(subs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kin.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("u1"), Data: agg}); err != nil {
		t.Fatal(err)
	}
	putUsers(t, kin, stream, 1, 5, 0) // plain records u0:0..4 after it

	// First holder checkpoints at sub-record 3 and then fails every batch: it never gets further.
	first := newRecorder()
	first.checkpointAt = func(r consumer.Record) bool { return r.Aggregated && r.SubSequence == 3 }
	stop := startWorker(t, kin, ddb, stream, table, "first", first.factory, rm.config)
	testenv.WaitFor(t, "the first holder's checkpoint inside the aggregate", 30*time.Second, func() bool {
		l, err := lease.NewTable(ddb, table).Get(context.Background(), "shardId-000000000000")
		return err == nil && l.Checkpoint.SubSequence == 3
	})
	stop()

	second := newRecorder()
	startWorker(t, kin, ddb, stream, table, "second", second.factory, rm.config)
	testenv.WaitFor(t, "the second holder to read to the end", 30*time.Second, func() bool {
		second.mu.Lock()
		defer second.mu.Unlock()
		return second.next["u0"] == 5
	})
	second.mu.Lock()
	defer second.mu.Unlock()
	if got := second.firstPos["shardId-000000000000"]; got.SubSequence != 4 {
		t.Fatalf("second holder started at %s, want sub-sequence 4 of the aggregate", got)
	}
	if len(second.seen) != 11 {
		t.Fatalf("second holder saw %d records, want 6 sub-records + 5 plain: %v", len(second.seen), second.seen)
	}
	for k, n := range second.seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", k, n)
		}
	}
}

// A record's Position orders it in its shard as the resume filter and the checkpoints need: by sequence
// number as a number, then by sub-sequence inside a KPL aggregate, after every starting position and
// before SHARD_END; and a bad configuration is refused naming the setting.
func TestComparePositionsAndConfig(t *testing.T) {
	const (
		seqA = "49590338271490256608559692538361571095921575989136588802"
		seqB = "49590338271490256608559692540925702759324208523137515618"
	)
	rec := func(seq string, sub int64) consumer.Record {
		return consumer.Record{ShardID: "shardId-000000000000", SequenceNumber: seq, SubSequence: sub}
	}
	for _, tc := range []struct {
		name string
		a    consumer.Record
		b    lease.Checkpoint
		want int
	}{
		{"later record", rec(seqB, 0), rec(seqA, 0).Position(), 1},
		{"earlier record", rec(seqA, 0), rec(seqB, 0).Position(), -1},
		{"a longer sequence number is later", rec("100", 0), rec("99", 0).Position(), 1},
		{"same record", rec(seqA, 0), rec(seqA, 0).Position(), 0},
		{"sub-records of one aggregate in order", rec(seqA, 1), rec(seqA, 2).Position(), -1},
		{"a sub-record after the aggregate's checkpointed first", rec(seqA, 1), lease.Checkpoint{SequenceNumber: seqA}, 1},
		{"at its own checkpoint", rec(seqA, 3), lease.Checkpoint{SequenceNumber: seqA, SubSequence: 3}, 0},
		{"the next record after an aggregate's last sub-record", rec(seqB, 0), rec(seqA, 7).Position(), 1},
		{"after TRIM_HORIZON", rec("1", 0), lease.TrimHorizon, 1},
		{"after LATEST", rec("1", 0), lease.Latest, 1},
		{"before SHARD_END", rec(seqB, 9), lease.ShardEnd, -1},
	} {
		t.Run("positions/"+tc.name, func(t *testing.T) {
			if got := tc.a.Position().Compare(tc.b); got != tc.want {
				t.Errorf("record %s/%d compared with %s = %d, want %d", tc.a.SequenceNumber, tc.a.SubSequence, tc.b, got, tc.want)
			}
			if got := tc.b.Compare(tc.a.Position()); got != -tc.want {
				t.Errorf("%s compared with record %s/%d = %d, want %d", tc.b, tc.a.SequenceNumber, tc.a.SubSequence, got, -tc.want)
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		_, err := consumer.New(nil, nil, consumer.Config{Stream: "s", NewProcessor: newRecorder().factory, InitialPosition: "NOW",
			Lease: lease.Config{Table: "t"}})
		if !errors.Is(err, consumer.ErrInvalidConfig) || !strings.Contains(err.Error(), "InitialPosition") {
			t.Fatalf("err = %v, want ErrInvalidConfig naming InitialPosition", err)
		}
		_, err = consumer.New(nil, nil, consumer.Config{Stream: "s", NewProcessor: newRecorder().factory, Lease: lease.Config{}})
		if !errors.Is(err, consumer.ErrInvalidConfig) || !strings.Contains(err.Error(), "Table") {
			t.Fatalf("err = %v, want ErrInvalidConfig naming the lease Table", err)
		}
	})
}

// A missing stream or lease table stops the worker at start with an error that says what to do.
func TestMissingResourcesAreNamed(t *testing.T) {
	kin := testenv.Kinesis(t)
	ddb, table := leaseTable(t)
	stream := testenv.Stream(t, kin, 1)
	for _, tc := range []struct{ name, stream, table, want, setting string }{
		{"stream", "no-such-stream-" + table, table, "stream no-such-stream-", "Stream"},
		{"lease table", stream, "no-such-table-" + table, "lease table no-such-table-", "Lease.Table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := consumer.New(kin, ddb, consumer.Config{Stream: tc.stream, NewProcessor: newRecorder().factory,
				Lease: lease.Config{Table: tc.table}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = w.Run(ctx)
			var re *consumer.ResourceError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &re) || re.Setting != tc.setting {
				t.Fatalf("Run() = %v, want a *consumer.ResourceError naming %q, setting %s", err, tc.want, tc.setting)
			}
		})
	}
}
