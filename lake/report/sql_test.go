//go:build cgo

package report_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/report"
)

// localLake archives a small trace into a directory (no S3 server) and returns its events files.
func localLake(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	shards := lakegen.Trace{Records: 500, BadEvery: 40}.Generate()
	if err := lakegen.Archive(context.Background(), lakegen.DirS3{Root: dir}, "lake", shards, archive.Config{}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(lake.GlobFor(lake.Events, filepath.Join(dir, "lake")))
	if err != nil || len(files) == 0 {
		t.Fatalf("no events files: %v", err)
	}
	return files
}

func duck(t *testing.T) *sql.Conn {
	t.Helper()
	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// DuckDB's DESCRIBE of the Parquet files the archive writes gives, column for column, the names and
// types the catalog emits (lake.DuckDBType), then the four partition columns as text.
func TestDescribeMatchesCatalog(t *testing.T) {
	files := localLake(t)
	conn := duck(t)
	ctx := context.Background()
	for _, f := range files {
		rows, err := conn.QueryContext(ctx, "DESCRIBE SELECT * FROM read_parquet('"+f+"', hive_partitioning = false)")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		n := 0
		for rows.Next() {
			var name, typ string
			var null, key, def, extra sql.NullString
			if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
				t.Fatal(err)
			}
			got[name] = typ
			n++
		}
		rows.Close()
		if n != len(lake.Events.Columns) {
			t.Fatalf("%s: %d columns, the catalog has %d", f, n, len(lake.Events.Columns))
		}
		for _, c := range lake.Events.Columns {
			if want := lake.DuckDBType(c); got[c.Name] != want {
				t.Errorf("%s: column %s is %s, the catalog says %s", filepath.Base(f), c.Name, got[c.Name], lake.DuckDBType(c))
			}
		}
	}
	// Through the catalog's view the partitions are two-digit text, as in Athena.
	if _, err := conn.ExecContext(ctx, lake.DuckDBView(lake.Events, files)); err != nil {
		t.Fatal(err)
	}
	var month, hour string
	if err := conn.QueryRowContext(ctx, "SELECT min(month), min(hour) FROM events").Scan(&month, &hour); err != nil {
		t.Fatal(err)
	}
	if month != "12" || hour != "10" {
		t.Fatalf("partitions month=%q hour=%q, want 12 and 10", month, hour)
	}
	// The raw_events and errors views read the archive's NDJSON.gz objects with the catalog's columns.
	root := strings.Split(files[0], "/events/")[0]
	for _, tc := range []struct {
		table *lake.Table
		q     string
		want  int64
	}{
		{lake.Raw, "SELECT count(*) FROM raw_events WHERE additional_data.product_id > 0", 500 - 500/40},
		{lake.Raw, "SELECT count(*) FROM raw_events", 500},
		{lake.Errors, "SELECT count(*) FROM errors WHERE reason <> '' AND sub_sequence = 0 AND hour BETWEEN '10' AND '12'", 500 / 40},
	} {
		if _, err := conn.ExecContext(ctx, lake.DuckDBView(tc.table, []string{lake.GlobFor(tc.table, root)})); err != nil {
			t.Fatalf("%s view: %v", tc.table.Name, err)
		}
		var n int64
		if err := conn.QueryRowContext(ctx, tc.q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if n != tc.want {
			t.Errorf("%s = %d, want %d", tc.q, n, tc.want)
		}
	}
}

// Constructs DuckDB accepts and Athena (Trino) does not, or the reverse.
var notShared = regexp.MustCompile(`(?i)::|\bqualify\b|\bgroup by all\b|\border by all\b|\bexclude\s*\(|\bepoch_ms\b|\bstrftime\b|\bilike\b|\blist_\w+|\bdate_format\b|\bfrom_unixtime\b|\bcount_if\b|"[^"]*'|;\s*\S`)

// Each embedded SQL file runs on DuckDB over an archived lake (federated tables empty) and uses only
// the dialect it shares with Athena.
func TestEachSQLFileRunsOnDuckDB(t *testing.T) {
	files := localLake(t)
	conn := duck(t)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, lake.DuckDBView(lake.Events, files)+`
CREATE TEMP TABLE redis_users (user_id VARCHAR, last_access_ms BIGINT, country VARCHAR, region VARCHAR, city VARCHAR);
CREATE TEMP TABLE customers (customer_id VARCHAR, name VARCHAR, price_per_click DOUBLE);
`+report.SessionsView()); err != nil {
		t.Fatal(err)
	}
	names := report.Names()
	if len(names) != 13 {
		t.Fatalf("reports %v", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rep, err := report.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if m := notShared.FindString(rep.SQL); m != "" {
				t.Errorf("uses %q, which DuckDB and Athena do not share", m)
			}
			if rep.Description == "" {
				t.Error("no description comment")
			}
			rows, err := conn.QueryContext(ctx, rep.SQL)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Error("no rows over a lake of 500 events")
			}
		})
	}
}

// A report over the view sessions runs on Athena as AthenaQuery gives it, with sql/sessions.sql inlined:
// over the events alone (no view sessions) that text gives the rows the view gives.
func TestAthenaQueriesInlineTheSessions(t *testing.T) {
	files := localLake(t)
	ctx := context.Background()
	withView, eventsOnly := duck(t), duck(t)
	if _, err := withView.ExecContext(ctx, lake.DuckDBView(lake.Events, files)+report.SessionsView()); err != nil {
		t.Fatal(err)
	}
	if _, err := eventsOnly.ExecContext(ctx, lake.DuckDBView(lake.Events, files)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range report.Names() {
		rep, _ := report.Lookup(name)
		q, err := report.AthenaQuery(name)
		if rep.Federated {
			if err == nil {
				t.Errorf("%s: an Athena query for a report that reads Redis and PostgreSQL", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := notShared.FindString(q); m != "" {
			t.Errorf("%s uses %q, which DuckDB and Athena do not share", name, m)
		}
		if first, _, _ := strings.Cut(q, "\n"); first != "-- "+rep.Description {
			t.Errorf("%s: first line %q, not its description", name, first)
		}
		if !rep.Sessions || name == report.SessionsReport {
			if q != rep.SQL {
				t.Errorf("%s: the Athena query differs from the file", name)
			}
			continue
		}
		n++
		got, want := rowsOf(t, eventsOnly, q), rowsOf(t, withView, rep.SQL)
		if got != want || want == "" {
			t.Errorf("%s: inlined\n%s\nthrough the view\n%s", name, got, want)
		}
	}
	if n != 4 {
		t.Fatalf("%d reports over the view sessions, want 4", n)
	}
}

// rowsOf runs q and returns its rows as text, one per line.
func rowsOf(t *testing.T, conn *sql.Conn, q string) string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, vals...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestUnknownReportListsTheKnownOnes(t *testing.T) {
	_, err := report.Lookup("events_by_planet")
	if !errors.Is(err, report.ErrUnknownReport) || !strings.Contains(err.Error(), `"events_by_planet"`) ||
		!strings.Contains(err.Error(), strings.Join(report.Names(), ", ")) {
		t.Fatalf("err = %v", err)
	}
	r, err := report.New(nil, report.Config{Bucket: "b", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), "nope"); !errors.Is(err, report.ErrUnknownReport) {
		t.Fatalf("Run: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		cfg   report.Config
		field string
	}{
		{"no bucket", report.Config{CacheDir: "x"}, "Bucket"},
		{"prefix without slash", report.Config{Bucket: "b", Prefix: "lake", CacheDir: "x"}, "Prefix"},
		{"no cache dir", report.Config{Bucket: "b"}, "CacheDir"},
		{"to before from", report.Config{Bucket: "b", CacheDir: "x", From: at, To: at.Add(-time.Hour)}, "To"},
		{"to within from's hour", report.Config{Bucket: "b", CacheDir: "x", From: at.Add(30 * time.Minute), To: at}, "To"},
		{"bad concurrency", report.Config{Bucket: "b", CacheDir: "x", Concurrency: -2}, "Cache.Concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := report.New(nil, tc.cfg)
			var se *settings.Error
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("err = %v, want a *settings.Error for %s", err, tc.field)
			}
		})
	}
	// A federated report without Redis or PostgreSQL names the missing one before any I/O.
	r, err := report.New(nil, report.Config{Bucket: "b", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), "last_search")
	var se *settings.Error
	if !errors.As(err, &se) || se.Field != "Redis" {
		t.Fatalf("last_search without Redis: %v", err)
	}
}
