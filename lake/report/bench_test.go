//go:build cgo

package report_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/lakecache"
	"github.com/clickfleet/clickfleet/lake/report"
)

// BenchmarkEventsByCountry archives CLICKFLEET_BENCH_EVENTS generated events (default 1,000,000) into a
// bucket of the stack's S3 server through the archive processor, syncs the events partitions into an
// empty cache (cold), then runs events_by_country on the warm cache per iteration. Beside it, in the same
// run: the same counts through encoding/json over the raw NDJSON.gz objects (synced the same way), the
// lake without a lake; and the sessions report once. Metrics: warm-s (a whole warm run: listing, ETag
// checks, DuckDB), query-s (DuckDB alone), duckdb-rows/s, cold-sync-s, json-s, json-rows/s and
// sessions-query-s (the sessions report's DuckDB time).
func BenchmarkEventsByCountry(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("CLICKFLEET_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("CLICKFLEET_BENCH_EVENTS: %v", err)
		}
	}
	c := testenv.S3(b)
	bucket := testenv.Bucket(b, c)
	ctx := context.Background()
	trace := lakegen.Trace{Records: n, Users: 10000, Shards: 4, Span: 24 * time.Hour, Seed: 3}
	start := time.Now()
	const chunk = 200_000
	for from := 0; from < n; from += chunk {
		if err := lakegen.Archive(ctx, c, bucket, trace.GenerateRange(from, chunk), archive.Config{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("archived %d events to s3://%s in %s", n, bucket, time.Since(start).Round(time.Millisecond))

	dir := b.TempDir()
	cache, err := lakecache.New(c, lakecache.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	cold, err := cache.Sync(ctx, bucket, lake.Events.Prefix, time.Time{}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	coldSync := time.Since(start)
	var pqBytes int64
	for _, o := range cold.Objects {
		pqBytes += o.Size
	}
	b.Logf("cold sync: %d Parquet objects, %.1f MiB in %s", len(cold.Objects), float64(pqBytes)/(1<<20), coldSync.Round(time.Millisecond))

	r, err := report.New(c, report.Config{Bucket: bucket, CacheDir: dir, NoUnload: true})
	if err != nil {
		b.Fatal(err)
	}
	var res *report.Result
	var query time.Duration
	b.ResetTimer()
	for b.Loop() {
		if res, err = r.Run(ctx, "events_by_country"); err != nil {
			b.Fatal(err)
		}
		query += res.Elapsed
	}
	b.StopTimer()
	warm := b.Elapsed() / time.Duration(b.N)
	query /= time.Duration(b.N)
	var total int64
	for _, row := range res.Table.Rows {
		total += row[2].(int64)
	}
	if total != int64(n) {
		b.Fatalf("events_by_country counted %d events, want %d", total, n)
	}

	// The sessions over the same warm cache, once: every event in one session (the trace's click ids are
	// all distinct), and the query's time beside events_by_country's.
	sres, err := r.Run(ctx, report.SessionsReport)
	if err != nil {
		b.Fatal(err)
	}
	var inSessions int64
	for _, row := range sres.Table.Rows {
		inSessions += row[6].(int64)
	}
	if inSessions != int64(n) {
		b.Fatalf("the sessions hold %d events, want %d", inSessions, n)
	}
	b.Logf("sessions: %d over %d events, query %s (%.1f× events_by_country's)", len(sres.Table.Rows), n,
		sres.Elapsed.Round(time.Millisecond), sres.Elapsed.Seconds()/query.Seconds())
	b.ReportMetric(sres.Elapsed.Seconds(), "sessions-query-s")

	// Without a lake: the raw NDJSON.gz through encoding/json, locations looked up per address.
	rawRes, err := cache.Sync(ctx, bucket, lake.Raw.Prefix, time.Time{}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	var rawBytes int64
	for _, o := range rawRes.Objects {
		rawBytes += o.Size
	}
	start = time.Now()
	counts := map[[2]string]int64{}
	var lines int64
	for _, p := range rawRes.Files() {
		lines += countRaw(b, p, counts)
	}
	jsonTime := time.Since(start)
	if lines != int64(n) {
		b.Fatalf("the raw objects hold %d lines, want %d", lines, n)
	}
	for _, row := range res.Table.Rows {
		country, _ := row[0].(string)
		if counts[[2]string{country, row[1].(string)}] != row[2].(int64) {
			b.Fatalf("encoding/json and DuckDB disagree on %v", row)
		}
	}
	b.Logf("raw: %d objects, %.1f MiB gzip (Parquet is %.2f of it)", len(rawRes.Objects), float64(rawBytes)/(1<<20), float64(pqBytes)/float64(rawBytes))
	b.Logf("warm events_by_country %s (query %s, %.0f rows/s); encoding/json over raw NDJSON %s (%.0f rows/s): DuckDB %.1f× faster",
		warm.Round(time.Millisecond), query.Round(time.Millisecond), float64(n)/query.Seconds(), jsonTime.Round(time.Millisecond),
		float64(n)/jsonTime.Seconds(), jsonTime.Seconds()/query.Seconds())
	b.ReportMetric(warm.Seconds(), "warm-s")
	b.ReportMetric(query.Seconds(), "query-s")
	b.ReportMetric(float64(n)/query.Seconds(), "duckdb-rows/s")
	b.ReportMetric(coldSync.Seconds(), "cold-sync-s")
	b.ReportMetric(jsonTime.Seconds(), "json-s")
	b.ReportMetric(float64(n)/jsonTime.Seconds(), "json-rows/s")
}

// countRaw adds one raw object's events to counts by (country, event_name) and returns its lines.
func countRaw(b *testing.B, path string, counts map[[2]string]int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		b.Fatalf("%s: %v", filepath.Base(path), err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev struct {
		EventName string `json:"event_name"`
		UserIP    string `json:"user_ip"`
	}
	var n int64
	for sc.Scan() {
		n++
		ev.EventName, ev.UserIP = "", ""
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		counts[[2]string{lakegen.Lookup(ev.UserIP).Country, ev.EventName}]++
	}
	if err := sc.Err(); err != nil && !strings.Contains(err.Error(), "EOF") {
		b.Fatal(err)
	}
	return n
}
