package main

import (
	"bytes"
	"encoding/json"
	"errors"
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
	for _, bad := range [][]string{{"--format", "xml"}, {"--tables", "sessions"}, {"--lake-url", "http://x"}} {
		_, err := run(bad...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want a usage error naming %s", bad, err, bad[0])
		}
	}
}
