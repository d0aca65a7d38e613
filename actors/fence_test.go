package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// notFailed fails the test if f reported a permanent failure: a fenced or expired owner ends its holding
// period, it does not stop the worker.
func notFailed(t *testing.T, f *Factory) {
	t.Helper()
	select {
	case err := <-f.Failed():
		t.Fatalf("the factory reported a permanent failure: %v", err)
	default:
	}
}

// A deposed owner whose lease still looks valid by its clock (its flush was already under way when the
// new owner started) cannot land its Redis state once the new owner raised the shard's fence: its flush
// stops as lease lost, writes no user state and checkpoints nothing, the worker does not fail, and the
// new owner's results are those of a single owner's run.
func TestFencedOwnerStopsAsLeaseLost(t *testing.T) {
	ref := newSinks(t)
	recs := workload(400, 12, 4)
	run(t, newFactory(t, ref.config("in")), recs, 100)

	s := ref.withTable(t)
	ctx := context.Background()
	valid := func() time.Duration { return time.Minute }
	fa, fb := newFactory(t, s.config("in")), newFactory(t, s.config("in"))
	a, b := fa.NewProcessor(testShard), fb.NewProcessor(testShard)
	cpA, cpB := &fakeCheckpointer{}, &fakeCheckpointer{}
	if err := a.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, ValidFor: valid, LeaseCounter: 7}); err != nil {
		t.Fatal(err)
	}
	if err := a.ProcessRecords(ctx, batch(recs[:200], cpA)); err != nil {
		t.Fatal(err)
	}
	// B takes the shard (a later take: a larger lease counter) before A's flush reaches Redis.
	if err := b.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, ValidFor: valid, LeaseCounter: 8}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.rdb.Get(ctx, session.FenceKey(s.prefix, testShard)).Result(); got != "8" {
		t.Fatalf("fence after B's start: %q, want 8", got)
	}
	err := a.ShutdownRequested(ctx, cpA)
	if !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("the fenced owner's flush: %v, want lease lost", err)
	}
	if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
		t.Fatalf("the fenced owner wrote %d users' state", n)
	}
	if cpA.calls != 0 {
		t.Fatalf("the fenced owner checkpointed %d times", cpA.calls)
	}
	notFailed(t, fa)
	// An older holding period starting late (its Initialize after B's) is refused at once.
	late := fa.NewProcessor(testShard)
	if err := late.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, ValidFor: func() time.Duration { return 0 }, LeaseCounter: 6}); !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("an older holding period's start: %v, want lease lost", err)
	}

	for i := 0; i < len(recs); i += 100 {
		if err := b.ProcessRecords(ctx, batch(recs[i:i+100], cpB)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.ShutdownRequested(ctx, cpB); err != nil {
		t.Fatal(err)
	}
	sameResults(t, s, ref)
	notFailed(t, fb)
}

// Once the lease's validity by this worker's clock is zero, a flush writes nothing at all — no outputs,
// no session rows, no state, no checkpoint — and stops as lease lost, not as a failure of the worker.
func TestExpiredLeaseWritesNothing(t *testing.T) {
	s := newSinks(t)
	ctx := context.Background()
	var valid atomic.Bool
	valid.Store(true)
	f := newFactory(t, s.config("in"))
	p := f.NewProcessor(testShard)
	cp := &fakeCheckpointer{}
	in := consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, LeaseCounter: 3, ValidFor: func() time.Duration {
		if valid.Load() {
			return time.Minute
		}
		return 0
	}}
	if err := p.Initialize(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := p.ProcessRecords(ctx, batch(workload(200, 10, 2), cp)); err != nil {
		t.Fatal(err)
	}
	valid.Store(false)
	if err := p.ShutdownRequested(ctx, cp); !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("final flush with an expired lease: %v, want lease lost", err)
	}
	if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
		t.Fatalf("%d users written after the lease expired", n)
	}
	if n := len(scanSessions(t, s.ddb, s.table)); n != 0 {
		t.Fatalf("%d sessions written after the lease expired", n)
	}
	if n := len(readStream(t, s.kin, s.offers)); n != 0 {
		t.Fatalf("%d offers written after the lease expired", n)
	}
	if cp.calls != 0 {
		t.Fatalf("%d checkpoints after the lease expired", cp.calls)
	}
	notFailed(t, f)
}

// A fence above the lease's counter while the lease is provably ours was left by an earlier lease table
// (its counters started again): the holding period sets it back and writes as usual.
func TestFenceFromAnEarlierLeaseTable(t *testing.T) {
	s := newSinks(t)
	ctx := context.Background()
	key := session.FenceKey(s.prefix, testShard)
	if err := s.rdb.Set(ctx, key, "100", 0).Err(); err != nil {
		t.Fatal(err)
	}
	f := newFactory(t, s.config("in"))
	p := f.NewProcessor(testShard)
	cp := &fakeCheckpointer{}
	in := consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, LeaseCounter: 2, ValidFor: func() time.Duration { return time.Minute }}
	if err := p.Initialize(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.rdb.Get(ctx, key).Result(); got != "2" {
		t.Fatalf("fence %q after the start, want 2", got)
	}
	if err := p.ProcessRecords(ctx, batch(workload(100, 5, 5), cp)); err != nil {
		t.Fatal(err)
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if n := len(userHashes(t, s.rdb, s.prefix)); n != 5 {
		t.Fatalf("%d users written, want 5", n)
	}
	notFailed(t, f)
}

// fenceToucher is a Redis whose transactions meet another owner: touch runs (on another connection)
// after WATCH and before the transaction's commands, once per Watch call.
type fenceToucher struct {
	*redis.Client
	touch func(call int)
	calls int
}

func (r *fenceToucher) Watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	return r.Client.Watch(ctx, func(tx *redis.Tx) error {
		r.calls++
		r.touch(r.calls)
		return fn(tx)
	}, keys...)
}

// The state write is a transaction watching the shard's fence: when the fence is written between its
// check and its EXEC (here: set again to this owner's own epoch, which the check passes), Redis refuses
// the whole transaction and nothing of it lands; the retry then finds a newer owner's fence and stops as
// lease lost, so no user's state was written at all.
func TestStateWriteWatchesTheFence(t *testing.T) {
	s := newSinks(t)
	ctx := context.Background()
	fence := session.FenceKey(s.prefix, testShard)
	other := s.rdb // the other owner's connection
	r := &fenceToucher{Client: s.rdb, touch: func(call int) {
		v := map[int]string{1: "5", 2: "9"}[call]
		if v != "" {
			if err := other.Set(ctx, fence, v, 0).Err(); err != nil {
				t.Error(err)
			}
		}
	}}
	cfg := s.config("in")
	cfg.Redis, cfg.WriteConcurrency = r, 1 // the transactions one after another: the first meets the touch
	f := newFactory(t, cfg)
	sh := &shardShared{f: f, shard: testShard, log: zap.NewNop(), epoch: 5}
	var users []userEffects
	for i := range 300 { // two transactions
		u := fmt.Sprintf("w%03d", i)
		users = append(users, userEffects{user: u, pos: session.Position{SequenceNumber: seqNo(i + 1)},
			fields: []any{session.FieldLastAccess, "7"}})
	}
	err := sh.writeState(ctx, users)
	if !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("state write after a newer owner's fence: %v, want lease lost", err)
	}
	if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
		t.Fatalf("%d users' state landed although the fence changed before the EXEC", n)
	}
	if r.calls < 2 {
		t.Fatalf("%d transactions tried, want the refused one retried", r.calls)
	}

	// With the fence left alone the same write lands, every user with its position.
	if err := other.Set(ctx, fence, "5", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.touch = func(int) {}
	if err := sh.writeState(ctx, users); err != nil {
		t.Fatal(err)
	}
	got := userHashes(t, s.rdb, s.prefix)
	if len(got) != len(users) {
		t.Fatalf("%d users written, want %d", len(got), len(users))
	}
	if h := got["w007"]; h[session.PositionField(testShard)] != seqNo(8)+":0" || h[session.FieldLastAccess] != "7" {
		t.Fatalf("user w007: %v", h)
	}
}

// recordingDynamo keeps the items of every BatchWriteItem.
type recordingDynamo struct {
	mu    sync.Mutex
	items []map[string]dtypes.AttributeValue
}

func (d *recordingDynamo) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, reqs := range in.RequestItems {
		seen := map[string]bool{}
		for _, r := range reqs {
			id := r.PutRequest.Item["session_id"].(*dtypes.AttributeValueMemberS).Value
			if seen[id] {
				return nil, fmt.Errorf("ValidationException: Provided list of item keys contains duplicates (%s)", id)
			}
			seen[id] = true
			d.items = append(d.items, r.PutRequest.Item)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// A flush's rows naming one session twice write it once, with the values listed last; without repeats
// every row is written as listed.
func TestWriteSessionsKeepsTheLastOfARepeat(t *testing.T) {
	s := newSinks(t)
	cfg := s.config("in")
	ddb := &recordingDynamo{}
	cfg.DynamoDB = ddb
	sh := &shardShared{f: newFactory(t, cfg), shard: testShard, log: zap.NewNop()}
	a := messages.NewSession("ua", "desktop", 1000)
	b := messages.NewSession("ub", "mobile", 2000)
	a2 := a
	a2.EventCount, a2.LastEventMs = 7, 9000
	if err := sh.writeSessions(context.Background(), []messages.Session{a, b, a2}); err != nil {
		t.Fatal(err)
	}
	count := map[string]string{}
	for _, it := range ddb.items {
		count[it["session_id"].(*dtypes.AttributeValueMemberS).Value] = it["event_count"].(*dtypes.AttributeValueMemberN).Value
	}
	if len(ddb.items) != 2 || count[a.SessionID] != "7" || count[b.SessionID] != "1" {
		t.Fatalf("items %d, counts %v; want 2 items, %s at 7", len(ddb.items), count, a.SessionID)
	}
	ddb.items = nil
	if err := sh.writeSessions(context.Background(), []messages.Session{a, b}); err != nil {
		t.Fatal(err)
	}
	if len(ddb.items) != 2 {
		t.Fatalf("%d items for two distinct sessions", len(ddb.items))
	}
}

// While the shard's fence is its holding period's own lease counter, no one else can have written the
// shard's users since they were loaded, so a flush reads no user positions: replayed records are skipped
// by the users themselves. Once the fence is gone (a Redis restart that lost it), flushes read every user's
// position again. Either way the sessions, the user state and the offers are a single clean run's.
func TestFlushReadsPositionsOnlyWithoutItsFence(t *testing.T) {
	ref := newSinks(t)
	recs := workload(400, 12, 5)
	run(t, newFactory(t, ref.config("in")), recs, 100)

	s := newSinks(t)
	ctx := context.Background()
	cfg := s.config("in")
	cfg.FlushMaxRecords = 100 // flushes as it goes
	f := newFactory(t, cfg)
	p := f.NewProcessor(testShard)
	cp := &fakeCheckpointer{}
	in := consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, LeaseCounter: 4, ValidFor: func() time.Duration { return time.Minute }}
	if err := p.Initialize(ctx, in); err != nil {
		t.Fatal(err)
	}
	// Records 101–200 come twice (a re-read after a GetRecords retry, say).
	for _, part := range [][]consumer.Record{recs[:100], recs[100:200], recs[100:300]} {
		if err := p.ProcessRecords(ctx, batch(part, cp)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "a flush's user state", time.Minute, func() bool { return testutil.ToFloat64(f.m.effects.WithLabelValues("state")) > 0 })
	if n := testutil.ToFloat64(f.m.positionsRead); n != 0 {
		t.Fatalf("%v user positions read while the fence was the holding period's own", n)
	}
	if err := s.rdb.Del(ctx, session.FenceKey(s.prefix, testShard)).Err(); err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]consumer.Record{recs[250:300], recs[300:400]} {
		if err := p.ProcessRecords(ctx, batch(part, cp)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(f.m.positionsRead); n == 0 {
		t.Fatal("no user positions read after the fence was lost")
	}
	if cp.position() != seqNo(len(recs))+":0" {
		t.Fatalf("checkpointed %q", cp.position())
	}
	sameResults(t, s, ref)
	if got, want := offerClicks(t, s.kin, s.offers), offerClicks(t, ref.kin, ref.offers); !maps.Equal(got, want) {
		t.Fatalf("offers by click id:\n got %v\nwant %v", got, want)
	}
	notFailed(t, f)
}

// A fence that is not a lease counter (a value someone else wrote under the key) is no fence at all:
// the state write stops with a permanent error naming the key and writes nothing, whatever its holding
// period's epoch (none, or one above what the value would read as 0), rather than read it as 0.
func TestStateWriteRefusesANonNumericFence(t *testing.T) {
	s := newSinks(t)
	ctx := context.Background()
	fence := session.FenceKey(s.prefix, testShard)
	f := newFactory(t, s.config("in"))
	users := []userEffects{{user: "w1", pos: session.Position{SequenceNumber: seqNo(1)}, fields: []any{session.FieldLastAccess, "7"}}}
	for _, tc := range []struct {
		name  string
		epoch int64
		value string
	}{
		{"no lease counter, a word", 0, "garbage"},
		{"lease counter 5, a word", 5, "garbage"},
		{"lease counter 5, empty", 5, ""},
		{"lease counter 5, digits then text", 5, "7x"},
		{"lease counter 5, a float", 5, "1e3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.rdb.Set(ctx, fence, tc.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			sh := &shardShared{f: f, shard: testShard, log: zap.NewNop(), epoch: tc.epoch}
			err := sh.writeState(ctx, users)
			if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), fence) {
				t.Fatalf("state write under the fence %q: %v, want a permanent error naming %s", tc.value, err, fence)
			}
			if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
				t.Fatalf("%d users' state written under the fence %q", n, tc.value)
			}
		})
	}
}

// A flush whose shard's fence reads as no lease counter stops with a permanent error naming the key,
// before it writes anything and without a checkpoint; so does the start of a holding period, which
// raises the fence.
func TestFlushStopsOnANonNumericFence(t *testing.T) {
	shared := newSinks(t)
	ctx := context.Background()
	valid := func() time.Duration { return time.Minute }
	for _, tc := range []struct {
		name    string
		counter int64 // the holding period's lease counter; 0: none
		before  bool  // the fence is garbage before Initialize (else after it)
	}{
		{"without a lease counter, garbage after the start", 0, false},
		{"with a lease counter, garbage after the start", 4, false},
		{"without a lease counter, garbage before the start", 0, true},
		{"with a lease counter, garbage before the start", 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *shared
			s.prefix = testenv.Name(t, "cf") + ":" // keys of its own
			fence := session.FenceKey(s.prefix, testShard)
			spoil := func() {
				if err := s.rdb.Set(ctx, fence, "garbage", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.before {
				spoil()
			}
			p := newFactory(t, s.config("in")).NewProcessor(testShard)
			cp := &fakeCheckpointer{}
			err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, ValidFor: valid, LeaseCounter: tc.counter})
			if err == nil {
				if !tc.before {
					spoil()
				}
				if err = p.ProcessRecords(ctx, batch(workload(50, 5, 3), cp)); err == nil {
					err = p.ShutdownRequested(ctx, cp)
				}
			}
			if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), fence) || errors.Is(err, lease.ErrLeaseLost) {
				t.Fatalf("holding period under the fence %q: %v, want a permanent error naming %s", "garbage", err, fence)
			}
			if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
				t.Fatalf("%d users' state written", n)
			}
			if cp.calls != 0 {
				t.Fatalf("%d checkpoints", cp.calls)
			}
		})
	}
}
