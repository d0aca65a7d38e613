package archive

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// BenchmarkEncode encodes one object set of 10,000 POC records (raw gzip, Parquet, errors), without S3.
func BenchmarkEncode(b *testing.B) {
	a, err := New(nil, Config{Stream: "clickstream", Raw: Location{"b", "raw/"}, Events: Location{"b", "events/"}, Errors: Location{"b", "errors/"}})
	if err != nil {
		b.Fatal(err)
	}
	p := a.NewProcessor(testShard).(*processor)
	recs := pocRecords(10000, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	size := 0
	for _, r := range recs {
		size += len(r.Data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.encode(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(recs)), "µs/record")
}

// BenchmarkEncodeEnriched is BenchmarkEncode with names from Redis and locations from the local stack's
// DB-IP file through a fresh resolver each time (its in-process cache cold, Redis warm after the first).
func BenchmarkEncodeEnriched(b *testing.B) {
	rdb := testenv.Redis(b)
	db := stackGeoDB(b)
	recs := pocRecords(10000, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	for i := range recs {
		ip := fmt.Sprintf("1.%d.%d.%d", 118+i%50, (i/50)%256, i%200+1)
		recs[i].Data = []byte(strings.Replace(string(recs[i].Data), `"user_ip":""`, `"user_ip":"`+ip+`"`, 1))
	}
	prefix := testenv.Name(b, "cf") + ":"
	b.ReportAllocs()
	for b.Loop() {
		res, err := geo.NewResolver(geo.Config{Provider: db, Redis: rdb, Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		a, err := New(nil, Config{Stream: "clickstream", Raw: Location{"b", "raw/"}, Events: Location{"b", "events/"}, Errors: Location{"b", "errors/"},
			Geo: res, Names: rdb, Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		p := a.NewProcessor(testShard).(*processor)
		if _, err := p.encode(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		_ = res.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(recs)), "µs/record")
}
