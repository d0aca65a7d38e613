package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/scale"
)

// Bad scale settings fail at start (exit 2) naming the flag and its variable.
func TestScaleSettingsAreChecked(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"source", []string{"--source", "prometheus"}, `--source (CLICKFLEET_SOURCE) must be cloudwatch or metrics, not "prometheus"`},
		{"metrics without workers", []string{"--source", "metrics"}, "--source metrics needs --workers (CLICKFLEET_WORKERS)"},
		{"a worker that is not a URL", []string{"--source", "metrics", "--workers", "http://a:9090,localhost:9091"}, `--workers (CLICKFLEET_WORKERS): "localhost:9091" is not an http:// or https:// base URL`},
		{"workers with cloudwatch", []string{"--workers", "http://a:9090"}, "--workers (CLICKFLEET_WORKERS) is for --source metrics"},
		{"max below min", []string{"--min-shards", "4", "--max-shards", "2"}, "--max-shards (CLICKFLEET_MAX_SHARDS): must be between --min-shards (4) and 10000, got 2"},
		{"budget above the API's", []string{"--calls-per-day", "20"}, "--calls-per-day (CLICKFLEET_CALLS_PER_DAY): must be 1..10"},
		{"up threshold below the target", []string{"--scale-up-threshold", "0.4"}, "--scale-up-threshold (CLICKFLEET_SCALE_UP_THRESHOLD): must be above --scale-target (0.5) and at most 1, got 0.4"},
		{"down threshold", []string{"--scale-down-threshold", "-0.1"}, "--scale-down-threshold (CLICKFLEET_SCALE_DOWN_THRESHOLD)"},
		{"negative cool-down", []string{"--scale-down-cooldown", "-1s"}, "--scale-down-cooldown (CLICKFLEET_SCALE_DOWN_COOLDOWN): must not be negative"},
		{"interval", []string{"--scale-interval", "1ms"}, "--scale-interval (CLICKFLEET_SCALE_INTERVAL): must be at least 100ms"},
		{"failover time", []string{"--failover-time", "10ms"}, "--failover-time (CLICKFLEET_FAILOVER_TIME): 10ms is below 100ms"},
		{"the consumers' lease table", []string{"--lease-table", "clickfleet-leases"}, "--lease-table (CLICKFLEET_LEASE_TABLE) clickfleet-leases is a consumer's lease table"},
		{"the archive's lease table", []string{"--lease-table", "clickfleet-archive-leases"}, "--lease-table (CLICKFLEET_LEASE_TABLE) clickfleet-archive-leases is a consumer's lease table"},
		{"capacity", []string{"--shard-records-per-second", "-5"}, "--shard-records-per-second (CLICKFLEET_SHARD_RECORDS_PER_SECOND): must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runCLI(t, append([]string{"scale", "--http-listen", ""}, tc.args...)...)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (usage error: %v)\nwant one containing %s", err, errors.As(err, &u), tc.want)
			}
		})
	}
}

// setup creates the table scale uses by default.
func TestSetupCreatesScalesLockTable(t *testing.T) {
	if provision.DefaultScaleLeaseTable != scale.DefaultLockTable {
		t.Fatalf("setup creates %s, scale uses %s", provision.DefaultScaleLeaseTable, scale.DefaultLockTable)
	}
}
