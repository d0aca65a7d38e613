package consumer

import (
	"sync"
	"time"
)

// Lag says how far behind the stream's tip this worker's held shards are, over every shard it reads now.
type Lag struct {
	// MaxMillisBehindLatest is the highest MillisBehindLatest Kinesis reported for a held shard in its last
	// GetRecords answer (some emulators always say 0).
	MaxMillisBehindLatest int64
	// MaxArrival is the longest time since the arrival of the last record read on a held shard, as of that
	// read; 0 for a shard whose last read was empty (it is at the tip).
	MaxArrival time.Duration
	// Shards is how many shards contributed (the ones read at least once in their holding period).
	Shards int
}

// shardLag is the last GetRecords answer's lag of one held shard.
type shardLag struct {
	millis  int64
	arrival time.Duration
}

// lags keeps each held shard's latest lag, so that the worker reports the maximum instead of whichever
// shard answered last.
type lags struct {
	mu     sync.Mutex
	shards map[string]shardLag
}

func (l *lags) set(shard string, millis int64, arrival time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shards == nil {
		l.shards = map[string]shardLag{}
	}
	l.shards[shard] = shardLag{millis: millis, arrival: arrival}
}

func (l *lags) drop(shard string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.shards, shard)
}

func (l *lags) max() Lag {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out Lag
	for _, s := range l.shards {
		out.MaxMillisBehindLatest = max(out.MaxMillisBehindLatest, s.millis)
		out.MaxArrival = max(out.MaxArrival, s.arrival)
		out.Shards++
	}
	return out
}

// Lag returns the maximum lag over the shards this worker reads now; safe for concurrent use.
func (w *Worker) Lag() Lag { return w.lags.max() }

// RecordsProcessed is how many records the processors have accepted since the worker started.
func (w *Worker) RecordsProcessed() int64 { return w.processed.Load() }

// each calls fn with every held shard's latest lag, under the lock.
func (l *lags) each(fn func(shard string, s shardLag)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, s := range l.shards {
		fn(id, s)
	}
}
