package actors

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// retryEvents returns n events of users u1..u4, as the ingest puts them: each with a UUIDv7 click_id,
// lab and POC shapes mixed (some POC events are offers), 1.3 s apart with a 15 s pause every 50 events so
// sessions end; then two lab events of user "anon" without click_id (a producer that bypasses the ingest).
func retryEvents(t *testing.T, n int, seed uint64) []putEvent {
	r := rand.New(rand.NewPCG(seed, 11))
	ts := int64(1_626_091_318_000)
	var out []putEvent
	for i := range n {
		if i > 0 && i%50 == 0 {
			ts += 15_000
		}
		ts += 1300
		u := fmt.Sprintf("u%d", 1+r.IntN(4))
		id, err := uuid.NewV7()
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if i%2 == 0 {
			lab := labJSON(u, "search", ts, "mobile")
			data = fmt.Appendf(lab[:len(lab)-1:len(lab)-1], `,"click_id":%q}`, id.String())
		} else {
			data = pocJSON(u, "ViewContent", ts, float64(r.IntN(101)), id.String())
		}
		out = append(out, putEvent{user: u, ts: ts, data: data})
	}
	for range 2 {
		ts += 1000
		out = append(out, putEvent{user: "anon", ts: ts, data: labJSON("anon", "detail", ts, "desktop")})
	}
	return out
}

// copies returns fresh putEvents with the same users and bytes, for putting again.
func copies(evs []putEvent) []putEvent {
	out := make([]putEvent, len(evs))
	for i, e := range evs {
		out[i] = putEvent{user: e.user, ts: e.ts, data: e.data}
	}
	return out
}

// withoutPositions returns a user hash without the fields that name stream positions, and without the
// session row's state (its write time depends on the run's timing).
func withoutPositions(h map[string]string) map[string]string {
	out := maps.Clone(h)
	maps.DeleteFunc(out, func(k, _ string) bool {
		return strings.HasPrefix(k, session.PositionFieldStem) || k == session.FieldShard || k == session.FieldRow
	})
	return out
}

// A producer's retries through a real worker: every batch is put twice under new sequence numbers, as a
// PutRecords call that timed out after storing and was sent again; later, after the shards moved to
// another worker (whose users rehydrate from Redis), the last batch is put a third time, and after both
// shards split, a fourth time (onto the children). Sessions,
// per-user counts, last access, the click window and offers end identical to another application's run
// over a single put of the same events. The events without click_id are each counted as many times as
// they were put: a position-derived id never de-duplicates.
func TestProducerRetriesDoNotDoubleCounts(t *testing.T) {
	evs := retryEvents(t, 240, 1)
	const batchSize = 40 // about 10 events per user in each retried call: well within the window

	ref := newSinks(t)
	refStream := testenv.Stream(t, ref.kin, 2)
	last := putAll(t, ref.kin, refStream, copies(evs))
	cfg := ref.config(refStream)
	cfg.FlushInterval = 100 * time.Millisecond
	refTable := leaseTable(t, ref.ddb)
	stop := runWorker(t, ref, refStream, refTable, "ref", newFactory(t, cfg))
	testenv.WaitFor(t, "the reference run checkpointed", 60*time.Second, func() bool { return checkpointedTo(t, ref.ddb, refTable, last) })
	stop()

	dup := ref.withTable(t)
	dup.offers = testenv.Stream(t, dup.kin, 1)
	stream := testenv.Stream(t, dup.kin, 2)
	table := leaseTable(t, dup.ddb)
	cfg = dup.config(stream)
	cfg.FlushInterval = 100 * time.Millisecond
	f1 := newFactory(t, cfg)
	stop = runWorker(t, dup, stream, table, "dup-1", f1)
	last = map[string]string{}
	for i := 0; i < len(evs); i += batchSize {
		part := evs[i:min(i+batchSize, len(evs))]
		putAll(t, dup.kin, stream, copies(part))
		maps.Copy(last, putAll(t, dup.kin, stream, copies(part))) // the retry: the same bytes again
	}
	testenv.WaitFor(t, "the first worker checkpointed", 60*time.Second, func() bool { return checkpointedTo(t, dup.ddb, table, last) })
	stop()

	// The shards move to a new worker; a late retry of the last call arrives there.
	lastCall := evs[len(evs)-batchSize-2 : len(evs)-2] // the final ids-carrying events (not anon's)
	maps.Copy(last, putAll(t, dup.kin, stream, copies(lastCall)))
	f2 := newFactory(t, cfg)
	stop = runWorker(t, dup, stream, table, "dup-2", f2)
	testenv.WaitFor(t, "the second worker checkpointed", 60*time.Second, func() bool { return checkpointedTo(t, dup.ddb, table, last) })
	if got := testutil.ToFloat64(f2.m.duplicates); got != float64(len(lastCall)) {
		t.Errorf("the new owner dropped %g copies, want %d (from the windows it loaded)", got, len(lastCall))
	}

	// Both shards split; one more late copy of the last call lands on the children, whose users resume
	// the parents' state, window included.
	parents := splitAll(t, dup.kin, stream)
	last = putAll(t, dup.kin, stream, copies(lastCall))
	testenv.WaitFor(t, "the children checkpointed", 60*time.Second, func() bool { return checkpointedTo(t, dup.ddb, table, last) })
	stop()
	for shard := range last {
		if parents[shard] {
			t.Fatalf("a record put after the split landed on parent %s", shard)
		}
	}

	withIDs := len(evs) - 2
	if got, want := testutil.ToFloat64(f1.m.duplicates)+testutil.ToFloat64(f2.m.duplicates), float64(withIDs+2*len(lastCall)); got != want {
		t.Errorf("%g records dropped as copies, want %g", got, want)
	}

	// Sessions: identical but for anon's, which holds each of its events twice.
	refSessions, gotSessions := scanSessions(t, ref.ddb, ref.table), scanSessions(t, dup.ddb, dup.table)
	if len(refSessions) < 8 {
		t.Fatalf("the reference run has %d sessions; want several per user", len(refSessions))
	}
	for id, want := range refSessions {
		if want.UserID == "anon" {
			want.EventCount *= 2
		}
		if got := gotSessions[id]; got != want {
			t.Errorf("session %s:\n got %+v\nwant %+v", id, got, want)
		}
	}
	for id, got := range gotSessions {
		if _, ok := refSessions[id]; !ok {
			t.Errorf("extra session %+v", got)
		}
	}

	// User state: last access, the open session's counts, location and the click window all equal.
	refUsers, gotUsers := userHashes(t, ref.rdb, ref.prefix), userHashes(t, dup.rdb, dup.prefix)
	if len(refUsers) != 5 || len(gotUsers) != 5 {
		t.Fatalf("%d and %d user hashes, want 5", len(refUsers), len(gotUsers))
	}
	for u, want := range refUsers {
		want, got := withoutPositions(want), withoutPositions(gotUsers[u])
		if u == "anon" {
			if got[session.FieldCount] != "4" || got[session.FieldLastAccess] != want[session.FieldLastAccess] || got[session.FieldRecentClicks] != "" {
				t.Errorf("anon (no click_id, put twice): %v; want 4 events counted", got)
			}
			continue
		}
		if !maps.Equal(got, want) {
			t.Errorf("user %s:\n got %v\nwant %v", u, got, want)
		}
		if len(got[session.FieldRecentClicks]) != 342 {
			t.Errorf("user %s: window field of %d bytes, want a full window", u, len(got[session.FieldRecentClicks]))
		}
	}

	// Offers: each high-intent click once, as in the reference run.
	refOffers, gotOffers := offerClicks(t, ref.kin, ref.offers), offerClicks(t, dup.kin, dup.offers)
	if len(refOffers) == 0 || !maps.Equal(gotOffers, refOffers) {
		t.Errorf("offers by click_id:\n got %v\nwant %v", gotOffers, refOffers)
	}
	var events int64
	for _, s := range gotSessions {
		events += s.EventCount
	}
	t.Logf("%d events put %d times → %d sessions holding %d events, %d offers; as in a single put", len(evs),
		2*len(evs)+2*len(lastCall), len(gotSessions), events, len(gotOffers))
}

// splitAll splits every open shard of stream at the middle of its hash key range, one at a time, waits
// until the children are open, and returns the split shards' ids.
func splitAll(t *testing.T, kin *kinesis.Client, stream string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	parents := openShards(t, kin, stream)
	ids := map[string]bool{}
	for i, sh := range parents {
		ids[aws.ToString(sh.ShardId)] = true
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
		mid.Add(mid, big.NewInt(1))
		if _, err := kin.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: sh.ShardId,
			NewStartingHashKey: aws.String(mid.String())}); err != nil {
			t.Fatal(err)
		}
		want := len(parents) + i + 1
		testenv.WaitFor(t, fmt.Sprintf("%d open shards", want), 30*time.Second, func() bool {
			if len(openShards(t, kin, stream)) != want {
				return false
			}
			d, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
			return err == nil && d.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive
		})
	}
	return ids
}

// openShards lists the shards of stream that are not closed (the emulators differ in ShardFilter support).
func openShards(t *testing.T, kin *kinesis.Client, stream string) []ktypes.Shard {
	t.Helper()
	out, err := kin.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var open []ktypes.Shard
	for _, sh := range out.Shards {
		if sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, sh)
		}
	}
	return open
}
