//go:build cgo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/report"
)

// runReportCLI runs the root command with args and returns its output and error.
func runReportCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--log-level", "error"))
	err := root.Execute()
	return out.String(), err
}

// Bad report input fails naming the report list, the flag or the server's setting.
func TestReportBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  []string
	}{
		{"unknown report", []string{"report", "events_by_planet"}, true, append([]string{`unknown report "events_by_planet"`}, report.Names()...)},
		{"malformed --from", []string{"report", "events_by_name", "--from", "last week"}, true, []string{"--from (CLICKFLEET_FROM)", `"last week" is not a time`}},
		{"malformed --to", []string{"report", "events_by_name", "--to", "2026-13-01"}, true, []string{"--to (CLICKFLEET_TO)"}},
		{"bad --format", []string{"report", "events_by_name", "--format", "xml"}, true, []string{"--format (CLICKFLEET_FORMAT)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runReportCLI(t, tc.args...)
			var u usageError
			if err == nil || errors.As(err, &u) != tc.usage {
				t.Fatalf("err = %v (usage error: %v), want usage %v", err, errors.As(err, &u), tc.usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("the list of reports", func(t *testing.T) {
		out, err := runReportCLI(t, "report")
		if err != nil || !strings.Contains(out, "last_search") || !strings.Contains(out, "federated") {
			t.Fatalf("report without a name: %v\n%s", err, out)
		}
	})
}

func TestReportErrorNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Redis down", &report.SourceError{Server: "Redis", Field: "Redis", Err: errors.New("connection refused")},
			"Redis at 127.0.0.1:1 is set by --redis-url (CLICKFLEET_REDIS_URL)"},
		{"PostgreSQL down", fmt.Errorf("x: %w", &report.SourceError{Server: "PostgreSQL", Field: "Postgres", Err: errors.New("connection refused")}),
			"PostgreSQL at 127.0.0.1:2 is set by --pg-dsn (CLICKFLEET_PG_DSN)"},
		{"range", settings.Invalid("To", "must be after From (x)"), "--to (CLICKFLEET_TO): must be after --from (x)"},
		{"no PostgreSQL", settings.Invalid("Postgres", "is required by last_search"), "--pg-dsn (CLICKFLEET_PG_DSN): is required by last_search"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reportError(tc.err, "127.0.0.1:1", "127.0.0.1:2").Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("%q lacks %q", got, tc.want)
			}
		})
	}
}

func TestParseTimeFlag(t *testing.T) {
	for in, want := range map[string]string{
		"2026-12-01T10:30:00Z": "2026-12-01T10:30:00Z", "2026-12-01T10:30:00+02:00": "2026-12-01T08:30:00Z",
		"2026-12-01T10": "2026-12-01T10:00:00Z", "2026-12-01": "2026-12-01T00:00:00Z", "2026-12-01T10:30": "2026-12-01T10:30:00Z",
	} {
		got, err := parseTimeFlag("from", in)
		if err != nil || got.Format("2006-01-02T15:04:05Z07:00") != want {
			t.Errorf("%s → %v %v, want %s", in, got, err, want)
		}
	}
}

// The relative forms, from a fixed now: today and yesterday are UTC midnights (whatever now's zone),
// -<duration> is that long before now; a bad duration names the flag.
func TestParseTimeFlagRelative(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 30, 0, 0, time.FixedZone("CET", 3600)) // 00:30 UTC
	for in, want := range map[string]string{
		"today": "2026-12-07T00:00:00Z", "yesterday": "2026-12-06T00:00:00Z", "-24h": "2026-12-06T00:30:00Z", "-90m": "2026-12-06T23:00:00Z",
	} {
		got, err := parseTimeFlagAt("from", in, now)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("%s → %v %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"-", "-24", "-0s", "--1h", "tomorrow"} {
		if _, err := parseTimeFlagAt("to", in, now); err == nil || !strings.Contains(err.Error(), "--to (CLICKFLEET_TO)") {
			t.Errorf("%q: %v, want an error naming --to (CLICKFLEET_TO)", in, err)
		}
	}
}

// 'clickfleet report sessions' over a small archived lake, in every format: the sessions written by hand
// (u1 at t, t+5 s and t+20 s: two sessions, the second at the end of the shard's data and so open; u2
// at t+1 s), in start order, with the sessions table's columns and open.
func TestReportSessionsFormats(t *testing.T) {
	s3c := testenv.S3(t)
	bucket := testenv.Bucket(t, s3c)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var recs []consumer.Record
	for i, e := range []struct {
		user string
		off  time.Duration
	}{{"u1", 0}, {"u2", time.Second}, {"u1", 5 * time.Second}, {"u1", 20 * time.Second}} {
		ts := at.Add(e.off)
		recs = append(recs, consumer.Record{ShardID: "shardId-000000000000", SequenceNumber: fmt.Sprintf("4960%052d", i+1), PartitionKey: e.user,
			Data:      []byte(fmt.Sprintf(`{"user_id":%q,"event_timestamp":%d,"event_name":"search","event_type":"click","device_type":"desktop"}`, e.user, ts.UnixMilli())),
			ArrivedAt: ts.Add(100 * time.Millisecond)})
	}
	loc := func(p string) archive.Location { return archive.Location{Bucket: bucket, Prefix: "lake/" + p} }
	if err := lakegen.Archive(context.Background(), s3c, bucket, map[string][]consumer.Record{"shardId-000000000000": recs},
		archive.Config{Raw: loc("raw/"), Events: loc("events/"), Errors: loc("errors/")}); err != nil {
		t.Fatal(err)
	}
	ms := at.UnixMilli()
	want := [][]string{
		{"u1_desktop_20261201T100000.000Z", "u1", "desktop", "10:00:00", fmt.Sprint(ms), fmt.Sprint(ms + 5000), "2", "false"},
		{"u2_desktop_20261201T100001.000Z", "u2", "desktop", "10:00:01", fmt.Sprint(ms + 1000), fmt.Sprint(ms + 1000), "1", "false"},
		{"u1_desktop_20261201T100020.000Z", "u1", "desktop", "10:00:20", fmt.Sprint(ms + 20000), fmt.Sprint(ms + 20000), "1", "true"},
	}
	cols := "session_id,user_id,device_type,session_time,start_ms,last_event_ms,event_count,open"
	cache := t.TempDir()
	cli := func(format string, extra ...string) string {
		out, err := runReportCLI(t, append([]string{"report", "sessions", "--lake-url", "s3://" + bucket + "/lake/", "--cache-dir", cache,
			"--from", "2026-12-01T10", "--to", "2026-12-01T11", "--format", format}, extra...)...)
		if err != nil {
			t.Fatalf("--format %s: %v\n%s", format, err, out)
		}
		return out
	}

	var csvWant strings.Builder
	csvWant.WriteString(cols + "\n")
	for _, r := range want {
		csvWant.WriteString(strings.Join(r, ",") + "\n")
	}
	if got := cli("csv"); got != csvWant.String() {
		t.Errorf("csv:\n%s\nwant:\n%s", got, csvWant.String())
	}

	var rows []map[string]any
	out := cli("json")
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if dec.Decode(&rows) != nil || len(rows) != len(want) {
		t.Fatalf("json:\n%s", out)
	}
	for i, r := range want {
		got := []string{rows[i]["session_id"].(string), rows[i]["user_id"].(string), rows[i]["device_type"].(string), rows[i]["session_time"].(string),
			fmt.Sprint(rows[i]["start_ms"]), fmt.Sprint(rows[i]["last_event_ms"]), fmt.Sprint(rows[i]["event_count"]), fmt.Sprint(rows[i]["open"])}
		if strings.Join(got, ",") != strings.Join(r, ",") {
			t.Errorf("json row %d: %v, want %v", i, got, r)
		}
	}

	table := strings.Split(strings.TrimSpace(cli("table")), "\n")
	if len(table) != 4 || strings.Join(strings.Fields(table[0]), ",") != cols || strings.Join(strings.Fields(table[3]), ",") != strings.Join(want[2], ",") {
		t.Errorf("table:\n%s", strings.Join(table, "\n"))
	}

	pq := filepath.Join(t.TempDir(), "sessions.parquet")
	cli("parquet", "--out", pq)
	f, err := os.Open(pq)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range pf.Schema().Fields() {
		names = append(names, c.Name())
	}
	if pf.NumRows() != int64(len(want)) || len(names) != 8 {
		t.Errorf("parquet: %d rows, columns %v", pf.NumRows(), names)
	}
}
