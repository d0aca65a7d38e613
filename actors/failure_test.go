package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// A write the server refuses for good (here: the sessions table does not exist) stops the shard and is
// reported on Factory.Failed with an error naming the table and its setting (the command then stops the
// worker: cmd/clickfleet's tests show the exit), instead of being retried forever while the lease is
// renewed. Nothing after the failed write happens: no user state, no checkpoint.
func TestPermanentWriteErrorStopsTheWorker(t *testing.T) {
	s := newSinks(t)
	s.table = testenv.Name(t, "missing-sessions")
	stream := testenv.Stream(t, s.kin, 2)
	putAll(t, s.kin, stream, labEvents(60, 3))
	cfg := s.config(stream)
	cfg.FlushInterval = 100 * time.Millisecond
	f := newFactory(t, cfg)
	leases := leaseTable(t, s.ddb)
	w, err := consumer.New(s.kin, s.ddb, consumer.Config{Stream: stream, NewProcessor: f.NewProcessor, MaxRecords: 100,
		IdleTime: 100 * time.Millisecond, ShardSyncInterval: time.Second,
		Lease: lease.Config{Table: leases, WorkerID: "w1", FailoverTime: 2 * time.Second, TakeInterval: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var failed error
	select {
	case failed = <-f.Failed():
	case <-ctx.Done():
		t.Fatal("no permanent failure reported within 90s")
	}
	if f.Ready() {
		t.Error("the factory is ready after a permanent failure")
	}
	var re *consumer.ResourceError
	if !errors.As(failed, &re) || re.Setting != "SessionsTable" || re.Name != s.table || !retry.IsPermanent(failed) {
		t.Fatalf("Failed gave %v, want a permanent *consumer.ResourceError for SessionsTable %s", failed, s.table)
	}
	cancel()
	if err := <-done; err != nil && !retry.IsPermanent(err) {
		t.Fatalf("worker: %v", err)
	}
	if h := userHashes(t, s.rdb, s.prefix); len(h) != 0 {
		t.Fatalf("user state of %d users written although their sessions were not", len(h))
	}
	ls, err := lease.NewTable(s.ddb, leases).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if !l.Checkpoint.IsSentinel() {
			t.Errorf("shard %s checkpointed at %s although nothing was written", l.Key, l.Checkpoint)
		}
	}
}

// Redis stops for 3 s while records flow: the writer retries (the factory is not ready meanwhile),
// checkpoints nothing it has not written, and when Redis is back every session and user state equals a
// run without the outage.
func TestRedisOutageIsRetried(t *testing.T) {
	ref := newSinks(t)
	stream := testenv.Stream(t, ref.kin, 2)
	evs := labEvents(400, 11)
	first := putAll(t, ref.kin, stream, evs[:200])

	port := testenv.FreePort(t)
	dir := t.TempDir()
	out := ref.withTable(t)
	out.rdb = testenv.StartRedis(t, dir, port)

	run := func(s *sinks, id string) (*Factory, string, func()) {
		cfg := s.config(stream)
		cfg.FlushInterval = 100 * time.Millisecond
		f := newFactory(t, cfg)
		table := leaseTable(t, s.ddb)
		return f, table, runWorker(t, s, stream, table, id, f)
	}
	_, refLeases, stopRef := run(ref, "ref")
	outF, outLeases, stopOut := run(out, "outage")
	testenv.WaitFor(t, "the first half written", 60*time.Second, func() bool { return checkpointedTo(t, out.ddb, outLeases, first) })

	if err := out.rdb.Shutdown(context.Background()).Err(); err != nil && !errors.Is(err, redis.ErrClosed) && err.Error() != "EOF" {
		t.Logf("shutdown: %v", err) // the connection closes under the command
	}
	testenv.WaitFor(t, "redis to stop", 10*time.Second, func() bool { return out.rdb.Ping(context.Background()).Err() != nil })
	last := putAll(t, ref.kin, stream, evs[200:])
	testenv.WaitFor(t, "the factory to say it is not ready while Redis is down", 30*time.Second, func() bool { return !outF.Ready() })
	if checkpointedTo(t, out.ddb, outLeases, last) {
		t.Fatal("the second half was checkpointed while Redis was down")
	}
	time.Sleep(3 * time.Second) // an outage of a fixed length: the writer must keep retrying through it
	out.rdb = testenv.StartRedis(t, dir, port)

	testenv.WaitFor(t, "both runs checkpointed at the last record", 90*time.Second, func() bool {
		return checkpointedTo(t, out.ddb, outLeases, last) && checkpointedTo(t, ref.ddb, refLeases, last)
	})
	testenv.WaitFor(t, "the factory to be ready again", 10*time.Second, outF.Ready)
	select {
	case err := <-outF.Failed():
		t.Fatalf("a transient outage was reported as permanent: %v", err)
	default:
	}
	stopOut()
	stopRef()
	sameResults(t, out, ref)
}
