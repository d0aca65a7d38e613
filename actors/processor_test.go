package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

const testShard = "shardId-000000000007"

// workload returns n POC records of users users on testShard: 1.3 s apart per record with a 15 s pause
// every 97 records (so sessions end), ViewContent at various percentages, every third without click_id.
func workload(n, users int, seed uint64) []consumer.Record {
	r := rand.New(rand.NewPCG(seed, 1))
	names := []string{"Search", "AddToCart", "ViewContent", "Purchase"}
	base := int64(1_626_091_318_000)
	ts := base
	out := make([]consumer.Record, n)
	for i := range out {
		if i > 0 && i%97 == 0 {
			ts += 15_000
		}
		ts += 130 + r.Int64N(300)
		u := fmt.Sprintf("user-%03d", r.IntN(users))
		click := ""
		if i%3 != 0 {
			click = fmt.Sprintf("%032x", r.Uint64())
		}
		out[i] = rec(testShard, i+1, u, pocJSON(u, names[r.IntN(len(names))], ts, float64(r.IntN(101)), click))
	}
	return out
}

func batch(recs []consumer.Record, cp consumer.Checkpointer) consumer.Batch {
	return consumer.Batch{Records: recs, Checkpointer: cp}
}

// run processes recs in batches of size with one processor of f, then shuts it down (final flush).
func run(t *testing.T, f *Factory, recs []consumer.Record, size int) *fakeCheckpointer {
	t.Helper()
	cp := &fakeCheckpointer{}
	runWith(t, f, recs, size, cp)
	return cp
}

// runWith is run with a given checkpointer.
func runWith(t *testing.T, f *Factory, recs []consumer.Record, size int, cp consumer.Checkpointer) {
	t.Helper()
	ctx := context.Background()
	p := f.NewProcessor(testShard)
	if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += size {
		if err := p.ProcessRecords(ctx, batch(recs[i:min(i+size, len(recs))], cp)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
}

// sameResults compares two applications' sessions and user state.
func sameResults(t *testing.T, got, want *sinks) {
	t.Helper()
	gs, ws := scanSessions(t, got.ddb, got.table), scanSessions(t, want.ddb, want.table)
	if len(ws) == 0 {
		t.Fatal("the reference run wrote no sessions")
	}
	if !maps.Equal(gs, ws) {
		for _, id := range sortedKeys(ws) {
			if gs[id] != ws[id] {
				t.Errorf("session %s:\n got %+v\nwant %+v", id, gs[id], ws[id])
			}
		}
		t.Fatalf("sessions differ: %d rows, want %d", len(gs), len(ws))
	}
	gu, wu := userHashes(t, got.rdb, got.prefix), userHashes(t, want.rdb, want.prefix)
	if len(gu) != len(wu) {
		t.Fatalf("%d user hashes, want %d", len(gu), len(wu))
	}
	for u, w := range wu {
		// What a hash says of its session row (when it was written) depends on the run's timing.
		g := maps.Clone(gu[u])
		delete(g, session.FieldRow)
		w = maps.Clone(w)
		delete(w, session.FieldRow)
		if !maps.Equal(g, w) {
			t.Fatalf("user %s state:\n got %v\nwant %v", u, gu[u], w)
		}
	}
}

// Two owners overlap on one shard after a lease steal: the deposed owner keeps writing (it has not noticed
// yet). The final sessions and user state are exactly those of a single owner's run.
func TestDeposedOwnerCannotMoveStateBackwards(t *testing.T) {
	ref := newSinks(t)
	recs := workload(600, 25, 1)
	run(t, newFactory(t, ref.config("in")), recs, 100)

	t.Run("late flush after the new owner finished", func(t *testing.T) {
		s := ref.withTable(t)
		ctx := context.Background()
		// A, the old owner, processes half the shard; its flushes have not happened yet.
		a := newFactory(t, s.config("in")).NewProcessor(testShard)
		cpA := &fakeCheckpointer{}
		if err := a.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i += 100 {
			if err := a.ProcessRecords(ctx, batch(recs[i:i+100], cpA)); err != nil {
				t.Fatal(err)
			}
		}
		// The lease is stolen; B, the new owner, processes the whole shard and finishes.
		cpA.lose()
		run(t, newFactory(t, s.config("in")), recs, 150)
		// A wakes up and flushes: every effect is older than what B stored, so nothing may change.
		err := a.ShutdownRequested(ctx, cpA)
		if err == nil || !strings.Contains(err.Error(), "lease lost") {
			t.Fatalf("deposed owner's final flush: %v, want lease lost", err)
		}
		sameResults(t, s, ref)
	})

	t.Run("deposed owner ahead of the new one", func(t *testing.T) {
		s := ref.withTable(t)
		ctx := context.Background()
		cfgB := s.config("in")
		cfgB.FlushMaxRecords = 100 // B flushes as it goes, so some of its flushes are behind A's
		fa, fb := newFactory(t, s.config("in")), newFactory(t, cfgB)
		a, b := fa.NewProcessor(testShard), fb.NewProcessor(testShard)
		cpA, cpB := &fakeCheckpointer{}, &fakeCheckpointer{}
		for _, p := range []consumer.Processor{a, b} {
			if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
				t.Fatal(err)
			}
		}
		// B starts (its users load their state now), then A, still writing, flushes further than B is.
		if err := b.ProcessRecords(ctx, batch(recs[:50], cpB)); err != nil {
			t.Fatal(err)
		}
		if err := a.ProcessRecords(ctx, batch(recs[:400], cpA)); err != nil {
			t.Fatal(err)
		}
		cpA.lose()
		if err := a.ShutdownRequested(ctx, cpA); err == nil {
			t.Fatal("the deposed owner's checkpoint succeeded")
		}
		for i := 50; i < len(recs); i += 90 {
			if err := b.ProcessRecords(ctx, batch(recs[i:min(i+90, len(recs))], cpB)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.ShutdownRequested(ctx, cpB); err != nil {
			t.Fatal(err)
		}
		if cpB.position() != seqNo(len(recs))+":0" {
			t.Fatalf("new owner checkpointed %q", cpB.position())
		}
		sameResults(t, s, ref)
		if n := testutil.ToFloat64(fb.m.effects.WithLabelValues("stale")); n == 0 {
			t.Error("the new owner dropped no stale effects, so the race was not exercised")
		}
	})
}

// LeaseLost stops at once: nothing processed before it is written.
func TestLeaseLostWritesNothing(t *testing.T) {
	s := newSinks(t)
	ctx := context.Background()
	f := newFactory(t, s.config("in"))
	p, cp := startProcessor(t, f)
	if err := p.ProcessRecords(ctx, batch(workload(200, 10, 2), cp)); err != nil {
		t.Fatal(err)
	}
	p.LeaseLost(ctx)
	if err := p.ProcessRecords(ctx, batch(workload(10, 10, 3), cp)); err == nil {
		t.Fatal("ProcessRecords after LeaseLost succeeded")
	}
	if n := len(userHashes(t, s.rdb, s.prefix)); n != 0 {
		t.Fatalf("%d users written after the lease was lost", n)
	}
	if n := len(scanSessions(t, s.ddb, s.table)); n != 0 {
		t.Fatalf("%d sessions written after the lease was lost", n)
	}
	if cp.calls != 0 {
		t.Fatalf("%d checkpoints after the lease was lost", cp.calls)
	}
}

// Bad records go to the error stream with their reasons, in between good ones that are processed.
func TestPoisonRecordsGoToTheErrorStream(t *testing.T) {
	s := newSinks(t)
	base := int64(1_626_091_318_000)
	garbage := make([]byte, 1<<20)
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
	}
	poison := []struct {
		name, reason string
		data         []byte
	}{
		{"bad JSON", "", []byte(`{"user_id": "u1", "event_timestamp": `)},
		{"wrong types", "user_id", []byte(`{"user_id": 5.5, "event_timestamp": "soon", "event_name": 3}`)},
		{"1 MB of garbage", "", garbage},
		{"valid JSON of another shape", "timestamp: missing", []byte(`{"order": 17, "items": [1, 2, 3]}`)},
	}
	var recs []consumer.Record
	i := 0
	add := func(key string, data []byte) {
		i++
		recs = append(recs, rec(testShard, i, key, data))
	}
	add("u1", labJSON("u1", "search", base, "desktop"))
	for k, p := range poison {
		add("u1", p.data)
		add("u1", labJSON("u1", "detail", base+int64(k+1)*1000, "desktop"))
	}
	run(t, newFactory(t, s.config("in")), recs, 4)

	got := readStream(t, s.kin, s.errs)
	if len(got) != len(poison) {
		t.Fatalf("%d error records, want %d", len(got), len(poison))
	}
	for k, r := range got {
		var er messages.ErrorRecord
		if err := json.Unmarshal(r.Data, &er); err != nil {
			t.Fatalf("error record %d: %v", k, err)
		}
		p := poison[k]
		if er.Stream != "in" || er.ShardID != testShard || er.SequenceNumber != seqNo(2*k+2) ||
			!strings.HasPrefix(er.Reason, "invalid event") || !strings.Contains(er.Reason, p.reason) {
			t.Errorf("%s: error record %+v", p.name, er)
		}
		if want := p.data[:min(len(p.data), messages.MaxErrorData)]; string(er.Data) != string(want) {
			t.Errorf("%s: data not kept (%d bytes, want %d)", p.name, len(er.Data), len(want))
		}
		t.Logf("%s → %.100s", p.name, er.Reason)
	}
	sessions := scanSessions(t, s.ddb, s.table)
	want := messages.NewSession("u1", "desktop", base)
	want.LastEventMs, want.EventCount = base+int64(len(poison))*1000, int64(len(poison)+1)
	if len(sessions) != 1 || sessions[want.SessionID] != want {
		t.Fatalf("sessions %v, want only %+v", sessions, want)
	}
}

// An idle user is passivated by the sweep once its effects are written; its next records rehydrate it
// from Redis and continue its session.
func TestPassivationRehydratesFromRedis(t *testing.T) {
	s := newSinks(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := s.config("in")
	cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
	cfg.FlushInterval, cfg.PassivateAfter, cfg.SweepInterval = 10*time.Millisecond, time.Minute, 10*time.Millisecond
	f := newFactory(t, cfg)
	ctx := context.Background()
	p, cp := startProcessor(t, f)
	base := int64(1_626_091_318_000)
	ev := func(i int, user string, offsetMs int64) consumer.Record {
		return rec(testShard, i, user, labJSON(user, "search", base+offsetMs, "mobile"))
	}
	if err := p.ProcessRecords(ctx, batch([]consumer.Record{ev(1, "a", 0), ev(2, "b", 0), ev(3, "a", 2000)}, cp)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the first flush's checkpoint", 60*time.Second, func() bool { return cp.position() == seqNo(3)+":0" })
	if err := p.ProcessRecords(ctx, batch([]consumer.Record{ev(4, "b", 4000)}, cp)); err != nil {
		t.Fatal(err)
	}
	// Two minutes later (by the fake clock), both are idle; b's last record may not be flushed yet,
	// so it is passivated only after its flush.
	now.Add(int64(2 * time.Minute))
	testenv.WaitFor(t, "both users passivated", 60*time.Second, func() bool { return testutil.ToFloat64(f.m.passivated) == 2 })
	if live := testutil.ToFloat64(f.m.usersLive); live != 0 {
		t.Fatalf("%g users live after passivation", live)
	}
	if err := p.ProcessRecords(ctx, batch([]consumer.Record{ev(5, "a", 9000), ev(6, "b", 30000)}, cp)); err != nil {
		t.Fatal(err)
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(f.m.spawned); n != 4 {
		t.Fatalf("%g spawns, want 4 (two users, each twice)", n)
	}
	a := messages.NewSession("a", "mobile", base)
	a.LastEventMs, a.EventCount = base+9000, 3
	b1 := messages.NewSession("b", "mobile", base)
	b1.LastEventMs, b1.EventCount = base+4000, 2
	b2 := messages.NewSession("b", "mobile", base+30000)
	want := map[string]messages.Session{a.SessionID: a, b1.SessionID: b1, b2.SessionID: b2}
	if got := scanSessions(t, s.ddb, s.table); !maps.Equal(got, want) {
		t.Fatalf("sessions\n got %v\nwant %v", got, want)
	}
	if cp.position() != seqNo(6)+":0" {
		t.Fatalf("checkpoint %q", cp.position())
	}
}
