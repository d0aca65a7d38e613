package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/lease"
)

// BenchmarkEnrich measures what geo and name enrichment cost the actor path: the same POC events (one
// public address per user, from clickgen.DemoNetworks; ~10% offers) through the actor processor with
// enrichment off and on, in the same run. Real Redis (state, names); DynamoDB and the offers stream are
// no-ops so the figure is about the actors; the geo provider is an in-memory MMDB without the Redis geo
// cache, so each user's first event misses the in-process cache and resolves off the actor.
//
//	go test -run '^$' -bench Enrich -benchtime 1x ./actors/
func BenchmarkEnrich(b *testing.B) {
	for _, sz := range []struct {
		name          string
		users, events int
	}{{"users=10k", 10_000, 200_000}, {"users=100k", 100_000, 1_000_000}} {
		batches := enrichBatches(sz.users, sz.events, 1)
		for _, mode := range []string{"geo=off", "geo=on"} {
			b.Run(sz.name+"/"+mode, func(b *testing.B) {
				s := newSinks(b)
				cfg := s.config("in")
				cfg.FlushInterval, cfg.FlushMaxRecords, cfg.PassivateAfter = time.Second, 200_000, time.Hour
				cfg.DynamoDB, cfg.Kinesis = &nullDynamo{}, nullKinesis{}
				var ft flushTimes
				cfg.AfterFlush = ft.add
				db := demoMMDB(b)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if mode == "geo=on" {
						cfg.Geo = newResolver(b, geo.Config{Provider: db, CacheSize: 2 * sz.users})
					}
					cfg.Prefix = fmt.Sprintf("benchenrich%d-%d:", time.Now().UnixNano(), i)
					s.prefix = cfg.Prefix
					f := newFactory(b, cfg)
					ctx := context.Background()
					pipe := s.rdb.Pipeline()
					for u := range sz.users {
						pipe.HSet(ctx, session.UserKey(cfg.Prefix, fmt.Sprint(u)), "name", fmt.Sprintf("Customer %d", u))
					}
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					start := time.Now()
					p := f.NewProcessor(testShard)
					cp := &fakeCheckpointer{}
					if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
						b.Fatal(err)
					}
					for _, batch := range batches {
						if err := p.ProcessRecords(ctx, consumer.Batch{Records: batch, Checkpointer: cp}); err != nil {
							b.Fatal(err)
						}
					}
					if err := p.(*processor).final(ctx, cp); err != nil {
						b.Fatal(err)
					}
					elapsed := time.Since(start)
					b.StopTimer()
					if err := p.ShutdownRequested(ctx, cp); err != nil {
						b.Fatal(err)
					}
					dropKeys(s)
					b.ReportMetric(float64(sz.events)/elapsed.Seconds(), "events/s")
					b.StartTimer()
				}
				ft.report(b)
			})
		}
	}
}

type nullKinesis struct{}

func (nullKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return &kinesis.PutRecordsOutput{Records: make([]ktypes.PutRecordsResultEntry, len(in.Records)), FailedRecordCount: aws.Int32(0)}, nil
}

// enrichBatches returns POC events of users (ids 0..users-1, one demo address each) in batches of 1000.
func enrichBatches(users, events int, seed uint64) [][]consumer.Record {
	r := rand.New(rand.NewPCG(seed, 5))
	names := []string{"Search", "AddToCart", "ViewContent", "Purchase"}
	ips := make([]string, users)
	for u := range ips {
		ips[u] = demoIP(r.IntN(1<<20), 1+r.IntN(250))
	}
	ts := int64(1_626_091_318_000)
	step := max(1, 1500/int64(max(1, users/1000)))
	var out [][]consumer.Record
	for i := 0; i < events; i += 1000 {
		b := make([]consumer.Record, 0, 1000)
		for j := i; j < min(i+1000, events); j++ {
			ts += r.Int64N(2 * step)
			u := r.IntN(users)
			id := fmt.Sprint(u)
			data := strings.Replace(string(pocJSON(id, names[r.IntN(len(names))], ts, float64(r.IntN(101)), fmt.Sprintf("%032x", j))),
				`"user_ip":""`, `"user_ip":"`+ips[u]+`"`, 1)
			b = append(b, rec(testShard, j+1, id, []byte(data)))
		}
		out = append(out, b)
	}
	return out
}
