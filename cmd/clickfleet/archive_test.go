package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

func runCLI(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := newRootCommand()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// Bad archive settings fail at start naming the flag (exit 2); the buffer interval keeps Firehose's range
// unless --buffer-interval-unchecked says otherwise.
func TestArchiveSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"interval below Firehose's range", []string{"--buffer-interval", "10s"}, "--buffer-interval (CLICKFLEET_BUFFER_INTERVAL)"},
		{"interval above it", []string{"--buffer-interval", "16m"}, "--buffer-interval (CLICKFLEET_BUFFER_INTERVAL)"},
		{"not an s3 URL", []string{"--lake-url", "http://x/"}, "--lake-url (CLICKFLEET_LAKE_URL)"},
		{"bad raw URL", []string{"--raw-url", "s3://"}, "--raw-url (CLICKFLEET_RAW_URL)"},
		{"compression", []string{"--raw-compression", "zstd"}, "RawCompression"},
		{"path style", []string{"--s3-path-style", "maybe"}, "--s3-path-style"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", "us-east-1")
			err := runCLI(t, append([]string{"archive", "--http-listen", "", "--redis-url", "", "--geo-mmdb", ""}, tc.args...)...)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error naming %s", err, tc.want)
			}
		})
	}
}

// A lake location whose bucket does not exist ends the command with an error (exit 1) that names the
// setting it came from.
func TestArchiveMissingBucketNamesTheSetting(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	missing := testenv.Name(t, "b")
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"lake", "--lake-url (CLICKFLEET_LAKE_URL)", []string{"--lake-url", "s3://" + missing + "/"}},
		{"raw", "--raw-url (CLICKFLEET_RAW_URL)", []string{"--lake-url", "s3://" + bucket + "/", "--raw-url", "s3://" + missing + "/raw/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runCLI(t, append([]string{"archive", "--http-listen", "", "--redis-url", "", "--geo-mmdb", "", "--log-level", "error"}, tc.args...)...)
			var u usageError
			if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), missing) {
				t.Fatalf("err = %v, want a runtime error naming %s and the bucket %s", err, tc.want, missing)
			}
		})
	}
}
