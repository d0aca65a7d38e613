//go:build cgo

package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/report"
)

// event is an input record's event as the test reads it: plain encoding/json, no code of the pipeline.
type event struct {
	Timestamp string `json:"timestamp"`
	UserID    string `json:"user_id"`
	ClickID   string `json:"click_id"`
	EventName string `json:"event_name"`
	UserIP    string `json:"user_ip"`
	Data      struct {
		ProductID int64   `json:"product_id"`
		Price     float64 `json:"price"`
	} `json:"additional_data"`
	arrived time.Time
}

func decodeAll(t *testing.T, shards map[string][]consumer.Record) (evs []event, bad int) {
	t.Helper()
	for _, recs := range shards {
		for _, r := range recs {
			var e event
			if err := json.Unmarshal(r.Data, &e); err != nil {
				bad++
				continue
			}
			e.arrived = r.ArrivedAt
			evs = append(evs, e)
		}
	}
	return evs, bad
}

func (e event) ms(t *testing.T) int64 {
	at, err := time.Parse("2006-01-02 15:04:05.999999", e.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return at.UnixMilli()
}

// opt is a nullable text: nil for "".
func opt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func count[K comparable](evs []event, key func(event) (K, bool)) map[K]int64 {
	m := map[K]int64{}
	for _, e := range evs {
		if k, ok := key(e); ok {
			m[k]++
		}
	}
	return m
}

// sameRows compares rows; floats within a relative 1e-9.
func sameRows(t *testing.T, what string, got *report.Table, wantCols []string, want [][]any) {
	t.Helper()
	if strings.Join(got.Columns, ",") != strings.Join(wantCols, ",") {
		t.Fatalf("%s: columns %v, want %v", what, got.Columns, wantCols)
	}
	if len(got.Rows) != len(want) {
		t.Fatalf("%s: %d rows, want %d\ngot  %v\nwant %v", what, len(got.Rows), len(want), got.Rows, want)
	}
	for i := range want {
		for j := range want[i] {
			g, w := got.Rows[i][j], want[i][j]
			if gf, ok := g.(float64); ok {
				if wf, ok := w.(float64); ok && math.Abs(gf-wf) <= 1e-9*math.Max(1, math.Abs(wf)) {
					continue
				}
			}
			if fmt.Sprintf("%T %v", g, g) != fmt.Sprintf("%T %v", w, w) {
				t.Fatalf("%s: row %d column %s = %T %v, want %T %v\nrow  %v\nwant %v", what, i, wantCols[j], g, g, w, w, got.Rows[i], want[i])
			}
		}
	}
}

type lakeFixture struct {
	s3      *s3.Client
	bucket  string
	prefix  string // Redis key prefix
	rdb     *redis.Client
	pg      *pgxpool.Pool
	pgDSN   string
	shards  map[string][]consumer.Record
	evs     []event
	users   map[string]map[string]string // the Redis user hashes written
	custs   int                          // customers 1..custs in PostgreSQL
	trace   lakegen.Trace
	corrupt string // the key of an events object that is not Parquet at all
	pages   string // the key of a copy of an events object with corrupt pages behind a sound footer
}

// newLake archives a generated trace into a test bucket under lake/ through the archive processor (names
// from Redis, locations from lakegen.Locator), writes user hashes to Redis and demo customers to a
// PostgreSQL schema of the test's own, and puts one corrupted Parquet object among the events.
func newLake(t *testing.T) *lakeFixture {
	t.Helper()
	ctx := context.Background()
	f := &lakeFixture{s3: testenv.S3(t), rdb: testenv.Redis(t), custs: 30,
		trace: lakegen.Trace{Records: 3000, Users: 40, Span: 3 * time.Hour, BadEvery: 50, Seed: 11, Start: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	f.bucket = testenv.Bucket(t, f.s3)
	f.prefix = testenv.Name(t, "cf") + ":"

	// PostgreSQL: the customers table in a schema of this test's own, so other tests' customers do not
	// meet these.
	schema := strings.ReplaceAll(testenv.Name(t, "r"), "-", "_")
	admin := testenv.Postgres(t)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	f.pgDSN = u.String()
	if f.pg, err = pgxpool.New(ctx, f.pgDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pg.Close)
	if err := provision.EnsureCustomersSchema(ctx, f.pg); err != nil {
		t.Fatal(err)
	}
	if err := provision.LoadDemo(ctx, f.pg, f.custs); err != nil {
		t.Fatal(err)
	}

	// Redis: every user 1..40 has a name (the archive enriches with it); 1..35 also a last access and a
	// location (as the actors write them); guests have no hash.
	f.users = map[string]map[string]string{}
	demo := provision.DemoCustomers(f.trace.Users)
	base := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC).UnixMilli()
	for i := 1; i <= f.trace.Users; i++ {
		id := strconv.Itoa(i)
		h := map[string]string{session.FieldName: demo[i-1].Name}
		if i <= 35 {
			loc := lakegen.Addresses[i%8].Location
			h[session.FieldLastAccess] = strconv.FormatInt(base+int64((i*7919)%35)*1000, 10)
			h[session.FieldCountry], h[session.FieldRegion], h[session.FieldCity] = loc.Country, loc.Region, loc.City
		}
		f.users[id] = h
		if err := f.rdb.HSet(ctx, session.UserKey(f.prefix, id), h).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for id := range f.users {
			f.rdb.Del(context.Background(), session.UserKey(f.prefix, id))
		}
	})

	f.shards = f.trace.Generate()
	f.evs, _ = decodeAll(t, f.shards)
	loc := func(p string) archive.Location { return archive.Location{Bucket: f.bucket, Prefix: "lake/" + p} }
	if err := lakegen.Archive(ctx, f.s3, f.bucket, f.shards, archive.Config{Raw: loc("raw/"), Events: loc("events/"), Errors: loc("errors/"),
		BufferBytes: 64 << 10, Names: f.rdb, Prefix: f.prefix}); err != nil {
		t.Fatal(err)
	}
	f.corrupt = "lake/events/year=2026/month=12/day=01/hour=11/zz-corrupt.parquet"
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.corrupt),
		Body: strings.NewReader("PAR1 this is not a Parquet file PAR1")}); err != nil {
		t.Fatal(err)
	}
	// A copy of a real events object with its data pages garbled and its footer intact: the footer check
	// passes, DuckDB fails reading it.
	list, err := f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.bucket), Prefix: aws.String("lake/events/year=2026/month=12/day=01/hour=12/")})
	if err != nil || len(list.Contents) == 0 {
		t.Fatalf("list hour 12: %v", err)
	}
	b := get(t, f, aws.ToString(list.Contents[0].Key))
	for i := 200; i < len(b)/2; i++ {
		b[i] ^= 0x5a
	}
	if err := report.CheckParquet("", writeTemp(t, b)); err != nil {
		t.Fatalf("the garbled copy should pass the footer check: %v", err)
	}
	f.pages = "lake/events/year=2026/month=12/day=01/hour=12/zz-pages.parquet"
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.pages), Body: bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.parquet")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// skippedKeys returns the keys of a result's skipped objects, sorted.
func skippedKeys(res *report.Result) []string {
	var out []string
	for _, o := range res.Skipped {
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

func (f *lakeFixture) runner(t *testing.T, mod func(*report.Config)) *report.Runner {
	t.Helper()
	cfg := report.Config{Bucket: f.bucket, Prefix: "lake/", CacheDir: t.TempDir(), Redis: f.rdb, KeyPrefix: f.prefix, Postgres: f.pg}
	if mod != nil {
		mod(&cfg)
	}
	r, err := report.New(f.s3, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, r *report.Runner, name string) *report.Result {
	t.Helper()
	res, err := r.Run(context.Background(), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// A generated trace archived end to end: every report equals counts computed here from the input
// events with plain maps, last_search against the Redis hashes and the customers table; the corrupted
// object is skipped and named; events_by_country is unloaded to the lake as CSV and Parquet; a time range
// reads only its hours.
func TestReportsEqualIndependentCounts(t *testing.T) {
	f := newLake(t)
	evs := f.evs
	if len(evs) < 2900 {
		t.Fatalf("only %d valid events generated", len(evs))
	}
	r := f.runner(t, nil)
	country := func(e event) string { return lakegen.Lookup(e.UserIP).Country }

	t.Run("events_by_name", func(t *testing.T) {
		res := run(t, r, "events_by_name")
		if got, want := strings.Join(skippedKeys(res), " "), f.corrupt+" "+f.pages; got != want {
			t.Fatalf("skipped %s, want %s", got, want)
		}
		m := count(evs, func(e event) (string, bool) { return e.EventName, true })
		var want [][]any
		for k, v := range m {
			want = append(want, []any{k, v})
		}
		sort.Slice(want, func(i, j int) bool {
			if want[i][1] != want[j][1] {
				return want[i][1].(int64) > want[j][1].(int64)
			}
			return want[i][0].(string) < want[j][0].(string)
		})
		sameRows(t, "events_by_name", res.Table, []string{"event_name", "events"}, want)
	})

	t.Run("events_by_country and its unload", func(t *testing.T) {
		res := run(t, r, "events_by_country")
		type key struct{ country, name string }
		m := count(evs, func(e event) (key, bool) { return key{country(e), e.EventName}, true })
		keys := make([]key, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			if (a.country == "") != (b.country == "") {
				return b.country == "" // nulls last
			}
			if a.country != b.country {
				return a.country < b.country
			}
			return a.name < b.name
		})
		var want [][]any
		csvWant := "country,event_name,events\n"
		for _, k := range keys {
			want = append(want, []any{opt(k.country), k.name, m[k]})
			csvWant += fmt.Sprintf("%s,%s,%d\n", k.country, k.name, m[k])
		}
		sameRows(t, "events_by_country", res.Table, []string{"country", "event_name", "events"}, want)
		wantKeys := []string{"s3://" + f.bucket + "/lake/aggregates/events_by_country/csv/all.csv", "s3://" + f.bucket + "/lake/aggregates/events_by_country/parquet/all.parquet"}
		if strings.Join(res.Unloaded, " ") != strings.Join(wantKeys, " ") {
			t.Fatalf("unloaded to %v, want %v", res.Unloaded, wantKeys)
		}
		csv := get(t, f, "lake/aggregates/events_by_country/csv/all.csv")
		if string(csv) != csvWant {
			t.Fatalf("unloaded CSV:\n%s\nwant:\n%s", csv, csvWant)
		}
		pq := get(t, f, "lake/aggregates/events_by_country/parquet/all.parquet")
		pf, err := parquet.OpenFile(bytes.NewReader(pq), int64(len(pq)))
		if err != nil {
			t.Fatal(err)
		}
		if pf.NumRows() != int64(len(want)) {
			t.Fatalf("unloaded Parquet has %d rows, want %d", pf.NumRows(), len(want))
		}
	})

	t.Run("event_ratio", func(t *testing.T) {
		res := run(t, r, "event_ratio")
		m := count(evs, func(e event) (string, bool) { return e.EventName, true })
		var want [][]any
		for k, v := range m {
			want = append(want, []any{k, v, float64(v) / float64(len(evs))})
		}
		sort.Slice(want, func(i, j int) bool {
			if want[i][1] != want[j][1] {
				return want[i][1].(int64) > want[j][1].(int64)
			}
			return want[i][0].(string) < want[j][0].(string)
		})
		sameRows(t, "event_ratio", res.Table, []string{"event_name", "events", "ratio"}, want)
	})

	type place struct{ country, region, city string }
	byCount := func(m map[place]int64, less func(a, b place) bool) []place {
		ps := make([]place, 0, len(m))
		for p := range m {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool {
			if m[ps[i]] != m[ps[j]] {
				return m[ps[i]] > m[ps[j]]
			}
			return less(ps[i], ps[j])
		})
		return ps
	}
	lessPlace := func(a, b place) bool {
		if a.country != b.country {
			return a.country < b.country
		}
		if a.region != b.region {
			return a.region < b.region
		}
		return a.city < b.city
	}

	t.Run("requests_by_state", func(t *testing.T) {
		res := run(t, r, "requests_by_state")
		m := count(evs, func(e event) (place, bool) {
			l := lakegen.Lookup(e.UserIP)
			return place{region: l.Region}, l.Country == "US" && l.Region != ""
		})
		var want [][]any
		for _, p := range byCount(m, lessPlace) {
			want = append(want, []any{p.region, m[p]})
		}
		if len(want) != 4 {
			t.Fatalf("the trace has %d US states, want 4", len(want))
		}
		sameRows(t, "requests_by_state", res.Table, []string{"state", "requests"}, want)
	})

	t.Run("requests_by_city", func(t *testing.T) {
		res := run(t, r, "requests_by_city")
		m := count(evs, func(e event) (place, bool) {
			l := lakegen.Lookup(e.UserIP)
			return place{l.Country, l.Region, l.City}, l.City != ""
		})
		var want [][]any
		for _, p := range byCount(m, lessPlace) {
			want = append(want, []any{p.country, p.region, p.city, nil, nil, m[p]}) // the archive has no coordinates yet
		}
		sameRows(t, "requests_by_city", res.Table, []string{"country", "region", "city", "latitude", "longitude", "requests"}, want)
	})

	t.Run("top_regions", func(t *testing.T) {
		res := run(t, r, "top_regions")
		m := count(evs, func(e event) (place, bool) {
			l := lakegen.Lookup(e.UserIP)
			return place{country: l.Country, region: l.Region}, l.Region != ""
		})
		var want [][]any
		for _, p := range byCount(m, lessPlace) {
			want = append(want, []any{p.country, p.region, m[p]})
		}
		sameRows(t, "top_regions", res.Table, []string{"country", "region", "requests"}, want[:min(10, len(want))])
	})

	t.Run("actions_per_customer", func(t *testing.T) {
		res := run(t, r, "actions_per_customer")
		type key struct{ user, name string }
		m := count(evs, func(e event) (key, bool) { return key{e.UserID, e.EventName}, true })
		keys := make([]key, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].user != keys[j].user {
				return keys[i].user < keys[j].user
			}
			return keys[i].name < keys[j].name
		})
		var want [][]any
		for _, k := range keys {
			want = append(want, []any{k.user, opt(f.users[k.user][session.FieldName]), k.name, m[k]})
		}
		sameRows(t, "actions_per_customer", res.Table, []string{"user_id", "name", "event_name", "events"}, want)
	})

	t.Run("last_search", func(t *testing.T) {
		res := run(t, r, "last_search")
		last := map[string]event{}
		for _, e := range evs {
			if e.EventName != "Search" {
				continue
			}
			p, ok := last[e.UserID]
			if !ok || e.ms(t) > p.ms(t) || (e.ms(t) == p.ms(t) && e.ClickID > p.ClickID) {
				last[e.UserID] = e
			}
		}
		demo := provision.DemoCustomers(f.custs)
		type row struct {
			access int64
			has    bool
			cells  []any
		}
		var rows []row
		for id, e := range last {
			h := f.users[id]
			rw := row{cells: []any{id, time.UnixMilli(e.ms(t)).UTC(), e.ClickID, e.Data.ProductID, e.Data.Price}}
			if v, ok := h[session.FieldLastAccess]; ok {
				rw.access, _ = strconv.ParseInt(v, 10, 64)
				rw.has = true
				rw.cells = append(rw.cells, rw.access)
			} else {
				rw.cells = append(rw.cells, nil)
			}
			rw.cells = append(rw.cells, opt(h[session.FieldCountry]), opt(h[session.FieldRegion]), opt(h[session.FieldCity]))
			if n, err := strconv.Atoi(id); err == nil && n >= 1 && n <= f.custs {
				price, _ := strconv.ParseFloat(demo[n-1].PricePerClick, 64)
				rw.cells = append(rw.cells, demo[n-1].Name, price)
			} else {
				rw.cells = append(rw.cells, nil, nil)
			}
			rows = append(rows, rw)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.has != b.has {
				return a.has
			}
			if a.access != b.access {
				return a.access > b.access
			}
			return a.cells[0].(string) < b.cells[0].(string)
		})
		var want [][]any
		for _, rw := range rows {
			want = append(want, rw.cells)
		}
		if len(want) < 40 {
			t.Fatalf("only %d users searched", len(want))
		}
		sameRows(t, "last_search", res.Table, []string{"user_id", "search_time", "click_id", "product_id", "price", "last_access_ms",
			"country", "region", "city", "name", "price_per_click"}, want)
	})

	t.Run("a time range reads only its hours", func(t *testing.T) {
		from := f.trace.Start.Add(time.Hour)
		rr := f.runner(t, func(c *report.Config) { c.From, c.To, c.NoUnload = from, from.Add(time.Hour), true })
		res := run(t, rr, "events_by_name")
		m := count(evs, func(e event) (string, bool) { return e.EventName, e.arrived.Truncate(time.Hour).Equal(from) })
		var total, got int64
		for _, v := range m {
			total += v
		}
		for _, row := range res.Table.Rows {
			if row[1].(int64) != m[row[0].(string)] {
				t.Errorf("%s: %d events in the hour, want %d", row[0], row[1], m[row[0].(string)])
			}
			got += row[1].(int64)
		}
		if got != total || total == 0 || total == int64(len(evs)) {
			t.Fatalf("%d events in the hour, want %d (of %d)", got, total, len(evs))
		}
		for _, o := range res.Sync.Objects {
			if !o.Hour.Equal(from) {
				t.Fatalf("synced %s, outside the range", o.Key)
			}
		}
	})

	t.Run("a warm cache fetches nothing", func(t *testing.T) {
		res := run(t, r, "events_by_name")
		if res.Sync.Fetched != 0 || res.Sync.Cached != len(res.Sync.Objects) {
			t.Fatalf("second run fetched %d, cached %d of %d", res.Sync.Fetched, res.Sync.Cached, len(res.Sync.Objects))
		}
		// Both unreadable objects are known to the cache now: skipped before DuckDB sees them.
		if got := len(res.Sync.Invalid()); got != 2 || strings.Join(skippedKeys(res), " ") != f.corrupt+" "+f.pages {
			t.Fatalf("second run: %d invalid in the cache, skipped %v", got, skippedKeys(res))
		}
	})

	t.Run("parquet output", func(t *testing.T) {
		var buf bytes.Buffer
		res, err := r.WriteParquet(context.Background(), "events_by_name", &buf)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if pf.NumRows() != int64(len(res.Table.Rows)) || len(pf.Schema().Fields()) != 2 {
			t.Fatalf("Parquet output: %d rows, %d columns", pf.NumRows(), len(pf.Schema().Fields()))
		}
	})

	t.Run("Redis down", func(t *testing.T) {
		down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		defer down.Close()
		_, err := f.runner(t, func(c *report.Config) { c.Redis = down }).Run(context.Background(), "last_search")
		var se *report.SourceError
		if !errors.As(err, &se) || se.Server != "Redis" || se.Field != "Redis" {
			t.Fatalf("err = %v, want a *SourceError for Redis", err)
		}
	})

	t.Run("PostgreSQL down", func(t *testing.T) {
		pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/clickfleet?connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		_, err = f.runner(t, func(c *report.Config) { c.Postgres = pool }).Run(context.Background(), "last_search")
		var se *report.SourceError
		if !errors.As(err, &se) || se.Server != "PostgreSQL" || se.Field != "Postgres" {
			t.Fatalf("err = %v, want a *SourceError for PostgreSQL", err)
		}
	})
}

func get(t *testing.T, f *lakeFixture, key string) []byte {
	t.Helper()
	out, err := f.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An empty lake is an error saying so, not an empty table.
func TestEmptyLake(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	r, err := report.New(c, report.Config{Bucket: bucket, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), "events_by_name")
	if !errors.Is(err, report.ErrEmptyLake) || !strings.Contains(err.Error(), "s3://"+bucket+"/events/ has no objects") {
		t.Fatalf("err = %v, want ErrEmptyLake naming the location", err)
	}
}
