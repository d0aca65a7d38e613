package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lease"
)

// gatedRedis is the real Redis with the users' loads (pipelines of HGETALL) held at a gate: the test sees
// each load arrive (loads) and lets the first one through only when it says so (release); later loads
// pass at once.
type gatedRedis struct {
	RedisAPI
	loads   chan int // the number of each load as it arrives
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func newGatedRedis(r RedisAPI) *gatedRedis {
	return &gatedRedis{RedisAPI: r, loads: make(chan int, 100), release: make(chan struct{})}
}

func (g *gatedRedis) Pipeline() redis.Pipeliner {
	return &gatedPipe{Pipeliner: g.RedisAPI.Pipeline(), g: g}
}

type gatedPipe struct {
	redis.Pipeliner
	g *gatedRedis
}

func (p *gatedPipe) Exec(ctx context.Context) ([]redis.Cmder, error) {
	if cmds := p.Cmds(); len(cmds) > 0 && cmds[0].Name() == "hgetall" {
		p.g.mu.Lock()
		p.g.n++
		n := p.g.n
		p.g.mu.Unlock()
		p.g.loads <- n
		if n == 1 {
			select {
			case <-p.g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return p.Pipeliner.Exec(ctx)
}

// A flush that is due while users' state loads (with one actor per user, new users arrive with nearly
// every batch, so some load is nearly always in flight) starts as soon as those loads end: the next batch
// is routed but not answered until the flush has taken it, so the reader stops adding loads. Before, the
// reader went on and every batch brought new loads, and the flush waited until FlushMaxRecords records
// were unflushed: at a million users flushes covered 200,000 records and took 15 to 35 s.
func TestDueFlushIsNotStarvedByLoads(t *testing.T) {
	s := newSinks(t)
	cfg := s.config("in")
	g := newGatedRedis(cfg.Redis)
	cfg.Redis = g
	var log flushLog
	cfg.AfterFlush = log.add
	f := newFactory(t, cfg)
	ctx := context.Background()
	p := f.NewProcessor(testShard).(*processor)
	if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	const per = 10
	batchOf := func(k int) consumer.Batch { // per records of per new users
		recs := make([]consumer.Record, per)
		for i := range recs {
			u := fmt.Sprintf("b%d-u%d", k, i)
			recs[i] = rec(testShard, k*per+i+1, u, labJSON(u, "search", 1_626_091_318_000+int64(k*per+i), "desktop"))
		}
		return consumer.Batch{Records: recs, Checkpointer: &fakeCheckpointer{}}
	}
	if err := p.ProcessRecords(ctx, batchOf(0)); err != nil { // its load waits at the gate
		t.Fatal(err)
	}
	if n := <-g.loads; n != 1 {
		t.Fatalf("load %d arrived first", n)
	}
	f.sys.Root.Send(p.pid, &flushTick{}) // a flush is due; it waits for batch 0's users
	errs := make(chan error, 1)
	go func() { // the reader goes on
		for k := 1; k <= 5; k++ {
			if err := p.ProcessRecords(ctx, batchOf(k)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	if n := <-g.loads; n != 2 { // batch 1 was routed
		t.Fatalf("load %d arrived second", n)
	}
	close(g.release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := p.ShutdownRequested(ctx, &fakeCheckpointer{}); err != nil {
		t.Fatal(err)
	}
	flushes := log.all()
	if len(flushes) == 0 {
		t.Fatal("no flush")
	}
	// The due flush covers batch 0 and the one batch routed while it waited, not what the reader routed
	// after that.
	if got := flushes[0].Records; got != 2*per {
		t.Errorf("the due flush covered %d records, want %d (batches 0 and 1); flushes: %+v", got, 2*per, flushes)
	}
}
