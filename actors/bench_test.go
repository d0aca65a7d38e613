package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// Benchmarks of the processing core against real Redis and dynalite (no Kinesis input: batches are
// handed to ProcessRecords directly; lab-shape events, so no offers). Each sub-benchmark runs the actor
// processor and, in the same run, mapProcessor: the same per-user logic and the same writer in one
// goroutine over a plain map. sinks=redis+dynalite writes sessions to dynalite; sinks=redis+nullddb
// replaces DynamoDB with a no-op that counts the items, to show the core without dynalite's ≈12k
// items/s ceiling. session_writes_per_session is the session rows written per session started (rows
// are written on triggers: start, close, update interval; each run ends with the final flush that
// writes the rows of the sessions still open).
//
//	go test -run '^$' -bench Process -benchtime 1x ./actors/            (10k and 100k users, with and without click ids; +sessions: a session per event)
//	CLICKFLEET_BENCH_1M=1 go test -run '^$' -bench 'Process/.*users=1M' -benchtime 1x -timeout 30m ./actors/
//
// Inside one process the kind that runs second is faster (at 1M users by a quarter or more), so to compare
// the kinds like with like run each in a process of its own, e.g. -bench 'Process/users=1M$/sinks=redis\+nullddb/actors'
// and then the same with /map. CLICKFLEET_BENCH_RATE=<events/s> feeds the batches at that rate instead of
// as fast as the processor takes them: the flush latency and record age of a worker that is not saturated.

// nullDynamo is a DynamoDB that accepts every write and counts the items.
type nullDynamo struct{ items atomic.Int64 }

func (d *nullDynamo) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for _, reqs := range in.RequestItems {
		d.items.Add(int64(len(reqs)))
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// benchBatchSize is the records per batch of benchBatches.
const benchBatchSize = 1000

// benchBatches returns events for users in batches of benchBatchSize (lab shape), each with a click_id when ids is
// set (as the ingest puts them). A user's events are perUserMs apart on average in event time: 1500
// (the default sizes) gives sessions that grow over the run (the gap is 10 s), 1_500_000 starts a new
// session at nearly every event (the +sessions sizes: a session row per event, the writer's worst case).
// Event time is kept in nanoseconds, so a fleet's many users can share a millisecond.
func benchBatches(users, events int, ids bool, perUserMs int64, seed uint64) [][]consumer.Record {
	r := rand.New(rand.NewPCG(seed, 3))
	names := []string{"checkout", "search", "category", "detail", "navigate"}
	tsNs := int64(1_626_091_318_000) * int64(time.Millisecond)
	step := max(1, perUserMs*int64(time.Millisecond)/int64(users))
	var out [][]consumer.Record
	for i := 0; i < events; i += benchBatchSize {
		b := make([]consumer.Record, 0, benchBatchSize)
		for j := i; j < min(i+benchBatchSize, events); j++ {
			tsNs += r.Int64N(2 * step)
			u := fmt.Sprintf("u%07d", r.IntN(users))
			data := labJSON(u, names[r.IntN(len(names))], tsNs/int64(time.Millisecond), "desktop")
			if ids {
				data = fmt.Appendf(data[:len(data)-1:len(data)-1], `,"click_id":"%016x%016x"}`, r.Uint64(), r.Uint64())
			}
			b = append(b, rec(testShard, j+1, u, data))
		}
		out = append(out, b)
	}
	return out
}

// flushTimes collects the flushes' durations. The steady flushes (during the input) and the final one
// (every open session written as the processor stops, after the last batch) are reported apart: the
// final flush of a million users is a shutdown's cost, not the flush latency a running worker shows.
//
// A flush's record age is the time from when the oldest record it covers was handed to ProcessRecords to
// the end of the flush's writes: how stale Redis is at worst, which includes the wait for the flush to
// start. It needs the batches' feed times (fed, by batch of benchBatchSize records, set before the batch
// is handed over) and the benchmark's sequence numbers (seqNo).
type flushTimes struct {
	mu      sync.Mutex
	d       []time.Duration // barrier and write, steady flushes
	barrier []time.Duration
	age     []time.Duration // the oldest record's age at the end of the writes, steady flushes
	fed     []atomic.Int64  // Unix ns at which each batch was handed over
	upTo    int             // the last record (seqNo index) flushed
	inFinal bool
	final   time.Duration // the longest flush that completed after the final one was asked for
}

func (f *flushTimes) add(i FlushInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inFinal {
		f.final = max(f.final, i.Barrier+i.Write)
		return
	}
	f.d = append(f.d, i.Barrier+i.Write)
	f.barrier = append(f.barrier, i.Barrier)
	n, err := seqIndex(i.UpTo.SequenceNumber)
	if err != nil || n <= f.upTo || f.fed == nil {
		return
	}
	if b := f.upTo / benchBatchSize; b < len(f.fed) {
		f.age = append(f.age, time.Since(time.Unix(0, f.fed[b].Load())))
	}
	f.upTo = n
}

// finalStarts marks the flushes that complete from now on as the final flush's.
func (f *flushTimes) finalStarts(on bool) {
	f.mu.Lock()
	f.inFinal = on
	f.mu.Unlock()
}

// startRun makes ready for a run of n batches: no record flushed yet.
func (f *flushTimes) startRun(n int) {
	f.mu.Lock()
	f.fed, f.upTo = make([]atomic.Int64, n), 0
	f.mu.Unlock()
}

// benchRate is CLICKFLEET_BENCH_RATE: events per second to feed the processor at (0, the default: as
// fast as it takes them).
func benchRate(b *testing.B) int {
	return benchEnvInt(b, "CLICKFLEET_BENCH_RATE", 0, "events per second (a whole number; 0 or unset: unpaced)")
}

// benchFlushMaxRecords is the benchmark's FlushMaxRecords: CLICKFLEET_BENCH_FLUSH_MAX_RECORDS, or 200,000
// (a flush per FlushInterval at any rate these runs reach, so the flushes' count does not depend on it).
func benchFlushMaxRecords(b *testing.B) int {
	return benchEnvInt(b, "CLICKFLEET_BENCH_FLUSH_MAX_RECORDS", 200_000, "records (a whole number; 0: the processor's default, actors.DefaultFlushMaxRecords)")
}

// writeHeapProfile writes the live heap to $CLICKFLEET_BENCH_HEAP_PROFILE-<name>.pprof when that is set
// (every user live and idle, after a collection): `go tool pprof -sample_index=inuse_objects` names what
// the collector marks per user.
func writeHeapProfile(b *testing.B, name string) {
	base := os.Getenv("CLICKFLEET_BENCH_HEAP_PROFILE")
	if base == "" {
		return
	}
	path := fmt.Sprintf("%s-%s.pprof", base, strings.NewReplacer("=", "", "/", "-", "+", "-").Replace(name))
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("CLICKFLEET_BENCH_HEAP_PROFILE: %v", err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatalf("CLICKFLEET_BENCH_HEAP_PROFILE: write %s: %v", path, err)
	}
}

// benchEnvInt reads a whole number ≥ 0 from the environment variable name, or def when it is unset.
func benchEnvInt(b *testing.B, name string, def int, want string) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want %s", name, v, want)
	}
	return n
}

func (f *flushTimes) report(b *testing.B) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.d) == 0 {
		f.d, f.barrier = []time.Duration{0}, []time.Duration{0}
	}
	slices.Sort(f.d)
	slices.Sort(f.barrier)
	p := func(d []time.Duration, q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(f.d, 0.5), "flush-p50-ms")
	b.ReportMetric(p(f.d, 0.9), "flush-p90-ms")
	b.ReportMetric(p(f.d, 0.99), "flush-p99-ms")
	b.ReportMetric(p(f.barrier, 0.99), "barrier-p99-ms")
	if len(f.age) > 0 {
		slices.Sort(f.age)
		b.ReportMetric(p(f.age, 0.5), "record-age-p50-ms")
		b.ReportMetric(p(f.age, 0.99), "record-age-p99-ms")
	}
	b.ReportMetric(float64(len(f.d)), "flushes")
	b.ReportMetric(float64(f.final.Microseconds())/1000, "final-flush-ms")
}

func BenchmarkProcess(b *testing.B) {
	sizes := []struct {
		name          string
		users, events int
		ids           bool  // events carry click ids, so the users' windows fill (+ids: 40 events per user at 10k)
		perUserMs     int64 // mean time between a user's events (benchBatches)
	}{{"users=10k", 10_000, 200_000, false, 1500}, {"users=100k", 100_000, 1_000_000, false, 1500}, {"users=1M", 1_000_000, 2_000_000, false, 1500},
		{"users=10k+ids", 10_000, 400_000, true, 1500}, {"users=100k+ids", 100_000, 1_000_000, true, 1500},
		{"users=100k+sessions", 100_000, 1_000_000, false, 1_500_000}}
	for _, sz := range sizes {
		if sz.users >= 1_000_000 && os.Getenv("CLICKFLEET_BENCH_1M") != "1" {
			continue
		}
		batches := benchBatches(sz.users, sz.events, sz.ids, sz.perUserMs, 1)
		for _, sinksName := range []string{"redis+dynalite", "redis+nullddb"} {
			for _, kind := range []string{"actors", "map"} {
				b.Run(fmt.Sprintf("%s/sinks=%s/%s", sz.name, sinksName, kind), func(b *testing.B) {
					s := newSinks(b)
					cfg := s.config("in")
					cfg.FlushInterval, cfg.FlushMaxRecords, cfg.PassivateAfter = time.Second, benchFlushMaxRecords(b), time.Hour
					var null *nullDynamo
					if sinksName == "redis+nullddb" {
						null = &nullDynamo{}
						cfg.DynamoDB = null
					}
					var ft flushTimes
					cfg.AfterFlush = ft.add
					rate := benchRate(b)
					f := newFactory(b, cfg)
					var before, after runtime.MemStats
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						ft.finalStarts(false)
						ft.startRun(len(batches))
						s.prefix = fmt.Sprintf("bench%d-%d:", time.Now().UnixNano(), i)
						cfg.Prefix = s.prefix
						f.cfg.Prefix = s.prefix
						runtime.GC()
						runtime.ReadMemStats(&before)
						writes0, sessions0 := f.SessionWrites()
						cpu0, rcpu0 := processCPU(), redisCPU(b, s)
						rt0 := readRuntime()
						b.StartTimer()
						start := time.Now()
						var p consumer.Processor
						if kind == "actors" {
							p = f.NewProcessor(testShard)
						} else {
							p = newMapProcessor(f)
						}
						ctx := context.Background()
						cp := &fakeCheckpointer{}
						// A lease counter, as a worker's holding period has: the flush's probe then reads the
						// shard's fence, not every user's position.
						if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, LeaseCounter: 1}); err != nil {
							b.Fatal(err)
						}
						for k, batch := range batches {
							if rate > 0 {
								time.Sleep(time.Until(start.Add(time.Duration(k*benchBatchSize) * time.Second / time.Duration(rate))))
							}
							ft.fed[k].Store(time.Now().UnixNano())
							if err := p.ProcessRecords(ctx, consumer.Batch{Records: batch, Checkpointer: cp}); err != nil {
								b.Fatal(err)
							}
						}
						ft.finalStarts(true)
						if ap, ok := p.(*processor); ok {
							// Measure the heap with every user live and idle, before the actors stop.
							if err := ap.final(ctx, cp); err != nil {
								b.Fatal(err)
							}
						} else if err := p.(*mapProcessor).flush(ctx, cp, true); err != nil {
							b.Fatal(err)
						}
						elapsed := time.Since(start)
						b.StopTimer()
						cpu, rcpu := processCPU()-cpu0, redisCPU(b, s)-rcpu0
						readRuntime().report(b, rt0)
						runtime.GC()
						runtime.ReadMemStats(&after)
						writeHeapProfile(b, fmt.Sprintf("%s-%s-%s", sz.name, sinksName, kind))
						if err := p.ShutdownRequested(ctx, cp); err != nil {
							b.Fatal(err)
						}
						dropKeys(s)
						b.ReportMetric(float64(sz.events)/elapsed.Seconds(), "events/s")
						// CPU per event, of this process and of Redis: steadier than the rate on a shared machine.
						b.ReportMetric(float64(cpu.Nanoseconds())/float64(sz.events), "cpu-ns/event")
						b.ReportMetric(float64(rcpu.Nanoseconds())/float64(sz.events), "redis-cpu-ns/event")
						writes, sessions := f.SessionWrites()
						writes, sessions = writes-writes0, sessions-sessions0
						if null != nil && null.items.Load() < writes {
							b.Fatalf("the null sink got %d items, the writer counted %d", null.items.Load(), writes)
						}
						b.ReportMetric(float64(writes)/float64(max(1, sessions)), "session_writes_per_session")
						b.ReportMetric(float64(sessions), "sessions")
						b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(sz.users), "heap-B/user")
						b.ReportMetric(float64(int64(after.HeapObjects)-int64(before.HeapObjects))/float64(sz.users), "heap-objects/user")
						b.StartTimer()
					}
					ft.report(b)
				})
			}
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns the CPU time (user and system) the Redis server has used, from INFO cpu.
func redisCPU(b *testing.B, s *sinks) time.Duration {
	info, err := s.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %s: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// dropKeys deletes every key under prefix.
func dropKeys(s *sinks) {
	ctx := context.Background()
	iter := s.rdb.Scan(ctx, 0, s.prefix+"*", 10000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 10000 {
			s.rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		s.rdb.Unlink(ctx, keys...)
	}
	// UNLINK frees in the background: wait (up to a minute) until Redis has, so the next run's Redis CPU
	// is its own.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		info, err := s.rdb.Info(ctx, "memory").Result()
		if err != nil || strings.Contains(info, "lazyfree_pending_objects:0\r\n") {
			return
		}
	}
}

// mapProcessor is the baseline: the same per-user logic and writer, one goroutine, a plain map, flushing
// synchronously when FlushMaxRecords records are pending or FlushInterval passed.
type mapProcessor struct {
	sh      *shardShared
	users   map[string]*mapUser
	dirty   []*mapUser
	rows    *dueWheel[*mapUser] // as the ShardActor's
	pending int
	last    session.Position
	lastAt  time.Time
	n       int
}

type mapUser struct {
	u          session.User
	dirty      bool
	node       wheelNode
	rows       []messages.Session
	lastSeenMs int64
	due        int64
	stored     storedLags
}

func newMapProcessor(f *Factory) *mapProcessor {
	return &mapProcessor{sh: &shardShared{f: f, shard: testShard, log: zap.NewNop()}, users: map[string]*mapUser{},
		rows: newDueWheel[*mapUser](wheelSlotMs, wheelSlots, f.cfg.Now().UnixMilli())}
}

func (mu *mapUser) wheelNode() *wheelNode { return &mu.node }

func (m *mapProcessor) Initialize(ctx context.Context, in consumer.InitInput) error {
	m.lastAt = time.Now()
	m.sh.epoch = in.LeaseCounter
	return m.sh.claimFence(ctx)
}

func (m *mapProcessor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	evs := make([]*messages.Event, len(b.Records))
	var missing []string
	for i, r := range b.Records {
		ev, err := messages.Decode(r.Data)
		if err != nil {
			return err
		}
		evs[i] = ev
		if _, ok := m.users[ev.UserID]; !ok {
			m.users[ev.UserID] = nil
			missing = append(missing, strings.Clone(ev.UserID)) // as the actors: not the decoded record's block
		}
	}
	nowMs := m.sh.f.cfg.Now().UnixMilli()
	if len(missing) > 0 {
		hashes, err := m.sh.loadUsers(ctx, missing)
		if err != nil {
			return err
		}
		for i, id := range missing {
			u, err := session.FromFields(id, testShard, hashes[i])
			if err != nil {
				return err
			}
			m.users[id] = &mapUser{u: u, lastSeenMs: nowMs, stored: lagsOfHash(hashes[i], testShard)}
		}
	}
	rules := m.sh.f.cfg.Rules
	for i, r := range b.Records {
		mu := m.users[evs[i].UserID]
		mu.lastSeenMs = nowMs
		pos := r.Position()
		o := mu.u.Apply(pos, evs[i], rules)
		if !o.Applied {
			continue
		}
		if o.NewSession {
			m.sh.f.sessionsStarted.Add(1)
			if o.Closed.SessionID != "" {
				mu.rows = append(mu.rows, o.Closed)
			}
		}
		if !mu.dirty {
			mu.dirty = true
			m.dirty = append(m.dirty, mu)
		}
		m.last = pos
	}
	m.pending += len(b.Records)
	if m.pending >= m.sh.f.cfg.FlushMaxRecords || time.Since(m.lastAt) >= m.sh.f.cfg.FlushInterval {
		return m.flush(ctx, b.Checkpointer, false)
	}
	return nil
}

// flush is the actors' barrier in one goroutine: the dirty users and those whose row trigger is due
// (every lagging one when final), the same row rules, the same writer.
func (m *mapProcessor) flush(ctx context.Context, cp consumer.Checkpointer, final bool) error {
	start := time.Now()
	nowMs := m.sh.f.cfg.Now().UnixMilli()
	policy := m.sh.f.cfg.rows
	fs := &flushState{upTo: m.last, records: m.pending}
	answer := func(mu *mapUser, applied bool) {
		rows := mu.rows
		cause, closes := mu.u.RowCheck(nowMs, mu.lastSeenMs, policy, false, final)
		if cause != session.RowNone {
			rows = append(rows, mu.u.Current)
		}
		changed := cause != session.RowNone || closes
		if changed {
			mu.u.RowWritten(nowMs, closes)
		}
		e := userEffects{user: mu.u.ID, rows: rows, lags: mu.u.RowLags(), due: mu.u.RowDue(mu.lastSeenMs, policy)}
		if applied {
			e.pos, e.fields = mu.u.Applied, mu.u.AppendFields(make([]any, 0, 16), testShard)
		} else if changed {
			e.pos, e.rowOnly, e.fields = mu.u.Applied, true, []any{session.FieldRow, mu.u.Row.Encode()}
		}
		if !e.pos.IsZero() {
			e.setLags = mu.stored.write(e.lags)
		}
		mu.rows, mu.due = nil, e.due
		if e.due != 0 {
			m.rows.schedule(mu, e.due)
		} else {
			m.rows.remove(mu)
		}
		fs.users = append(fs.users, e)
	}
	var due []*mapUser
	m.rows.take(nowMs, func(mu *mapUser) {
		if !mu.dirty {
			due = append(due, mu)
		}
	})
	if final {
		for _, mu := range m.users {
			if !mu.dirty && mu.u.RowLags() && m.rows.filed(mu) {
				due = append(due, mu)
			}
		}
	}
	for _, mu := range m.dirty {
		mu.dirty = false
		answer(mu, true)
	}
	for _, mu := range due {
		answer(mu, false)
	}
	fs.nUsersAsked = len(fs.users)
	fs.barrier = time.Since(start)
	m.dirty, m.pending, m.lastAt = m.dirty[:0], 0, time.Now()
	m.n++
	return m.sh.writeFlush(ctx, fs, cp, m.n)
}

func (m *mapProcessor) LeaseLost(context.Context) {}
func (m *mapProcessor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return m.flush(ctx, cp, true)
}
func (m *mapProcessor) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error {
	return m.flush(ctx, cp, true)
}
