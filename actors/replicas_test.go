package actors

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// replicated is a primary redis-server of the test's own and its replica, which replicates through a
// proxy named "replication" so that the test can slow or pause replication.
type replicated struct {
	dir              string // the primary's data is in dir/primary, the replica's in dir/replica
	primary, replica *redis.Client
	proxies          *faults.Proxies
}

func newReplicated(t *testing.T) *replicated {
	t.Helper()
	testenv.Redis(t) // the stack is up, so redis-server is installed
	r := &replicated{dir: t.TempDir(), proxies: faults.NewProxies()}
	t.Cleanup(r.proxies.Close)
	r.primary, r.replica = testenv.StartReplicatedRedis(t, r.dir, func(primary string) string {
		link, err := r.proxies.Add("replication", "127.0.0.1:0", primary)
		if err != nil {
			t.Fatal(err)
		}
		return link
	})
	return r
}

// delay holds the replication stream d in each direction (an hour: paused; nothing is dropped) until
// the returned function is called.
func (r *replicated) delay(t *testing.T, d time.Duration) (resume func()) {
	t.Helper()
	names, err := r.proxies.Latency("replication", d, 0)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := r.proxies.Remove("replication", names); err != nil {
			t.Error(err)
		}
	}
}

// replicaCheckpointer is a fakeCheckpointer that, at each checkpoint, compares the users' state on the
// replica with the primary's (it runs on the writer's goroutine, so it records, never fails).
type replicaCheckpointer struct {
	fakeCheckpointer
	r      *replicated
	prefix string

	mu     sync.Mutex
	checks int
	behind []string // one line per checkpoint that found the replica behind
}

func (c *replicaCheckpointer) Checkpoint(ctx context.Context, seq string, sub int64) error {
	p, perr := hashes(ctx, c.r.primary, c.prefix)
	r, rerr := hashes(ctx, c.r.replica, c.prefix)
	c.mu.Lock()
	c.checks++
	switch {
	case perr != nil || rerr != nil:
		c.behind = append(c.behind, fmt.Sprintf("at %s: read the state: %v, %v", seq, perr, rerr))
	case !maps.EqualFunc(p, r, maps.Equal):
		n := 0
		for k, h := range p {
			if !maps.Equal(h, r[k]) {
				n++
			}
		}
		c.behind = append(c.behind, fmt.Sprintf("at %s: the replica lacks the state of %d of %d users", seq, n, len(p)))
	}
	c.mu.Unlock()
	return c.fakeCheckpointer.Checkpoint(ctx, seq, sub)
}

func (c *replicaCheckpointer) report() (checks int, behind []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks, append([]string(nil), c.behind...)
}

// hashes returns every user hash under prefix on rdb, by key.
func hashes(ctx context.Context, rdb *redis.Client, prefix string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	iter := rdb.Scan(ctx, 0, prefix+"user:*", 1000).Iterator()
	for iter.Next(ctx) {
		h, err := rdb.HGetAll(ctx, iter.Val()).Result()
		if err != nil {
			return nil, err
		}
		out[iter.Val()] = h
	}
	return out, iter.Err()
}

// With WaitReplicas, every checkpoint finds the users' state on the replica equal to the primary's,
// although replication lags by 100 ms; without it (the control), checkpoints find the replica behind.
func TestFlushCheckpointsOnlyReplicatedState(t *testing.T) {
	r := newReplicated(t)
	defer r.delay(t, 100*time.Millisecond)()
	recs := workload(600, 40, 3)
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"wait for 1 replica", 1}, {"no wait (control)", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSinks(t)
			cfg := s.config("in")
			cfg.Redis, cfg.WaitReplicas, cfg.WaitTimeout = r.primary, tc.replicas, 5*time.Second
			cfg.FlushInterval, cfg.FlushMaxRecords = 20*time.Millisecond, 100
			f := newFactory(t, cfg)
			cp := &replicaCheckpointer{r: r, prefix: s.prefix}
			runWith(t, f, recs, 50, cp)
			checks, behind := cp.report()
			acked := testutil.ToFloat64(f.m.replicaWaits.WithLabelValues("acknowledged"))
			if tc.replicas == 0 {
				if len(behind) == 0 {
					t.Fatalf("no checkpoint of %d found the replica behind without waiting: replication is not slowed, the test would prove nothing", checks)
				}
				if acked != 0 {
					t.Fatalf("%v waits without WaitReplicas", acked)
				}
				t.Logf("without waiting, %d of %d checkpoints found the replica behind, e.g. %s", len(behind), checks, behind[0])
				return
			}
			if checks < 3 || len(behind) > 0 {
				t.Fatalf("%d checkpoints, %d found the replica behind: %v", checks, len(behind), behind)
			}
			if acked < float64(checks) {
				t.Fatalf("%v acknowledged waits for %d checkpoints", acked, checks)
			}
			t.Logf("%d checkpoints, each with the replica holding the state; %v acknowledged waits", checks, acked)
		})
	}
}

// While replication is paused, a holding period does not start (it waits for the replicas after
// raising the fence, before reading any state), and a flush does not checkpoint: its waits fall short
// (counted, and the state written again) until replication resumes; then the checkpoint comes, with
// the replica holding the state.
func TestPausedReplicationHoldsTheCheckpoint(t *testing.T) {
	r := newReplicated(t)
	s := newSinks(t)
	cfg := s.config("in")
	cfg.Redis, cfg.WaitReplicas, cfg.WaitTimeout = r.primary, 1, 100*time.Millisecond
	cfg.FlushInterval, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	f := newFactory(t, cfg)
	short := func() float64 { return testutil.ToFloat64(f.m.replicaWaits.WithLabelValues("short")) }
	ctx := context.Background()
	cp := &replicaCheckpointer{r: r, prefix: s.prefix}
	p := f.NewProcessor(testShard)

	resume := r.delay(t, time.Hour)
	initialized := make(chan error, 1)
	go func() {
		initialized <- p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, LeaseCounter: 3})
	}()
	testenv.WaitFor(t, "two short waits at the holding period's start", 10*time.Second, func() bool { return short() >= 2 })
	select {
	case err := <-initialized:
		t.Fatalf("the holding period started (%v) while replication was paused", err)
	default:
	}
	resume()
	select {
	case err := <-initialized:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holding period did not start within 10 s of replication resuming")
	}
	defer func() {
		if err := p.ShutdownRequested(ctx, cp); err != nil {
			t.Error(err)
		}
	}()

	recs := workload(200, 20, 5)
	resume = r.delay(t, time.Hour)
	before := short()
	if err := p.ProcessRecords(ctx, batch(recs, cp)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "three short waits of the flush", 10*time.Second, func() bool { return short() >= before+3 })
	if pos := cp.position(); pos != "" {
		t.Fatalf("checkpointed at %s while replication was paused", pos)
	}
	resume()
	want := fmt.Sprintf("%s:0", recs[len(recs)-1].SequenceNumber)
	testenv.WaitFor(t, "the checkpoint after replication resumed", 10*time.Second, func() bool { return cp.position() == want })
	if checks, behind := cp.report(); checks == 0 || len(behind) > 0 {
		t.Fatalf("%d checkpoints, %d found the replica behind: %v", checks, len(behind), behind)
	}
	t.Logf("%v short waits in all", short())
}
