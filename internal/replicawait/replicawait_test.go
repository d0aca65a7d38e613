package replicawait_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// pair is a primary redis-server of the test's own and its replica, which replicates through a proxy so
// that the test can slow or stall replication.
type pair struct {
	primary, replica *redis.Client
	proxies          *faults.Proxies
}

func newPair(t *testing.T) *pair {
	t.Helper()
	testenv.Redis(t) // the stack is up, so redis-server is installed
	p := faults.NewProxies()
	t.Cleanup(p.Close)
	primary, replica := testenv.StartReplicatedRedis(t, t.TempDir(), func(primary string) string {
		link, err := p.Add("replication", "127.0.0.1:0", primary)
		if err != nil {
			t.Fatal(err)
		}
		return link
	})
	return &pair{primary: primary, replica: replica, proxies: p}
}

// One write and WAIT on one connection cover the writes other connections made before: while
// replication is slow, the replica lacks writes made on four other connections; once Wait returned, it
// holds every one of them.
func TestWaitCoversOtherConnections(t *testing.T) {
	pr := newPair(t)
	ctx := context.Background()
	if _, err := pr.proxies.Latency("replication", 300*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	writers := redis.NewClient(&redis.Options{Addr: pr.primary.Options().Addr, PoolSize: 4})
	defer writers.Close()
	const perConn = 50
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := writers.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				for i := range perConn {
					pipe.Set(ctx, fmt.Sprintf("k:%d:%d", c, i), i, 0)
				}
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := pr.replica.Exists(ctx, "k:3:49").Result(); err != nil || n != 0 {
		t.Fatalf("the replica already holds the last write (%d, %v): replication is not slowed, the test would prove nothing", n, err)
	}
	start := time.Now()
	acked, err := replicawait.Wait(ctx, pr.primary, replicawait.Key("t:", "shard-1"), "42:0", 1, 5*time.Second)
	if err != nil || acked != 1 {
		t.Fatalf("Wait: %d replicas, %v; want 1, nil", acked, err)
	}
	took := time.Since(start)
	n, err := pr.replica.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(4*perConn + 1); n != want {
		t.Fatalf("right after Wait the replica holds %d keys, want %d (every write of the other connections and the ack key)", n, want)
	}
	if v, err := pr.replica.Get(ctx, "t:ack:shard-1").Result(); err != nil || v != "42:0" {
		t.Fatalf("ack key on the replica: %q, %v", v, err)
	}
	t.Logf("Wait returned after %s with 300 ms of replication latency", took)
}

// Wait fails, wrapping ErrNotAcknowledged with the count, when fewer replicas acknowledge within the
// timeout, or within the context's deadline when that is sooner; it does nothing for 0 replicas.
func TestWaitShort(t *testing.T) {
	pr := newPair(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		stall     bool
		replicas  int
		timeout   time.Duration
		deadline  time.Duration // of the context; 0: none
		wantAcked int
		wantErr   error
		minTook   time.Duration
		maxTook   time.Duration
	}{
		{"no replica wanted", true, 0, time.Second, 0, 0, nil, 0, 100 * time.Millisecond},
		{"more replicas than there are", false, 2, 300 * time.Millisecond, 0, 1, replicawait.ErrNotAcknowledged, 250 * time.Millisecond, 2 * time.Second},
		{"replication stalled", true, 1, 300 * time.Millisecond, 0, 0, replicawait.ErrNotAcknowledged, 250 * time.Millisecond, 2 * time.Second},
		{"context deadline sooner", true, 1, 30 * time.Second, 300 * time.Millisecond, 0, replicawait.ErrNotAcknowledged, 200 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stall {
				names, err := pr.proxies.Latency("replication", time.Hour, 0) // paused; nothing is dropped
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := pr.proxies.Remove("replication", names); err != nil {
						t.Error(err)
					}
				}()
			}
			wctx := ctx
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				wctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			key := replicawait.Key(testenv.Name(t, "t")+":", "shard-1")
			start := time.Now()
			acked, err := replicawait.Wait(wctx, pr.primary, key, "1:0", tc.replicas, tc.timeout)
			took := time.Since(start)
			if acked != tc.wantAcked || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Wait: %d replicas, %v; want %d, %v", acked, err, tc.wantAcked, tc.wantErr)
			}
			if took < tc.minTook || took > tc.maxTook {
				t.Fatalf("Wait took %s, want between %s and %s", took, tc.minTook, tc.maxTook)
			}
			written, err := pr.primary.Exists(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(min(tc.replicas, 1)); written != want {
				t.Fatalf("the ack key exists %d times, want %d", written, want)
			}
		})
	}
}

// On a server that turned replica (a writable one, where the SET goes through), Wait's error is
// ErrReplica, which is transient, and not the server's error reply.
func TestWaitOnAReplica(t *testing.T) {
	pr := newPair(t)
	ctx := context.Background()
	if err := pr.replica.ConfigSet(ctx, "replica-read-only", "no").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := replicawait.Wait(ctx, pr.replica, "t:ack:shard-1", "1:0", 1, time.Second)
	if !errors.Is(err, replicawait.ErrReplica) {
		t.Fatalf("Wait on a replica: %v, want ErrReplica", err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		t.Fatalf("Wait on a replica returned the server's error reply %v, which retry classifies as permanent", rerr)
	}
}
