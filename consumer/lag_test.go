package consumer

import (
	"testing"
	"time"
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
