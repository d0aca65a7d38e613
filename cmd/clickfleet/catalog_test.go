package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCatalogCommand(t *testing.T) {
	run := func(args ...string) (string, error) {
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"catalog", "--log-level", "error"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("--lake-url", "s3://my-lake/base")
	if err != nil || strings.Count(out, "CREATE EXTERNAL TABLE") != 3 || !strings.Contains(out, "LOCATION 's3://my-lake/base/events/'") {
		t.Fatalf("athena: %v\n%s", err, out)
	}
	out, err = run("--format", "glue", "--tables", "events")
	var ins []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &ins) != nil || len(ins) != 1 || ins[0]["Name"] != "events" {
		t.Fatalf("glue: %v\n%s", err, out)
	}
	out, err = run("--format", "duckdb", "--cache-dir", "/c", "--tables", "events")
	if err != nil || !strings.Contains(out, "read_parquet('/c/clickfleet-lake/events/*/*/*/*/*.parquet'") {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	if !strings.Contains(out, "CREATE OR REPLACE VIEW sessions AS\nWITH arrived AS (") {
		t.Fatalf("duckdb: no view sessions\n%s", out)
	}
	out, err = run("--format", "named-queries", "--database", "analytics")
	var qs []map[string]string
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("named-queries: %v\n%s", err, out)
	}
	byName := map[string]map[string]string{}
	for _, q := range qs {
		byName[q["Name"]] = q
	}
	sessionsSQL, err := os.ReadFile("../../lake/report/sql/sessions.sql")
	if err != nil {
		t.Fatal(err)
	}
	if q := byName["sessions"]; q["QueryString"] != string(sessionsSQL) || q["Database"] != "analytics" || !strings.HasPrefix(q["Description"], "Sessions: ") {
		t.Errorf("named query sessions: %v", q)
	}
	if q := byName["sessions_by_hour"]; !strings.Contains(q["QueryString"], "WITH sessions AS (\n  WITH arrived AS (") {
		t.Errorf("named query sessions_by_hour does not inline the sessions: %v", q)
	}
	if _, ok := byName["last_search"]; ok || len(qs) != 12 {
		t.Errorf("%d named queries (last_search among them: %v), want the 12 that read the lake alone", len(qs), ok)
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--tables", "sessions"}, {"--lake-url", "http://x"}} {
		_, err := run(bad...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want a usage error naming %s", bad, err, bad[0])
		}
	}
}
