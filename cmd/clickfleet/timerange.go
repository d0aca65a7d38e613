package main

import "time"

// timeLayouts are the forms --from and --to accept, all UTC unless they carry an offset.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"}

// parseTimeFlag parses a --from or --to value; empty is the zero time (an open side). The error names
// the flag and its variable.
func parseTimeFlag(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usagef("--%s (%s): %q is not a time: use RFC 3339 (2026-12-01T10:00:00Z), 2026-12-01T10:00, 2026-12-01T10 or 2026-12-01 (UTC)", flag, envName(flag), v)
}

// reportFlags names the flag of each report.Config field.
var reportFlags = map[string]string{
	"Bucket": "lake-url", "Prefix": "lake-url", "CacheDir": "cache-dir", "From": "from", "To": "to",
	"Redis": "redis-url", "Postgres": "pg-dsn", "KeyPrefix": "key-prefix", "Threads": "threads",
	"Cache.Concurrency": "concurrency", "Cache.Dir": "cache-dir",
}
