package lake_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
)

var catalog = lake.Catalog{Location: "s3://clickfleet-lake/", Database: "clickfleet"}

// Each table's Athena DDL names every column of the one column list with its type, partitions by
// year/month/day/hour with integer projections (two digits; four for the year), and needs no crawler or
// MSCK REPAIR.
func TestAthenaDDL(t *testing.T) {
	for _, tc := range []struct {
		table  *lake.Table
		serde  string
		column string // one column line, as Athena reads it
	}{
		{lake.Events, lake.ParquetSerDe, "`event_time` timestamp"},
		{lake.Raw, lake.JSONSerDe, "`additional_data` struct<time_on_data:double,percent_viewed:double,product_id:bigint,price:double>"},
		{lake.Errors, lake.JSONSerDe, "`sub_sequence` bigint"},
	} {
		t.Run(tc.table.Name, func(t *testing.T) {
			ddl := catalog.AthenaDDL(tc.table)
			if !strings.HasPrefix(ddl, "CREATE EXTERNAL TABLE IF NOT EXISTS `clickfleet`.`"+tc.table.Name+"` (\n") {
				t.Fatalf("DDL starts %q", ddl[:60])
			}
			cols := regexp.MustCompile("(?m)^  `([a-z_]+)` ([a-z<>:,_]+) COMMENT").FindAllStringSubmatch(ddl, -1)
			if len(cols) != len(tc.table.Columns) {
				t.Fatalf("%d columns in the DDL, %d in the table:\n%s", len(cols), len(tc.table.Columns), ddl)
			}
			for i, c := range tc.table.Columns {
				if cols[i][1] != c.Name {
					t.Errorf("column %d is %s, want %s", i, cols[i][1], c.Name)
				}
			}
			for _, want := range []string{tc.column, "PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)",
				"ROW FORMAT SERDE '" + tc.serde + "'", "LOCATION 's3://clickfleet-lake/" + tc.table.Prefix + "'",
				"'projection.enabled' = 'true'", "'projection.year.type' = 'integer'", "'projection.year.range' = '2020,2040'",
				"'projection.month.range' = '1,12'", "'projection.month.digits' = '2'", "'projection.day.range' = '1,31'",
				"'projection.day.digits' = '2'", "'projection.hour.type' = 'integer'", "'projection.hour.range' = '0,23'", "'projection.hour.digits' = '2'"} {
				if !strings.Contains(ddl, want) {
					t.Errorf("DDL lacks %q:\n%s", want, ddl)
				}
			}
			if strings.Contains(strings.ToUpper(ddl), "MSCK") {
				t.Errorf("DDL mentions MSCK")
			}
		})
	}
}

// The Glue TableInputs carry the same columns, partition keys, formats and projection as the DDL, in the
// Glue API's field names.
func TestGlueTableInput(t *testing.T) {
	b, err := catalog.GlueJSON(lake.Tables...)
	if err != nil {
		t.Fatal(err)
	}
	var ins []map[string]any
	if err := json.Unmarshal(b, &ins); err != nil {
		t.Fatal(err)
	}
	if len(ins) != 3 {
		t.Fatalf("%d tables", len(ins))
	}
	for i, tbl := range lake.Tables {
		in := ins[i]
		if in["Name"] != tbl.Name || in["TableType"] != "EXTERNAL_TABLE" {
			t.Errorf("table %d: %v %v", i, in["Name"], in["TableType"])
		}
		sd := in["StorageDescriptor"].(map[string]any)
		cols := sd["Columns"].([]any)
		if len(cols) != len(tbl.Columns) {
			t.Fatalf("%s: %d columns, want %d", tbl.Name, len(cols), len(tbl.Columns))
		}
		for j, c := range tbl.Columns {
			got := cols[j].(map[string]any)
			if got["Name"] != c.Name {
				t.Errorf("%s column %d: %v, want %s", tbl.Name, j, got["Name"], c.Name)
			}
		}
		params := in["Parameters"].(map[string]any)
		if params["projection.hour.digits"] != "2" || params["projection.enabled"] != "true" {
			t.Errorf("%s: parameters %v", tbl.Name, params)
		}
		if pk := in["PartitionKeys"].([]any); len(pk) != 4 || pk[3].(map[string]any)["Name"] != "hour" {
			t.Errorf("%s: partition keys %v", tbl.Name, pk)
		}
	}
}

func TestDuckDBView(t *testing.T) {
	v := lake.DuckDBView(lake.Events, []string{lake.GlobFor(lake.Events, "/c/lake")})
	for _, want := range []string{"CREATE OR REPLACE VIEW events AS SELECT \"event_time\", ", "\"hour\" FROM read_parquet('/c/lake/events/*/*/*/*/*.parquet'",
		"hive_types = {'year': 'VARCHAR', 'month': 'VARCHAR', 'day': 'VARCHAR', 'hour': 'VARCHAR'}"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if v := lake.DuckDBView(lake.Raw, []string{"/a.ndjson.gz", "/b.ndjson.gz"}); !strings.Contains(v, "read_json(['/a.ndjson.gz', '/b.ndjson.gz'], format = 'newline_delimited'") {
		t.Errorf("raw view: %s", v)
	}
}

func TestPartitionHour(t *testing.T) {
	at, ok := lake.PartitionHour("lake/events/year=2026/month=12/day=01/hour=07/x.parquet")
	if !ok || at.Format("2006-01-02T15") != "2026-12-01T07" {
		t.Fatalf("%v %v", at, ok)
	}
	if _, ok := lake.PartitionHour("events/year=2026/month=12/x.parquet"); ok {
		t.Fatal("a key without hour parsed")
	}
}

// The Parquet files the archive writes have, column for column, the names and types the catalog emits:
// read with parquet-go's generic reader from the footer (not through the writer's schema).
func TestArchivedParquetMatchesCatalog(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	shards := lakegen.Trace{Records: 300, Span: 2 * 3600e9}.Generate()
	if err := lakegen.Archive(context.Background(), lakegen.DirS3{Root: dir}, "lake", shards, archive.Config{}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(lake.GlobFor(lake.Events, filepath.Join(dir, "lake")))
	if err != nil || len(files) < 2 {
		t.Fatalf("archived Parquet files: %v %v", files, err)
	}
	// Athena's name for each Parquet physical/logical type the lake uses.
	athena := func(n parquet.Node) string {
		switch lt := n.Type().LogicalType(); {
		case lt != nil && lt.String() == "STRING" && n.Type().Kind() == parquet.ByteArray:
			return "string"
		case lt != nil && lt.String() == "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)" && n.Type().Kind() == parquet.Int64:
			return "timestamp"
		case lt != nil && lt.String() == "INT(64,true)" && n.Type().Kind() == parquet.Int64:
			return "bigint"
		case lt != nil && lt.String() != "":
			return "unexpected logical type " + lt.String()
		}
		switch n.Type().Kind() {
		case parquet.Int64:
			return "bigint"
		case parquet.Double:
			return "double"
		}
		return "unexpected " + n.Type().String()
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := parquet.OpenFile(strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fields := map[string]parquet.Field{}
		for _, fl := range pf.Schema().Fields() {
			fields[fl.Name()] = fl
		}
		if len(fields) != len(lake.Events.Columns) {
			t.Fatalf("%s: %d columns, the catalog has %d", f, len(fields), len(lake.Events.Columns))
		}
		for _, c := range lake.Events.Columns {
			fl, ok := fields[c.Name]
			if !ok {
				t.Fatalf("%s: no column %s", f, c.Name)
			}
			if got := athena(fl); got != c.Kind.String() {
				t.Errorf("%s: column %s is %s in the file, %s in the catalog", filepath.Base(f), c.Name, got, c.Kind)
			}
			if fl.Optional() == c.Required {
				t.Errorf("%s: column %s optional=%v, catalog required=%v", filepath.Base(f), c.Name, fl.Optional(), c.Required)
			}
		}
		if _, ok := lake.PartitionHour(f); !ok {
			t.Errorf("%s: no hour partition in its path", f)
		}
	}
}
