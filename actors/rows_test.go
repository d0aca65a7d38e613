package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// countingDynamo passes BatchWriteItem to a real server and counts the items it accepted, by session id.
type countingDynamo struct {
	DynamoDBAPI
	mu     sync.Mutex
	writes map[string]int
}

func (c *countingDynamo) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	out, err := c.DynamoDBAPI.BatchWriteItem(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	left := map[string]bool{}
	for _, reqs := range out.UnprocessedItems {
		for _, r := range reqs {
			left[idOf(r)] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writes == nil {
		c.writes = map[string]int{}
	}
	for _, reqs := range in.RequestItems {
		for _, r := range reqs {
			if id := idOf(r); !left[id] {
				c.writes[id]++
			}
		}
	}
	return out, nil
}

func idOf(r dtypes.WriteRequest) string {
	if r.PutRequest == nil {
		return ""
	}
	v, _ := r.PutRequest.Item["session_id"].(*dtypes.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

func (c *countingDynamo) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.writes)
}

// fakeClock is a processing-time clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time           { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time)          { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration)      { c.ns.Add(int64(d)) }
func (c *fakeClock) since(t0 time.Time) int64 { return (c.ns.Load() - t0.UnixNano()) / 1e6 }

// equalSessions fails the test with the differences when got is not want.
func equalSessions(t *testing.T, got, want map[string]messages.Session) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
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

// A known trace, 3 users × 10 sessions, processed with processing time moving as event time does (a
// fake clock): each session's row is written at most twice (its start and its close) plus once per
// update interval it stays open, and the rows end equal to PostgreSQL's LAG sessions.
func TestSessionWritesPerSession(t *testing.T) {
	s := newSinks(t)
	dyn := &countingDynamo{DynamoDBAPI: s.ddb}
	clock := newFakeClock()
	t0 := clock.Now()
	cfg := s.config("in")
	cfg.DynamoDB, cfg.Now = dyn, clock.Now
	cfg.FlushInterval, cfg.PassivateAfter = 10*time.Millisecond, time.Hour
	cfg.SessionUpdateInterval = time.Minute // default; the long sessions stay open 3+ intervals
	f := newFactory(t, cfg)

	// Each user: 10 sessions 40 s apart (event time); 4 events 2 s apart, but session 5 has 20 events
	// 10 s apart (190 s open). Users are offset by 1 s and interleaved in time order.
	base := int64(1_626_091_318_000)
	var evs []putEvent
	for u := range 3 {
		ts := base + int64(u)*1000
		for k := range 10 {
			n, step := int64(4), int64(2000)
			if k == 5 {
				n, step = 20, 10_000
			}
			for range n {
				user := fmt.Sprintf("w%d", u)
				evs = append(evs, putEvent{user: user, device: "mobile", ts: ts, data: labJSON(user, "search", ts, "mobile")})
				ts += step
			}
			ts += 40_000
		}
	}
	sortByTime(evs)
	var recs []consumer.Record
	for i := range evs {
		evs[i].shard, evs[i].seq = testShard, seqNo(i+1)
		recs = append(recs, rec(testShard, i+1, evs[i].user, evs[i].data))
	}
	want := sqlSessions(t, evs)
	if len(want) != 30 {
		t.Fatalf("the trace has %d sessions, want 30", len(want))
	}

	ctx := context.Background()
	p, cp := startProcessor(t, f)
	// One batch per event second; processing time follows event time; each batch is flushed before
	// the clock moves on.
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && evs[j].ts/1000 == evs[i].ts/1000 {
			j++
		}
		clock.set(t0.Add(time.Duration(evs[i].ts-base) * time.Millisecond))
		if err := p.ProcessRecords(ctx, batch(recs[i:j], cp)); err != nil {
			t.Fatal(err)
		}
		last := seqNo(j) + ":0"
		testenv.WaitFor(t, "batch flushed", 30*time.Second, func() bool { return cp.position() == last })
		i = j
	}
	// The last sessions close by the idle timer.
	clock.add(time.Minute)
	testenv.WaitFor(t, "the rows equal the SQL's sessions", 60*time.Second, func() bool { return maps.Equal(scanSessions(t, s.ddb, s.table), want) })
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	equalSessions(t, scanSessions(t, s.ddb, s.table), want)

	counts := dyn.counts()
	interval := cfg.SessionUpdateInterval.Milliseconds()
	closeAfter := session.DefaultGapMs + DefaultSessionCloseDelay.Milliseconds()
	total, updates := 0, 0
	for id, w := range want {
		open := w.LastEventMs - w.StartMs + closeAfter // processing time the session stays open
		bound := 2 + int(open/interval)
		if counts[id] == 0 || counts[id] > bound {
			t.Errorf("session %s (open %d s): %d writes, want 1..%d", id, open/1000, counts[id], bound)
		}
		total += counts[id]
		if counts[id] > 2 {
			updates++
		}
	}
	if len(counts) != len(want) {
		t.Errorf("rows of %d session ids written, want %d", len(counts), len(want))
	}
	if updates == 0 {
		t.Error("no long session got an update row: the update interval was not exercised")
	}
	writes, started := f.SessionWrites()
	if writes != int64(total) || started != 30 {
		t.Errorf("the factory counted %d writes and %d sessions; the table got %d writes, the trace has 30 sessions", writes, started, total)
	}
	if got := testutil.ToFloat64(f.m.sessionWrites); got != float64(total) {
		t.Errorf("clickfleet_actors_session_writes_total = %g, want %d", got, total)
	}
	t.Logf("%d rows written for 30 sessions (%.2f per session; %d sessions with update rows)", total, float64(total)/30, updates)
}

func sortByTime(evs []putEvent) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].ts < evs[j-1].ts; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

// A session closed by the idle timer, then continued by a late event within the gap (event time): the
// session reopens, and its row is written again at the next flush with absolute values — the same
// session the oracle gives. The user is passivated in between, so the rule holds across rehydration.
func TestIdleCloseThenLateEventReopens(t *testing.T) {
	s := newSinks(t)
	dyn := &countingDynamo{DynamoDBAPI: s.ddb}
	clock := newFakeClock()
	cfg := s.config("in")
	cfg.DynamoDB, cfg.Now = dyn, clock.Now
	cfg.FlushInterval, cfg.PassivateAfter, cfg.SweepInterval = 10*time.Millisecond, time.Minute, 10*time.Millisecond
	f := newFactory(t, cfg)
	ctx := context.Background()
	p, cp := startProcessor(t, f)
	base := int64(1_626_091_318_000)
	var evs []putEvent
	put := func(ts int64) {
		i := len(evs) + 1
		e := putEvent{user: "a", device: "mobile", ts: ts, shard: testShard, seq: seqNo(i), data: labJSON("a", "search", ts, "mobile")}
		evs = append(evs, e)
		if err := p.ProcessRecords(ctx, batch([]consumer.Record{rec(testShard, i, "a", e.data)}, cp)); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "record flushed", 30*time.Second, func() bool { return cp.position() == seqNo(i)+":0" })
	}
	first := messages.NewSession("a", "mobile", base)
	row := func() messages.Session { return scanSessions(t, s.ddb, s.table)[first.SessionID] }
	rowState := func() string {
		h, _ := s.rdb.HGet(ctx, s.prefix+"user:a", session.FieldRow).Result()
		return h
	}

	// The open-sessions gauge follows the session: open from its first flush, closed by the idle timer,
	// open again when a late event reopens it.
	open := func(want float64) {
		t.Helper()
		testenv.WaitFor(t, fmt.Sprintf("%g open sessions", want), 30*time.Second, func() bool { return testutil.ToFloat64(f.m.sessionsOpen) == want })
	}
	put(base)
	if r := row(); r.EventCount != 1 {
		t.Fatalf("after the first event the row is %+v, want its start (1 event)", r)
	}
	if n := testutil.ToFloat64(f.m.sessionsOpen); n != 1 {
		t.Fatalf("%g open sessions after the first event's flush, want 1", n)
	}
	put(base + 2000)
	if r := row(); r.EventCount != 1 {
		t.Fatalf("the row was rewritten at a flush without a trigger: %+v", r)
	}
	clock.add(16 * time.Second) // gap + close delay without an event
	testenv.WaitFor(t, "the idle close writes the final row", 30*time.Second, func() bool { return row().EventCount == 2 })
	testenv.WaitFor(t, "the state records the close", 30*time.Second, func() bool { return strings.HasSuffix(rowState(), ":c") })
	open(0)
	if live := testutil.ToFloat64(f.m.usersLive); live != 1 {
		t.Fatalf("%g users live after the idle close, want 1 (the actor outlives its session until passivation)", live)
	}
	clock.add(2 * time.Minute)
	testenv.WaitFor(t, "the user passivated", 30*time.Second, func() bool { return testutil.ToFloat64(f.m.passivated) == 1 })

	// 3 s after the previously arrived event: the same session, reopened. The clock does not move, so
	// it is the reopening, not the idle close, that writes the row.
	put(base + 5000)
	testenv.WaitFor(t, "the reopened session's row", 30*time.Second, func() bool { return row().EventCount == 3 })
	if st := rowState(); strings.HasSuffix(st, ":c") {
		t.Fatalf("row state %q after the reopening, want open", st)
	}
	open(1)
	clock.add(16 * time.Second)
	put(base + 60_000) // beyond the gap: a new session
	open(1)
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	open(0) // the shard's processing ended: its sessions are no longer this process's
	equalSessions(t, scanSessions(t, s.ddb, s.table), sqlSessions(t, evs))
	c := dyn.counts()
	if c[first.SessionID] != 3 {
		t.Errorf("the reopened session was written %d times, want 3 (start, idle close, reopening)", c[first.SessionID])
	}
}

// A worker is killed (kill -9) while its users' sessions are open and their rows lag; the next owner
// reads the shard's lagging set, loads those users (who send nothing more) and closes their sessions
// by the idle timer with the oracle's values.
func TestKilledWithOpenSessionsNextOwnerClosesThem(t *testing.T) {
	base := newSinks(t)
	stream := testenv.Stream(t, base.kin, 2)
	// 30 users, 3 sessions each, 12 events per session 1 s apart, interleaved: every flush of 100
	// records holds a few events of each user, so rows written at a session's start lag.
	ts0 := int64(1_626_091_318_000)
	var evs []putEvent
	for k := range 3 {
		for i := range 12 {
			for u := range 30 {
				user := fmt.Sprintf("k%02d", u)
				ts := ts0 + int64(k)*60_000 + int64(i)*1000 + int64(u)
				evs = append(evs, putEvent{user: user, device: "tablet", ts: ts, data: labJSON(user, "detail", ts, "tablet")})
			}
		}
	}
	last := putAll(t, base.kin, stream, evs)
	want := sqlSessions(t, evs)

	a := newApp(t, base, stream)
	w1 := a.start("w1", "--session-close-delay", "1h", "--session-update-interval", "1h")
	testenv.WaitFor(t, "w1 checkpointed every record", 90*time.Second, func() bool { return checkpointedTo(t, a.ddb, a.leases, last) })
	lagging := 0
	for id, s := range scanSessions(t, a.ddb, a.table) {
		if s != want[id] {
			lagging++
		}
	}
	if lagging == 0 {
		t.Fatal("no row lags before the kill: the test would prove nothing")
	}
	if err := w1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := w1.Wait(); !errors.As(err, &exit) {
		t.Fatalf("w1 ended with %v, want killed", err)
	}
	n := 0
	for _, sh := range []string{"shardId-000000000000", "shardId-000000000001"} {
		c, err := a.rdb.SCard(context.Background(), session.LaggingRowsKey(a.prefix, sh)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += int(c)
	}
	if n != 30 {
		t.Fatalf("%d users in the shards' lagging sets after the kill, want 30 (every user's last session)", n)
	}
	t.Logf("killed with %d rows behind the oracle; %d users listed as lagging", lagging, n)

	// The next owner receives no record of these users (all are checkpointed): it closes their
	// sessions gap + close delay after it took the shards.
	a.start("w2", "--session-close-delay", "500ms")
	testenv.WaitFor(t, "w2 closed the open sessions with the oracle's values", 90*time.Second, func() bool {
		return maps.Equal(scanSessions(t, a.ddb, a.table), want)
	})
	a.stopAll()
	equalSessions(t, scanSessions(t, a.ddb, a.table), want)
}

// A user whose session would close idle at t+15 s (gap 10 s + close delay 5 s) sends an event at t+10 s:
// its row trigger moves to t+25 s. A flush between the two asks only the users with records (the shard
// files users by trigger time, and the returning user was filed again), and the session closes at the
// new time.
func TestIdleCloseMovesWhenTheUserReturns(t *testing.T) {
	s := newSinks(t)
	clock := newFakeClock()
	cfg := s.config("in")
	cfg.Now = clock.Now
	cfg.FlushInterval, cfg.PassivateAfter, cfg.SweepInterval = 10*time.Millisecond, time.Hour, time.Hour
	var log flushLog
	cfg.AfterFlush = log.add
	f := newFactory(t, cfg)
	ctx := context.Background()
	p, cp := startProcessor(t, f)
	base, i := int64(1_626_091_318_000), 0
	put := func(user string, ts int64) FlushInfo { // returns the flush that took the record
		i++
		if err := p.ProcessRecords(ctx, batch([]consumer.Record{rec(testShard, i, user, labJSON(user, "search", ts, "mobile"))}, cp)); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "record flushed", 30*time.Second, func() bool { return cp.position() == seqNo(i)+":0" })
		flushes := log.all()
		return flushes[len(flushes)-1]
	}
	closed := func() bool {
		st, _ := s.rdb.HGet(ctx, s.prefix+"user:a", session.FieldRow).Result()
		return strings.HasSuffix(st, ":c")
	}
	put("a", base)
	clock.add(10 * time.Second)
	put("a", base+3000) // same session; its idle close moves to 25 s
	clock.add(6 * time.Second)
	if fl := put("b", base+4000); fl.Users != 1 {
		t.Fatalf("the flush at 16 s asked %d users, want 1 (b; a's trigger is at 25 s)", fl.Users)
	}
	if closed() {
		t.Fatal("a's session closed at 16 s, 6 s after its last event")
	}
	clock.add(10 * time.Second)
	testenv.WaitFor(t, "a's session closes idle at 26 s", 30*time.Second, closed)
	row := scanSessions(t, s.ddb, s.table)[messages.NewSession("a", "mobile", base).SessionID]
	if row.EventCount != 2 {
		t.Fatalf("a's final row is %+v, want 2 events", row)
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
}

// The final flush (a shutdown, a handoff, a shard's end) writes what was routed and every lagging row in
// one round: it does not chase the row triggers that come due while it writes. Here processing time moves a
// second at every look at the clock, and 40 users' idle closes are due 0.3 s apart: the final flush
// used to run a flush round per newly due user (at a million users on a paced benchmark, 106 rounds and
// 12 s of shutdown, each round scanning every user).
func TestFinalFlushIsOneRound(t *testing.T) {
	s := newSinks(t)
	clock := newFakeClock()
	t0 := clock.Now()
	var ticking atomic.Bool
	cfg := s.config("in")
	cfg.Now = func() time.Time {
		if ticking.Load() {
			clock.add(time.Second)
		}
		return clock.Now()
	}
	cfg.FlushMaxRecords, cfg.PassivateAfter, cfg.SweepInterval = 1, time.Hour, time.Hour
	var log flushLog
	cfg.AfterFlush = log.add
	f := newFactory(t, cfg)
	ctx := context.Background()
	p, cp := startProcessor(t, f)
	base := int64(1_626_091_318_000)
	const users = 40
	var evs []putEvent
	for i := range users {
		u := fmt.Sprintf("u%02d", i)
		e := putEvent{user: u, device: "mobile", ts: base + int64(i)*1000, shard: testShard, seq: seqNo(i + 1)}
		e.data = labJSON(u, "search", e.ts, "mobile")
		evs = append(evs, e)
		if err := p.ProcessRecords(ctx, batch([]consumer.Record{rec(testShard, i+1, u, e.data)}, cp)); err != nil {
			t.Fatal(err)
		}
		last := seqNo(i+1) + ":0"
		testenv.WaitFor(t, "record flushed", 30*time.Second, func() bool { return cp.position() == last })
		clock.add(300 * time.Millisecond)
	}
	before := len(log.all())
	// The first user's idle close (gap + close delay: 15 s after its record) is due now; the later
	// users' come due as the clock ticks.
	clock.set(t0.Add(15*time.Second + time.Millisecond))
	ticking.Store(true)
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	ticking.Store(false)
	if n := len(log.all()) - before; n > 2 {
		t.Errorf("the final flush took %d flush rounds, want at most 2 (it chased the idle closes coming due)", n)
	}
	got := scanSessions(t, s.ddb, s.table)
	if len(got) != users {
		t.Fatalf("%d session rows after the final flush, want %d", len(got), users)
	}
	for _, e := range evs {
		id := messages.NewSession(e.user, "mobile", e.ts).SessionID
		if r, ok := got[id]; !ok || r.EventCount != 1 {
			t.Errorf("user %s: row %+v (found %v), want its session with 1 event", e.user, r, ok)
		}
	}
}

// A user whose hash no state write of this shard made is in none of the shard's lagging set, so its first
// state write leaves the set alone instead of removing it (a command per new user: a million at a million
// new users); a user loaded from the set still has its membership written. Counted at the processor's own
// Redis client, by command.
func TestNewUsersFirstWriteLeavesTheLaggingSetAlone(t *testing.T) {
	s := newSinks(t)
	var counts redisCommands
	rdb := redis.NewClient(s.rdb.Options())
	rdb.AddHook(&counts)
	t.Cleanup(func() { _ = rdb.Close() })
	cfg := s.config("in")
	cfg.Redis, cfg.FlushMaxRecords = rdb, 1
	f := newFactory(t, cfg)
	ctx := context.Background()
	// A user the names sync wrote: a hash with a name only.
	if err := s.rdb.HSet(ctx, session.UserKey(s.prefix, "u00"), session.FieldName, "Ada Lovelace").Err(); err != nil {
		t.Fatal(err)
	}
	p, cp := startProcessor(t, f)
	base := int64(1_626_091_318_000)
	const users = 20
	for i := range users {
		u := fmt.Sprintf("u%02d", i)
		data := labJSON(u, "search", base+int64(i)*1000, "mobile")
		if err := p.ProcessRecords(ctx, batch([]consumer.Record{rec(testShard, i+1, u, data)}, cp)); err != nil {
			t.Fatal(err)
		}
	}
	last := seqNo(users) + ":0"
	testenv.WaitFor(t, "records flushed", 30*time.Second, func() bool { return cp.position() == last })
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if n := counts.get("srem"); n != 0 {
		t.Errorf("%d SREM commands for %d new users' first writes, want none", n, users)
	}
	if n := counts.get("hset"); n < users {
		t.Fatalf("%d HSET commands, want at least one per user (%d): the count does not see the writes", n, users)
	}
	members, err := s.rdb.SMembers(ctx, session.LaggingRowsKey(s.prefix, testShard)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 0 {
		t.Errorf("lagging set after a clean stop: %v, want empty (every row written)", members)
	}
	h := userHashes(t, s.rdb, s.prefix)["u00"]
	if h[session.FieldName] != "Ada Lovelace" || h[session.FieldShard] != testShard {
		t.Errorf("u00's hash %v: want its name kept and its state written", h)
	}
}

// redisCommands counts the commands a client sends, by name, pipelines and transactions included.
type redisCommands struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *redisCommands) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func (c *redisCommands) count(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	for _, cmd := range cmds {
		c.n[cmd.Name()]++
	}
}

func (c *redisCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *redisCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		return next(ctx, cmds)
	}
}
