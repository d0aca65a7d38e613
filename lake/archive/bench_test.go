package archive

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// BenchmarkEncode encodes one object set of 10,000 records (raw gzip, Parquet, errors), without S3:
// synthetic are the tests' POC records (short ids, one bad record in 25), generated the click
// generator's POC events (10,000 users, random 32-hex-digit click ids and 10-character pixel ids, as
// `bench drain` puts them) with sequence numbers built as kinesalite builds them. parquet_% is the Parquet
// object's size as a share of the records' bytes; cpu_µs/record the process's CPU time (user and system, GC
// included) per record, the figure that holds up on a shared machine.
func BenchmarkEncode(b *testing.B) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name string
		recs []consumer.Record
	}{
		{"synthetic", pocRecords(10000, at)},
		{"generated", generatedRecords(b, 10000, at)},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkEncode(b, bc.recs) })
	}
}

func benchmarkEncode(b *testing.B, recs []consumer.Record) {
	a, err := New(nil, Config{Stream: "clickstream", Raw: Location{"b", "raw/"}, Events: Location{"b", "events/"}, Errors: Location{"b", "errors/"}})
	if err != nil {
		b.Fatal(err)
	}
	p := a.NewProcessor(testShard).(*processor)
	size := 0
	for _, r := range recs {
		size += len(r.Data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var set objectSet
	cpu := processCPU()
	for b.Loop() {
		if set, err = p.encode(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N*len(recs)), "cpu_µs/record")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(recs)), "µs/record")
	b.ReportMetric(100*float64(len(set.events))/float64(size), "parquet_%")
}

// generatedRecords returns n of the click generator's POC events (seed 1, 10,000 users, all at one
// instant, as `bench drain` pre-fills a stream) as records of testShard, arriving a millisecond apart,
// with kinesalite's sequence numbers: the shard's counter advancing by 5 a record (kinesalite shares one
// counter between five shards) and the arrival second in the low digits.
func generatedRecords(b testing.TB, n int, at time.Time) []consumer.Record {
	b.Helper()
	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Count, cfg.Users, cfg.Rate, cfg.TimeScale, cfg.Start = int64(n), 10000, 0, 0, at
	var sink collectSink
	if _, err := clickgen.Run(context.Background(), cfg, &sink, nil); err != nil {
		b.Fatal(err)
	}
	recs := make([]consumer.Record, len(sink.events))
	created := at.Add(-time.Hour)
	for i, e := range sink.events {
		arrived := at.Add(time.Duration(i) * time.Millisecond)
		recs[i] = consumer.Record{ShardID: testShard, SequenceNumber: kinesaliteSeq(created, 0, int64(1000+5*i), arrived),
			Data: e.Data, ArrivedAt: arrived, PartitionKey: e.UserID}
	}
	return recs
}

// kinesaliteSeq is the sequence number kinesalite gives the record with counter seqIx of shard shardIx
// (created at created) arriving at arrived: a hexadecimal layout written as a decimal number.
func kinesaliteSeq(created time.Time, shardIx int, seqIx int64, arrived time.Time) string {
	h := fmt.Sprintf("2%09x%x%016x00%09x%08x2", created.Unix(), shardIx%16, seqIx, arrived.Unix(), shardIx)
	v, _ := new(big.Int).SetString(h, 16) // always valid hexadecimal
	return v.String()
}

// collectSink keeps every event the generator puts.
type collectSink struct{ events []clickgen.Event }

func (s *collectSink) Put(_ context.Context, batch []clickgen.Event) ([]clickgen.Event, error) {
	s.events = append(s.events, batch...)
	return nil, nil
}

// freshLocator locates through r, which BenchmarkEncodeEnriched replaces before each encode.
type freshLocator struct{ r *geo.Resolver }

func (l *freshLocator) LookupAll(ctx context.Context, ips []string) map[string]geo.Location {
	return l.r.LookupAll(ctx, ips)
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncodeEnriched is BenchmarkEncode's synthetic records with names from Redis and locations from
// the local stack's DB-IP file through a fresh resolver each time (its in-process cache cold, Redis warm
// after the first), the archiver itself kept as a worker keeps it; the CPU time is this process's alone,
// not Redis's.
func BenchmarkEncodeEnriched(b *testing.B) {
	rdb := testenv.Redis(b)
	db := stackGeoDB(b)
	recs := pocRecords(10000, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	for i := range recs {
		ip := fmt.Sprintf("1.%d.%d.%d", 118+i%50, (i/50)%256, i%200+1)
		recs[i].Data = []byte(strings.Replace(string(recs[i].Data), `"user_ip":""`, `"user_ip":"`+ip+`"`, 1))
	}
	prefix := testenv.Name(b, "cf") + ":"
	loc := &freshLocator{}
	a, err := New(nil, Config{Stream: "clickstream", Raw: Location{"b", "raw/"}, Events: Location{"b", "events/"}, Errors: Location{"b", "errors/"},
		Geo: loc, Names: rdb, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	p := a.NewProcessor(testShard).(*processor)
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if loc.r, err = geo.NewResolver(geo.Config{Provider: db, Redis: rdb, Prefix: prefix}); err != nil {
			b.Fatal(err)
		}
		if _, err := p.encode(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		_ = loc.r.Close()
	}
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N*len(recs)), "cpu_µs/record")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(recs)), "µs/record")
}
