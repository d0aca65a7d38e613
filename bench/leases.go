package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lease"
)

// LeasesConfig describes a `bench leases` run: a simulation of a fleet's lease coordinators (no Kinesis
// reads) on the local DynamoDB. Zero values take the defaults noted.
type LeasesConfig struct {
	DynamoDB     DynamoDBAPI
	Shards       int           // leases in the table. Default: 200
	Workers      int           // coordinators. Default: 20
	Duration     time.Duration // the leader-mode run; the kill comes half way. Default: 90s
	HotShards    int           // shards HotFactor times hotter than the others. Default: 0
	HotFactor    float64       // Default: 10
	BaseRate     float64       // records/s of an ordinary shard (bytes/s: 200 × that). Default: 100
	FailoverTime time.Duration // the lease failover time. Default: lease.DefaultFailoverTime
	// Baseline is how long the same fleet runs in the every-worker-scan mode first, to measure its reads
	// in the same run. Default: a third of Duration, at least 20s.
	Baseline time.Duration
	Logger   *zap.Logger
	Progress io.Writer // a line per phase; nil: none
}

// LeasesResult is what a `bench leases` run measured. Capacity units are counted as DynamoDB bills them
// on demand, from item sizes (capacityDB).
type LeasesResult struct {
	Shards          int     `json:"shards"`
	Workers         int     `json:"workers"`
	HotShards       int     `json:"hot_shards"`
	HotFactor       float64 `json:"hot_factor"`
	DurationSeconds float64 `json:"duration_seconds"`
	FailoverTimeS   float64 `json:"failover_time_seconds"`
	// ReadUnitsPerS and WriteUnitsPerS: the leader mode in steady state (balanced, before the kill).
	ReadUnitsPerS  float64 `json:"read_units_per_s"`
	WriteUnitsPerS float64 `json:"write_units_per_s"`
	// Baseline*: the every-worker-scan mode, in steady state, same fleet and table.
	BaselineReadUnitsPerS  float64 `json:"baseline_read_units_per_s"`
	BaselineWriteUnitsPerS float64 `json:"baseline_write_units_per_s"`
	ReadRatio              float64 `json:"read_ratio"` // ReadUnitsPerS / BaselineReadUnitsPerS
	// MaxOverMeanLoad: the most loaded worker's throughput over the mean when first balanced, leaving out
	// a worker that holds one shard hotter than 1.2× the mean alone (nothing can be moved to help it);
	// MaxOverMeanLoadAtEnd: the same at the end of the run, after the kills.
	MaxOverMeanLoad      float64 `json:"max_over_mean_load"`
	MaxOverMeanLoadAtEnd float64 `json:"max_over_mean_load_at_end"`
	// SecondsToBalance: from the start until every shard was held and no worker above 1.2× the mean
	// (or holding a hot shard alone); -1: never.
	SecondsToBalance float64 `json:"seconds_to_balance"`
	// Killed: the workers stopped dead half way (10 %, never the leader); RecoverySeconds: from the kill
	// until every shard was held again (-1: never).
	Killed          []string `json:"killed"`
	RecoverySeconds float64  `json:"recovery_seconds"`
	// FailoverSeconds: after the leader is stopped dead (three quarters of the way), until another worker
	// leads; LeaderRecoverySeconds: until every shard is held again (the dead leader's own leases are
	// first seen by the new leader when it takes over, so they need about two failover times).
	FailoverSeconds       float64 `json:"failover_seconds"`
	LeaderRecoverySeconds float64 `json:"leader_recovery_seconds"`
	LeaseMoves            int     `json:"lease_moves"` // assignments written by leaders (takes and handoffs)
	Violations            int     `json:"violations"`  // moments a shard was held by two workers (must be 0)
}

func (c *LeasesConfig) defaults() {
	setDefault(&c.Shards, 200)
	setDefault(&c.Workers, 20)
	setDefault(&c.Duration, 90*time.Second)
	setDefault(&c.HotFactor, 10)
	setDefault(&c.BaseRate, 100)
	setDefault(&c.FailoverTime, lease.DefaultFailoverTime)
	setDefault(&c.Baseline, max(20*time.Second, c.Duration/3))
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Leases runs the lease simulation: the baseline (every worker scans) then the leader mode with a kill
// half way and a leader kill three quarters of the way, and returns what it measured.
func Leases(ctx context.Context, cfg LeasesConfig) (LeasesResult, error) {
	cfg.defaults()
	if cfg.HotShards > cfg.Shards || cfg.Workers < 2 {
		return LeasesResult{}, fmt.Errorf("bench leases: need at least 2 workers and at most --shards hot shards")
	}
	r := &leasesRun{cfg: cfg, res: LeasesResult{Shards: cfg.Shards, Workers: cfg.Workers, HotShards: cfg.HotShards,
		HotFactor: cfg.HotFactor, DurationSeconds: cfg.Duration.Seconds(), FailoverTimeS: cfg.FailoverTime.Seconds()}}
	defer r.dropTable()
	err := runSteps(ctx, r.createTable, r.baseline, r.leaderRun)
	return r.res, err
}

// leasesRun is one run of the simulation.
type leasesRun struct {
	cfg   LeasesConfig
	res   LeasesResult
	table string
	keys  []string
	fleet *simFleet
}

func (r *leasesRun) say(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "bench leases: "+format+"\n", args...)
}

// createTable makes a fresh lease table (and its companions) with cfg.Shards unowned leases.
func (r *leasesRun) createTable(ctx context.Context) error {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	r.table = "bench-leases-" + hex.EncodeToString(b[:])
	if err := lease.EnsureTable(ctx, r.cfg.DynamoDB, r.table); err != nil {
		return fmt.Errorf("bench leases: %w", err)
	}
	t := lease.NewTable(r.cfg.DynamoDB, r.table)
	for i := range r.cfg.Shards {
		k := fmt.Sprintf("shardId-%012d", i)
		if err := t.Create(ctx, lease.Lease{Key: k, Checkpoint: lease.TrimHorizon}); err != nil {
			return fmt.Errorf("bench leases: %w", err)
		}
		r.keys = append(r.keys, k)
	}
	r.say("table %s with %d leases", r.table, r.cfg.Shards)
	return nil
}

// dropTable deletes the run's tables.
func (r *leasesRun) dropTable() {
	if r.table == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lease.DeleteTables(ctx, r.cfg.DynamoDB, r.table); err != nil {
		r.say("could not delete the tables of %s: %v", r.table, err)
	}
}

// rate is a shard's synthetic load in records/s.
func (r *leasesRun) rate(shard string) float64 {
	i := slices.Index(r.keys, shard)
	if i >= 0 && i < r.cfg.HotShards {
		return r.cfg.BaseRate * r.cfg.HotFactor
	}
	return r.cfg.BaseRate
}

// baseline runs the fleet in the every-worker-scan mode and measures its capacity in steady state (after
// every lease is held), then stops it cleanly (the leases are released for the leader run).
func (r *leasesRun) baseline(ctx context.Context) error {
	r.say("baseline: %d workers scanning for %v", r.cfg.Workers, r.cfg.Baseline)
	f := r.newFleet(lease.AssignByScan)
	defer f.stopAll()
	start := time.Now()
	if !f.waitUntil(ctx, start.Add(r.cfg.Baseline), func(s simState) bool { return s.held == r.cfg.Shards }) {
		return ctx.Err()
	}
	reads, writes, secs := f.measure(ctx, start.Add(r.cfg.Baseline))
	r.res.BaselineReadUnitsPerS, r.res.BaselineWriteUnitsPerS = reads/secs, writes/secs
	r.say("baseline: %.1f read units/s, %.1f write units/s", r.res.BaselineReadUnitsPerS, r.res.BaselineWriteUnitsPerS)
	return ctx.Err()
}

// leaderRun runs the fleet in the leader mode: until balanced, a steady-state measurement, the kill of 10 %
// of the workers half way, the leader's kill three quarters of the way, and the final balance.
func (r *leasesRun) leaderRun(ctx context.Context) error {
	r.say("leader mode: %d workers, %d shards (%d hot ×%v) for %v", r.cfg.Workers, r.cfg.Shards, r.cfg.HotShards, r.cfg.HotFactor, r.cfg.Duration)
	f := r.newFleet(lease.AssignByLeader)
	r.fleet = f
	defer f.stopAll()
	start := time.Now()
	half, threeQuarters := start.Add(r.cfg.Duration/2), start.Add(3*r.cfg.Duration/4)
	r.res.SecondsToBalance = -1
	if f.waitUntil(ctx, half, func(s simState) bool { return s.balanced }) {
		r.res.SecondsToBalance = time.Since(start).Seconds()
		r.res.MaxOverMeanLoad = f.state().maxOverMean
		r.say("balanced after %.1fs (max/mean load %.2f)", r.res.SecondsToBalance, r.res.MaxOverMeanLoad)
		reads, writes, secs := f.measure(ctx, half)
		r.res.ReadUnitsPerS, r.res.WriteUnitsPerS = reads/secs, writes/secs
		if r.res.BaselineReadUnitsPerS > 0 {
			r.res.ReadRatio = r.res.ReadUnitsPerS / r.res.BaselineReadUnitsPerS
		}
		r.say("steady state: %.1f read units/s (%.1f %% of the baseline), %.1f write units/s",
			r.res.ReadUnitsPerS, 100*r.res.ReadRatio, r.res.WriteUnitsPerS)
	}
	if err := r.killWorkers(ctx, f, threeQuarters); err != nil {
		return err
	}
	if err := r.killLeader(ctx, f, start.Add(r.cfg.Duration+3*r.cfg.FailoverTime)); err != nil {
		return err
	}
	f.waitUntil(ctx, start.Add(r.cfg.Duration), func(simState) bool { return false })
	end := f.state()
	r.res.MaxOverMeanLoadAtEnd, r.res.LeaseMoves, r.res.Violations = end.maxOverMean, f.moves(), f.violations()
	r.say("end: max/mean load %.2f, %d lease moves, %d violations", r.res.MaxOverMeanLoadAtEnd, r.res.LeaseMoves, r.res.Violations)
	return ctx.Err()
}

// killWorkers stops 10 % of the workers dead (never the leader) and waits, until deadline, for every
// shard to be held again.
func (r *leasesRun) killWorkers(ctx context.Context, f *simFleet, deadline time.Time) error {
	n := max(1, int(math.Round(float64(r.cfg.Workers)/10)))
	killed := f.crash(n, false)
	r.res.Killed = killed
	at := time.Now()
	r.say("killed %v", killed)
	r.res.RecoverySeconds = -1
	if f.waitUntil(ctx, deadline, func(s simState) bool { return s.held == r.cfg.Shards }) {
		r.res.RecoverySeconds = time.Since(at).Seconds()
		r.say("every shard held again after %.1fs", r.res.RecoverySeconds)
	}
	return ctx.Err()
}

// killLeader stops the leader dead and measures the time until another worker leads and until every shard
// is held again (until deadline).
func (r *leasesRun) killLeader(ctx context.Context, f *simFleet, deadline time.Time) error {
	killed := f.crash(1, true)
	at := time.Now()
	r.say("killed the leader %v", killed)
	r.res.FailoverSeconds, r.res.LeaderRecoverySeconds = -1, -1
	if f.waitUntil(ctx, deadline, func(s simState) bool { return s.leaders == 1 }) {
		r.res.FailoverSeconds = time.Since(at).Seconds()
		r.say("a new leader after %.1fs", r.res.FailoverSeconds)
	}
	if f.waitUntil(ctx, deadline, func(s simState) bool { return s.held == r.cfg.Shards }) {
		r.res.LeaderRecoverySeconds = time.Since(at).Seconds()
		r.say("every shard held again after %.1fs", r.res.LeaderRecoverySeconds)
	}
	return ctx.Err()
}

// newFleet starts cfg.Workers coordinators in mode, each on its own counting, stoppable client.
func (r *leasesRun) newFleet(mode string) *simFleet {
	f := &simFleet{run: r}
	for i := range r.cfg.Workers {
		f.start(fmt.Sprintf("sim-%03d", i), mode)
	}
	return f
}

// errStopped fails the calls of a worker stopped dead.
var errStopped = errors.New("bench leases: worker stopped dead")

// simFleet is the simulated fleet: coordinators sharing one capacity-counting client, each behind a
// client that can be stopped dead.
type simFleet struct {
	run     *leasesRun
	cap     *capacityDB
	workers []*simWorker
	wg      sync.WaitGroup
	mu      sync.Mutex
	double  int // samples where a shard was held by two live workers
}

type simWorker struct {
	id     string
	c      *lease.Coordinator
	db     *stoppableDB
	cancel context.CancelFunc
	dead   bool
}

func (f *simFleet) start(id, mode string) {
	if f.cap == nil {
		f.cap = &capacityDB{DynamoDBAPI: f.run.cfg.DynamoDB}
	}
	w := &simWorker{id: id, db: &stoppableDB{DynamoDBAPI: f.cap}}
	c, err := lease.New(w.db, lease.Config{Table: f.run.table, WorkerID: id, Assignment: mode,
		FailoverTime: f.run.cfg.FailoverTime, TakeInterval: time.Second, Logger: f.run.cfg.Logger.Named(id).WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		Process: simProcess, Load: func() lease.Load { return f.load(w) }})
	if err != nil {
		panic(err) // the configuration is the bench's own
	}
	w.c = c
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	f.wg.Go(func() { _ = c.Run(ctx) })
	f.workers = append(f.workers, w)
}

// simProcess holds a shard until its holding period ends, and hands it on at once when asked.
func simProcess(h *lease.Handle) {
	<-h.Context().Done()
	if errors.Is(context.Cause(h.Context()), lease.ErrLeaseLost) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.Release(ctx)
}

// load is what worker w reports: the synthetic rates of the shards it holds.
func (f *simFleet) load(w *simWorker) lease.Load {
	l := lease.Load{Shards: map[string]lease.ShardLoad{}}
	for _, k := range w.c.Holding() {
		r := f.run.rate(k)
		l.Shards[k] = lease.ShardLoad{RecordsPerSec: r, BytesPerSec: 200 * r}
	}
	return l
}

// crash stops n live workers dead (the leader only, when leader is set; never the leader otherwise): their
// calls fail from now on, so their leases and lock expire as after kill -9.
func (f *simFleet) crash(n int, leader bool) []string {
	var ids []string
	for _, w := range f.workers {
		if len(ids) == n {
			break
		}
		if w.dead || w.c.IsLeader() != leader {
			continue
		}
		w.dead = true
		w.db.stopped.Store(true)
		w.cancel()
		ids = append(ids, w.id)
	}
	return ids
}

// stopAll stops every worker (the live ones cleanly) and waits for them.
func (f *simFleet) stopAll() {
	for _, w := range f.workers {
		w.cancel()
	}
	f.wg.Wait()
}

// simState is one look at the fleet.
type simState struct {
	held        int     // shards held by live workers
	leaders     int     // live workers that lead
	balanced    bool    // every shard held, no worker above 1.2× the mean load (unless alone with one shard)
	maxOverMean float64 // the most loaded live worker over the mean (but one alone with a too hot shard)
}

func (f *simFleet) state() simState {
	var s simState
	owner := map[string]string{}
	var loads []float64
	alone := map[int]bool{}
	total := 0.0
	for _, w := range f.workers {
		if w.dead {
			continue
		}
		if w.c.IsLeader() {
			s.leaders++
		}
		load, keys := 0.0, w.c.Holding()
		for _, k := range keys {
			if other, ok := owner[k]; ok && other != w.id {
				f.mu.Lock()
				f.double++
				f.mu.Unlock()
			}
			owner[k] = w.id
			load += f.run.rate(k)
		}
		alone[len(loads)] = len(keys) == 1
		loads = append(loads, load)
		total += load
	}
	s.held = len(owner)
	mean := total / float64(max(1, len(loads)))
	s.balanced = s.held == f.run.cfg.Shards
	for i, l := range loads {
		if l > 1.2*mean && alone[i] {
			continue // one shard hotter than the balance allows: nothing can be moved to help it
		}
		if mean > 0 {
			s.maxOverMean = max(s.maxOverMean, l/mean)
		}
		if l > 1.2*mean {
			s.balanced = false
		}
	}
	return s
}

// waitUntil looks at the fleet every 250ms until cond holds (true) or deadline passes or ctx ends (false).
func (f *simFleet) waitUntil(ctx context.Context, deadline time.Time, cond func(simState) bool) bool {
	for {
		if cond(f.state()) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// measure returns the capacity units the fleet used from now until deadline, and the seconds between.
func (f *simFleet) measure(ctx context.Context, deadline time.Time) (reads, writes, secs float64) {
	r0, w0 := f.cap.units()
	start := time.Now()
	f.waitUntil(ctx, deadline, func(simState) bool { return false })
	r1, w1 := f.cap.units()
	return r1 - r0, w1 - w0, max(time.Since(start).Seconds(), 1e-9)
}

// moves sums the assignments the fleet's leaders wrote.
func (f *simFleet) moves() int {
	n := 0
	for _, w := range f.workers {
		n += w.c.LeaderMoves()
	}
	return n
}

func (f *simFleet) violations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.double
}

// stoppableDB fails every call once stopped: a worker stopped dead.
type stoppableDB struct {
	lease.DynamoDBAPI
	stopped atomic.Bool
}

func (s *stoppableDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.GetItem(ctx, in, o...)
}

func (s *stoppableDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.PutItem(ctx, in, o...)
}

func (s *stoppableDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (s *stoppableDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.DeleteItem(ctx, in, o...)
}

func (s *stoppableDB) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.Scan(ctx, in, o...)
}

func (s *stoppableDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.DynamoDBAPI.Query(ctx, in, o...)
}
