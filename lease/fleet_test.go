package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// testFailover is the failover time of the multi-worker tests: short, so that
// they run in seconds, long enough that a renewal delayed by a loaded emulator on a 2-core machine under
// -race (seen: 440 ms) is not a lost lease.
const testFailover = 2 * time.Second

// fleet runs coordinators on one table with a fake consumer that checks, at
// every start, that no other worker is processing the shard and that a new
// owner starts from its predecessor's final checkpoint.
type fleet struct {
	t       testing.TB
	db      *dynamodb.Client
	tbl     *Table
	keys    []string
	seq     atomic.Int64
	workers []*worker
	wg      sync.WaitGroup

	mu         sync.Mutex
	active     map[string]string // shard → worker whose holder is running
	violations []string
	final      map[string]finalCheckpoint // shard → last final checkpoint written by a leaving holder
	starts     map[string][]startRecord
	handles    map[string]*Handle // worker/shard → latest handle
	scans      int
}

type finalCheckpoint struct {
	worker string
	cp     Checkpoint
	cause  error
	at     time.Time // when the holder noticed its context was done
}

type startRecord struct {
	worker string
	start  Checkpoint
	at     time.Time
}

type worker struct {
	id     string
	c      *Coordinator
	db     *freezableDB
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// testLogLevel is warn, or what LEASE_TEST_LOG says (debug, info, …).
func testLogLevel() zapcore.Level {
	if l, err := zapcore.ParseLevel(os.Getenv("LEASE_TEST_LOG")); err == nil && os.Getenv("LEASE_TEST_LOG") != "" {
		return l
	}
	return zap.WarnLevel
}

func newFleet(t testing.TB, leases int) *fleet {
	db := testDB(t)
	f := &fleet{t: t, db: db, tbl: NewTable(db, testTable(t, db)), active: map[string]string{},
		final: map[string]finalCheckpoint{}, starts: map[string][]startRecord{}, handles: map[string]*Handle{}}
	f.seq.Store(1000)
	f.keys = createLeases(t, f.tbl, leases)
	t.Cleanup(f.stopAll)
	return f
}

// start adds a worker; mod may adjust its config.
func (f *fleet) start(id string, mod func(*Config)) *worker {
	f.t.Helper()
	w := &worker{id: id, db: &freezableDB{DynamoDBAPI: f.db}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	cfg := Config{
		Table:          f.tbl.Name(),
		WorkerID:       id,
		FailoverTime:   testFailover,
		HandoffTimeout: 5 * time.Second,
		Process:        f.process(id),
		Logger:         zaptest.NewLogger(f.t, zaptest.Level(testLogLevel())),
		Registerer:     w.reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(w.db, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	w.c = c
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	f.wg.Go(func() { w.done <- c.Run(ctx) })
	f.workers = append(f.workers, w)
	return w
}

// stop shuts a worker down cleanly and waits for Run to return.
func (f *fleet) stop(w *worker) {
	w.db.thaw()
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			f.t.Errorf("worker %s: Run: %v", w.id, err)
		}
		w.done <- nil
	case <-time.After(30 * time.Second):
		f.t.Errorf("worker %s: Run did not return", w.id)
	}
}

func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for _, w := range f.workers {
		wg.Go(func() { f.stop(w) })
	}
	wg.Wait()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		f.t.Error(v)
	}
}

func (f *fleet) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

// process is the fake consumer: it holds the shard until its context ends,
// then (unless the lease was lost) writes a final checkpoint and releases.
func (f *fleet) process(worker string) func(h *Handle) {
	return func(h *Handle) {
		shard := h.ShardID()
		f.mu.Lock()
		if other, ok := f.active[shard]; ok {
			f.violate("shard %s started on %s while %s is processing it", shard, worker, other)
		}
		f.active[shard] = worker
		if fin, ok := f.final[shard]; ok && fin.worker != worker && h.Start() != fin.cp {
			f.violate("shard %s started on %s at %v, but %s's final checkpoint was %v", shard, worker, h.Start(), fin.worker, fin.cp)
		}
		f.starts[shard] = append(f.starts[shard], startRecord{worker: worker, start: h.Start(), at: time.Now()})
		f.handles[worker+"/"+shard] = h
		f.mu.Unlock()

		<-h.Context().Done()
		noticed := time.Now()
		cause := context.Cause(h.Context())
		leave := func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.active[shard] == worker {
				delete(f.active, shard)
			}
		}
		if errors.Is(cause, ErrLeaseLost) {
			leave() // stop at once, no checkpoint
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cp := Checkpoint{SequenceNumber: strconv.FormatInt(f.seq.Add(1), 10), SubSequence: 3}
		if err := h.Checkpoint(ctx, cp.SequenceNumber, cp.SubSequence); err != nil {
			leave()
			if !errors.Is(err, ErrLeaseLost) {
				f.t.Errorf("final checkpoint of %s on %s: %v", shard, worker, err)
			}
			return
		}
		f.mu.Lock()
		f.final[shard] = finalCheckpoint{worker: worker, cp: cp, cause: cause, at: noticed}
		f.mu.Unlock()
		leave()
		if err := h.Release(ctx); err != nil && !errors.Is(err, ErrLeaseLost) {
			f.t.Errorf("release %s on %s: %v", shard, worker, err)
		}
	}
}

// holding returns, per worker, the shards its holders are running.
func (f *fleet) holding() map[string][]string {
	m := map[string][]string{}
	for _, w := range f.workers {
		h := w.c.Holding()
		slices.Sort(h)
		m[w.id] = h
	}
	return m
}

// check scans the table between two snapshots of what each worker holds: a
// shard held in both snapshots must be held by one worker only, and the table
// must name that worker as owner or (during a handoff) as checkpointOwner.
func (f *fleet) check() ([]Lease, map[string][]string) {
	before := f.holding()
	leases, err := f.tbl.List(context.Background())
	if err != nil {
		f.t.Errorf("scan: %v", err)
		return nil, before
	}
	after := f.holding()
	byKey := map[string]Lease{}
	for _, l := range leases {
		byKey[l.Key] = l
	}
	seen := map[string]string{}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	for w, keys := range after {
		for _, k := range keys {
			if !slices.Contains(before[w], k) {
				continue
			}
			if other, ok := seen[k]; ok {
				f.violate("scan %d: shard %s held by %s and %s", f.scans, k, other, w)
			}
			seen[k] = w
			if l := byKey[k]; l.Owner != w && l.CheckpointOwner != w {
				f.violate("scan %d: %s holds %s but the table says owner %q checkpointOwner %q", f.scans, w, k, l.Owner, l.CheckpointOwner)
			}
		}
	}
	return leases, after
}

// balanced reports whether every lease is being processed and the live
// workers' counts are within one of each other.
func balanced(hold map[string][]string, live []string, total int) bool {
	n, lo, hi := 0, total, 0
	for _, w := range live {
		c := len(hold[w])
		n += c
		lo, hi = min(lo, c), max(hi, c)
	}
	return n == total && hi-lo <= 1
}

// waitFor checks the fleet every 25ms until cond holds or timeout passes.
func (f *fleet) waitFor(what string, timeout time.Duration, cond func([]Lease, map[string][]string) bool) time.Duration {
	f.t.Helper()
	start := time.Now()
	for {
		leases, hold := f.check()
		if cond(leases, hold) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			f.t.Fatalf("%s: not reached within %v; holding %v", what, timeout, hold)
		}
		time.Sleep(25 * time.Millisecond) // polling interval of the test's observer
	}
}

func (f *fleet) ids(ws ...*worker) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.id)
	}
	return s
}

// readCalls are the call kinds of the lease package's metrics that read.
var readCalls = map[string]bool{"get": true, "scan": true, "scan_eventually": true, "query_owned": true, "leader_read": true, "scan_loads": true}

// writes sums the worker's DynamoDB write calls (every kind but the reads).
func (w *worker) writes(t testing.TB) float64 {
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "clickfleet_lease_dynamodb_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			kind := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "call" {
					kind = lp.GetValue()
				}
			}
			if !readCalls[kind] {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// counter sums the worker's counter name over its series whose labels hold every pair of labels
// (name, value, name, value…); with no pairs, over all of them.
func (w *worker) counter(t testing.TB, name string, labels ...string) float64 {
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n float64
			for _, m := range mf.GetMetric() {
				if hasLabels(m.GetLabel(), labels) {
					n += m.GetCounter().GetValue()
				}
			}
			return n
		}
	}
	return 0
}

// hasLabels reports whether got holds every (name, value) pair of want.
func hasLabels(got []*dto.LabelPair, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		if !slices.ContainsFunc(got, func(l *dto.LabelPair) bool { return l.GetName() == want[i] && l.GetValue() == want[i+1] }) {
			return false
		}
	}
	return true
}

func ownersOf(leases []Lease) map[string]string {
	m := map[string]string{}
	for _, l := range leases {
		m[l.Key] = l.Owner
	}
	return m
}
