//go:build cgo

package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/internal/settings"
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
		{"malformed --from", []string{"report", "events_by_name", "--from", "yesterday"}, true, []string{"--from (CLICKFLEET_FROM)", `"yesterday" is not a time`}},
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
