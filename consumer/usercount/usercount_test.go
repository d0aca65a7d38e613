package usercount_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/consumer/usercount"
	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// checkpointer records the last checkpoint.
type checkpointer struct {
	mu sync.Mutex
	at string
}

func (c *checkpointer) Checkpoint(_ context.Context, seq string, sub int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = fmt.Sprintf("%s:%d", seq, sub)
	return nil
}

func (c *checkpointer) CheckpointShardEnd(context.Context) error { return nil }

func (c *checkpointer) position() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

const shard = "shardId-000000000000"

// records returns n records of users u0..u9 on shard, numbered from first.
func records(first, n int) []consumer.Record {
	out := make([]consumer.Record, n)
	for i := range out {
		out[i] = consumer.Record{ShardID: shard, SequenceNumber: fmt.Sprintf("49600000000000000000000%033d", first+i),
			PartitionKey: fmt.Sprintf("u%d", (first+i)%10)}
	}
	return out
}

// counts returns each user's count under prefix on rdb.
func counts(t *testing.T, rdb *redis.Client, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for u := range 10 {
		n, err := rdb.HGet(context.Background(), usercount.Key(prefix, fmt.Sprintf("u%d", u)), "count").Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		out[fmt.Sprintf("u%d", u)] = n
	}
	return out
}

// The primary fails right after a batch's counts, while replication is paused; its replica is promoted
// and the endpoint moves to it. With WaitReplicas the batch was never acknowledged (nor checkpointed):
// the worker delivers it again and the counts end exact on the new primary. Without (the control), the
// batch was checkpointed, and the new primary lacks its counts.
func TestCountsSurviveAFailover(t *testing.T) {
	testenv.Redis(t) // the stack is up, so redis-server is installed
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"wait for 1 replica", 1}, {"no wait (control)", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			proxies := faults.NewProxies()
			defer proxies.Close()
			dir := t.TempDir()
			primary, replica := testenv.StartReplicatedRedis(t, dir, func(primary string) string {
				link, err := proxies.Add("replication", "127.0.0.1:0", primary)
				if err != nil {
					t.Fatal(err)
				}
				return link
			})
			endpoint, err := proxies.Add("endpoint", "127.0.0.1:0", primary.Options().Addr)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: endpoint, MaxRetries: -1})
			defer rdb.Close()
			newProc, err := usercount.Factory(usercount.Config{Redis: rdb, Prefix: "c:", CheckpointInterval: time.Nanosecond,
				// The first batch's acknowledgement may take a loaded machine's replica more than a fraction of
				// a second (it failed at 200 ms in a full make test); the paused batch waits the whole timeout.
				WaitReplicas: tc.replicas, WaitTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p := newProc(shard)
			if err := p.Initialize(ctx, consumer.InitInput{ShardID: shard, Start: lease.TrimHorizon}); err != nil {
				t.Fatal(err)
			}
			cp := &checkpointer{}
			first, second := records(1, 50), records(51, 30)
			if err := p.ProcessRecords(ctx, consumer.Batch{Records: first, Checkpointer: cp}); err != nil {
				t.Fatal(err)
			}
			// The second batch's counts reach the primary only.
			if _, err := proxies.Latency("replication", time.Hour, 0); err != nil {
				t.Fatal(err)
			}
			err = p.ProcessRecords(ctx, consumer.Batch{Records: second, Checkpointer: cp})
			if tc.replicas > 0 && !errors.Is(err, replicawait.ErrNotAcknowledged) {
				t.Fatalf("the batch with replication paused: %v, want ErrNotAcknowledged", err)
			}
			if tc.replicas == 0 && err != nil {
				t.Fatal(err)
			}
			checkpointed := cp.position()
			if c := counts(t, primary, "c:"); c["u0"] != 8 {
				t.Fatalf("the primary counts u0 %d times, want 8: the batch was not counted there", c["u0"])
			}
			testenv.KillRedis(t, dir+"/primary", primary)
			testenv.FailOver(t, replica, t.TempDir())
			if err := proxies.SetUpstream("endpoint", replica.Options().Addr); err != nil {
				t.Fatal(err)
			}
			if tc.replicas == 0 {
				lost := 0
				for _, n := range counts(t, replica, "c:") {
					lost += 8 - int(n)
				}
				if lost == 0 || checkpointed != second[len(second)-1].SequenceNumber+":0" {
					t.Fatalf("without waiting: checkpointed at %s, %d counts lost: the scenario was not reproduced", checkpointed, lost)
				}
				t.Logf("without waiting, the checkpoint passed the second batch and the failover lost %d of its %d counts", lost, len(second))
				return
			}
			if want := first[len(first)-1].SequenceNumber + ":0"; checkpointed != want {
				t.Fatalf("checkpointed at %s before the failover, want %s (the first batch's end)", checkpointed, want)
			}
			// The worker delivers the batch again until it succeeds (the first attempts may meet closed
			// connections).
			testenv.WaitFor(t, "the second batch delivered again", 20*time.Second, func() bool {
				return p.ProcessRecords(ctx, consumer.Batch{Records: second, Checkpointer: cp}) == nil
			})
			if want := second[len(second)-1].SequenceNumber + ":0"; cp.position() != want {
				t.Fatalf("checkpointed at %s, want %s", cp.position(), want)
			}
			for u, n := range counts(t, replica, "c:") {
				if n != 8 {
					t.Errorf("user %s counted %d times on the new primary, want 8", u, n)
				}
			}
		})
	}
}
