package main

import (
	"strings"
	"time"
)

// timeLayouts are the forms --from and --to accept, all UTC unless they carry an offset.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"}

// parseTimeFlag parses a --from or --to value; empty is the zero time (an open side). The error names
// the flag and its variable.
func parseTimeFlag(flag, v string) (time.Time, error) {
	return parseTimeFlagAt(flag, v, time.Now())
}

// parseTimeFlagAt is parseTimeFlag with the relative forms taken from now: today and yesterday are
// the starts of those UTC days, -<duration> (-24h, -90m) is that long before now. They let a scheduled
// run name the previous day (--from yesterday --to today) without computing a date.
func parseTimeFlagAt(flag, v string, now time.Time) (time.Time, error) {
	midnight := now.UTC().Truncate(24 * time.Hour)
	switch {
	case v == "":
		return time.Time{}, nil
	case v == "today":
		return midnight, nil
	case v == "yesterday":
		return midnight.AddDate(0, 0, -1), nil
	case strings.HasPrefix(v, "-"):
		d, err := time.ParseDuration(v[1:])
		if err != nil || d <= 0 {
			return time.Time{}, usagef("--%s (%s): %q is not -<duration> before now (e.g. -24h, -90m)", flag, envName(flag), v)
		}
		return now.UTC().Add(-d), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usagef("--%s (%s): %q is not a time: use RFC 3339 (2026-12-01T10:00:00Z), 2026-12-01T10:00, 2026-12-01T10, 2026-12-01, today, yesterday or -<duration> (-24h) (UTC)", flag, envName(flag), v)
}

// reportFlags names the flag of each report.Config field.
var reportFlags = map[string]string{
	"Bucket": "lake-url", "Prefix": "lake-url", "CacheDir": "cache-dir", "From": "from", "To": "to",
	"Redis": "redis-url", "Postgres": "pg-dsn", "KeyPrefix": "key-prefix", "Threads": "threads",
	"Cache.Concurrency": "concurrency", "Cache.Dir": "cache-dir",
}
