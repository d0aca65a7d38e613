package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The worker's lag is the maximum over the shards it holds now, not the last shard that answered.
func TestLagIsTheMaximumOverHeldShards(t *testing.T) {
	var l lags
	if got := l.max(); got != (Lag{}) {
		t.Fatalf("no shards: %+v", got)
	}
	l.set("a", 90_000, 2*time.Minute)
	l.set("b", 5_000, 3*time.Second)
	l.set("c", 0, 0) // at the tip, answered last
	if got := l.max(); got.MaxMillisBehindLatest != 90_000 || got.MaxArrival != 2*time.Minute || got.Shards != 3 {
		t.Fatalf("max = %+v, want shard a's lag over 3 shards", got)
	}
	l.drop("a") // its lease moved
	if got := l.max(); got.MaxMillisBehindLatest != 5_000 || got.MaxArrival != 3*time.Second || got.Shards != 2 {
		t.Fatalf("after a moved: %+v, want shard b's", got)
	}
}

// /metrics names the worker and carries each held shard's lag, and a shard's series go when it is dropped.
func TestShardMetrics(t *testing.T) {
	var l lags
	reg := prometheus.NewRegistry()
	if err := registerShardMetrics(reg, "w-1", "clickstream", "leases", &l); err != nil {
		t.Fatal(err)
	}
	l.set("shardId-000000000000", 1500, 2500*time.Millisecond)
	l.set("shardId-000000000001", 0, 0)
	want := `
# HELP clickfleet_consumer_shard_lag_seconds Per held shard: time since the arrival of the last record read, as of that read (0 at the tip).
# TYPE clickfleet_consumer_shard_lag_seconds gauge
clickfleet_consumer_shard_lag_seconds{shard_id="shardId-000000000000"} 2.5
clickfleet_consumer_shard_lag_seconds{shard_id="shardId-000000000001"} 0
# HELP clickfleet_consumer_shard_millis_behind_latest Per held shard: MillisBehindLatest of its last GetRecords answer.
# TYPE clickfleet_consumer_shard_millis_behind_latest gauge
clickfleet_consumer_shard_millis_behind_latest{shard_id="shardId-000000000000"} 1500
clickfleet_consumer_shard_millis_behind_latest{shard_id="shardId-000000000001"} 0
# HELP clickfleet_consumer_worker_info This worker's id in the lease table, its stream and lease table (always 1).
# TYPE clickfleet_consumer_worker_info gauge
clickfleet_consumer_worker_info{lease_table="leases",stream="clickstream",worker_id="w-1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	l.drop("shardId-000000000000")
	if n := testutil.CollectAndCount(reg, "clickfleet_consumer_shard_lag_seconds"); n != 1 {
		t.Fatalf("%d shard lag series after a drop, want 1", n)
	}
}
