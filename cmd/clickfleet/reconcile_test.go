//go:build cgo

package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Bad reconcile input exits 2 naming the flag; so does a lake or a table that cannot be read: exit 1
// means "compared, and different", nothing else.
func TestReconcileBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		stack bool
		want  []string
	}{
		{"malformed --from", []string{"--from", "last week"}, false, []string{"--from (CLICKFLEET_FROM)", `"last week" is not a time`}},
		{"malformed --to", []string{"--to", "2026-13-01"}, false, []string{"--to (CLICKFLEET_TO)"}},
		{"--to before --from", []string{"--from", "2026-12-01T10", "--to", "2026-12-01T09"}, false, []string{"--to (CLICKFLEET_TO): must be after --from"}},
		{"bad --format", []string{"--format", "csv"}, false, []string{"--format (CLICKFLEET_FORMAT) must be text or json"}},
		{"bad --lake-url", []string{"--lake-url", "http://x/"}, false, []string{"--lake-url (CLICKFLEET_LAKE_URL)"}},
		{"no table", []string{"--sessions-table", ""}, false, []string{"--sessions-table (CLICKFLEET_SESSIONS_TABLE) is empty"}},
		{"bad --segments", []string{"--segments", "0"}, false, []string{"--segments (CLICKFLEET_SEGMENTS) must be 1 to 1000"}},
		{"a missing bucket", []string{"--lake-url", "s3://" + testenv.Name(t, "no-bucket") + "/"}, true, []string{"--lake-url (CLICKFLEET_LAKE_URL)"}},
		{"a missing table", []string{"--sessions-table", testenv.Name(t, "no-table")}, true, []string{"ResourceNotFoundException", "--sessions-table (CLICKFLEET_SESSIONS_TABLE)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"reconcile", "--cache-dir", filepath.Join(t.TempDir(), "cache")}
			if tc.stack {
				// A lake that exists (and is empty), so that the table is what fails, unless the case
				// names another lake.
				args = append(args, "--lake-url", "s3://"+testenv.Bucket(t, testenv.S3(t))+"/")
				testenv.DynamoDB(t)
			} else {
				t.Setenv("AWS_REGION", "us-east-1")
			}
			_, err := runReportCLI(t, append(args, tc.args...)...)
			var u usageError
			if !errors.As(err, &u) || errors.Is(err, errDiffer) {
				t.Fatalf("err = %v, want a usage error (exit 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
