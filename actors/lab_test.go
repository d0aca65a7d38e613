package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/oracle"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// putEvent is one event put on a stream, with where it landed.
type putEvent struct {
	user, device string
	ts           int64
	shard, seq   string
	data         []byte
}

// putAll puts the records in order (PutRecords of 100) and returns where each landed and the last
// sequence number of each shard.
func putAll(t *testing.T, kin *kinesis.Client, stream string, evs []putEvent) map[string]string {
	t.Helper()
	last := map[string]string{}
	for i := 0; i < len(evs); i += 100 {
		part := evs[i:min(i+100, len(evs))]
		entries := make([]ktypes.PutRecordsRequestEntry, len(part))
		for j, e := range part {
			entries[j] = ktypes.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.user)}
		}
		out, err := kin.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range out.Records {
			if r.ErrorCode != nil {
				t.Fatalf("put: %s", aws.ToString(r.ErrorMessage))
			}
			part[j].shard, part[j].seq = aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber)
			last[part[j].shard] = part[j].seq
		}
	}
	return last
}

// checkpointedTo reports whether every shard's lease in table is checkpointed at its last sequence.
func checkpointedTo(t *testing.T, ddb *dynamodb.Client, table string, last map[string]string) bool {
	t.Helper()
	leases, err := lease.NewTable(ddb, table).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, l := range leases {
		if seq, ok := last[l.Key]; ok && l.Checkpoint.SequenceNumber == seq {
			done++
		}
	}
	return done == len(last)
}

func leaseTable(t *testing.T, ddb *dynamodb.Client) string { return testenv.LeaseTable(t, ddb) }

// labEvents is the lab's click simulator without its sleeps: users user1..3 and five event names picked at
// random, event timestamps 2 s apart, and a 15 s pause after every 60 events.
func labEvents(n int, seed uint64) []putEvent {
	r := rand.New(rand.NewPCG(seed, 7))
	users := []string{"user1", "user2", "user3"}
	names := []string{"checkout", "search", "category", "detail", "navigate"}
	ts := int64(1_626_091_318_000)
	out := make([]putEvent, n)
	for i := range out {
		u := users[r.IntN(len(users))]
		out[i] = putEvent{user: u, device: "desktop", ts: ts, data: labJSON(u, names[r.IntN(len(names))], ts, "desktop")}
		ts += 2000
		if (i+1)%60 == 0 {
			ts += 15000
		}
	}
	return out
}

// sqlSessions computes the sessions with PostgreSQL from the events as they landed on the stream: the
// lab's LAG over each user's events in stream order, a session starting where the gap exceeds 10 s or
// there is no previous event, named as docs/contracts.md says.
func sqlSessions(t *testing.T, evs []putEvent) map[string]messages.Session {
	t.Helper()
	in := make([]oracle.Event, len(evs))
	for i, e := range evs {
		in[i] = oracle.Event{UserID: e.user, TimestampMs: e.ts, DeviceType: e.device, Shard: e.shard, Seq: e.seq}
	}
	return testenv.OracleSessions(t, in)
}

// The lab's scenario through a real worker: the sessions in DynamoDB are exactly those the lab's SQL
// gives for the same events, computed independently by PostgreSQL.
func TestLabScenarioMatchesSQL(t *testing.T) {
	s := newSinks(t)
	stream := testenv.Stream(t, s.kin, 2)
	evs := labEvents(720, 1)
	last := putAll(t, s.kin, stream, evs)
	want := sqlSessions(t, evs)

	cfg := s.config(stream)
	cfg.FlushInterval, cfg.FlushMaxRecords = 100*time.Millisecond, 150
	cfg.SessionCloseDelay = 300 * time.Millisecond
	f := newFactory(t, cfg)
	table := leaseTable(t, s.ddb)
	defer runWorker(t, s, stream, table, "lab", f)()
	testenv.WaitFor(t, "every shard checkpointed at its last record", 60*time.Second, func() bool { return checkpointedTo(t, s.ddb, table, last) })
	// The users' last sessions are written by the idle close, gap + close delay after their last
	// record (processing time); the worker keeps running.
	testenv.WaitFor(t, "the session rows equal the SQL's", 90*time.Second, func() bool { return maps.Equal(scanSessions(t, s.ddb, s.table), want) })

	got := scanSessions(t, s.ddb, s.table)
	if writes, started := f.SessionWrites(); writes > 2*int64(len(want)) || started != int64(len(want)) {
		t.Errorf("%d session rows written for %d sessions (%d started); want at most 2 per session", writes, len(want), started)
	} else {
		t.Logf("%d session rows written for %d sessions (%.2f per session)", writes, len(want), float64(writes)/float64(len(want)))
	}
	if !maps.Equal(got, want) {
		for _, id := range sortedKeys(want) {
			if got[id] != want[id] {
				t.Errorf("session %s:\n got %+v\nwant %+v", id, got[id], want[id])
			}
		}
		for _, id := range sortedKeys(got) {
			if _, ok := want[id]; !ok {
				t.Errorf("extra session %+v", got[id])
			}
		}
		t.Fatalf("%d sessions, the SQL gives %d", len(got), len(want))
	}
	var events int64
	for _, s := range got {
		events += s.EventCount
	}
	if events != int64(len(evs)) || len(want) < 12*3 {
		t.Fatalf("%d sessions holding %d events; want ≥ 36 sessions holding %d", len(got), events, len(evs))
	}
	t.Logf("%d events → %d sessions, identical to the SQL's", len(evs), len(got))
	// Last access is each user's latest event.
	for u, h := range userHashes(t, s.rdb, s.prefix) {
		var latest int64
		for _, e := range evs {
			if e.user == u {
				latest = max(latest, e.ts)
			}
		}
		if h["last_access_ms"] != fmt.Sprint(latest) {
			t.Errorf("user %s: last_access_ms %s, want %d", u, h["last_access_ms"], latest)
		}
	}
}

// runWorker runs one in-process consumer worker with the actors' processors on stream, with short test
// timings, and returns the func that stops it and reports its error.
func runWorker(t *testing.T, s *sinks, stream, table, id string, f *Factory) (stop func()) {
	t.Helper()
	// Polling every 400ms, two applications on one stream (TestRedisOutageIsRetried's) stay within a
	// shard's 5 GetRecords calls/s.
	w, err := consumer.New(s.kin, s.ddb, consumer.Config{Stream: stream, NewProcessor: f.NewProcessor, MaxRecords: 100,
		IdleTime: 100 * time.Millisecond, MinCallInterval: 400 * time.Millisecond, ShardSyncInterval: time.Second,
		Lease: lease.Config{Table: table, WorkerID: id, FailoverTime: 2 * time.Second, TakeInterval: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker %s: %v", id, err)
		}
	}
}
