//go:build cgo

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/lakecache"
	"github.com/clickfleet/clickfleet/lake/report"
)

func newReportCommand(g *globals) *cobra.Command {
	var (
		cfg                            report.Config
		lakeURL, from, to, format, out string
		redisURL, pgDSN, pathStyle     string
	)
	cmd := &cobra.Command{
		Use:   "report [NAME]",
		Short: "Run a report over the lake on DuckDB (the seed's Redshift Spectrum, UNLOAD and Athena queries, the dashboard's data)",
		Long: `report runs one of the embedded SQL reports over the lake's events table on DuckDB, locally. It first
copies the events partitions of the time range (--from, --to: whole UTC hours) into --cache-dir, fetching
only objects whose ETag it does not hold yet, and skips (and names) objects that are not readable Parquet.

  events_by_name        events per event name
  events_by_country     events per country and event name; also written to the lake under
                        aggregates/events_by_country/{csv,parquet}/ (the seed's UNLOAD; --no-unload skips)
  last_search           each user's last Search with last access and location from Redis (--redis-url)
                        and name and price per click from PostgreSQL customers (--pg-dsn)
  event_ratio, requests_by_state, requests_by_city, actions_per_customer, top_regions
                        the dashboard's datasets
  sessions              the sessionization lab's sessions (the actors' rules: a new session past a 10 s
                        gap to the user's previously arrived event), the columns of the sessions table
                        and open: those that start in the range's whole hours, read with the hour before
                        and after so a session across an edge is whole; open ones may still grow (their
                        last event is within 10 s of the end of the data on their shard)
  sessions_by_hour, session_length, events_per_session, sessions_by_device
                        the dashboard's session charts, over the same sessions

Without NAME it lists the reports. The same SQL runs on Athena over the tables 'clickfleet catalog' prints.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				for _, n := range report.Names() {
					r, _ := report.Lookup(n)
					fmt.Fprintf(cmd.OutOrStdout(), "%-22s %s\n", n, r.Description)
				}
				return nil
			}
			ctx := cmd.Context()
			if _, err := report.Lookup(args[0]); err != nil {
				return usageError{err}
			}
			f, err := report.ParseFormat(format)
			if err != nil {
				return usagef("--format (CLICKFLEET_FORMAT): %v", err)
			}
			if cfg.From, err = parseTimeFlag("from", from); err != nil {
				return err
			}
			if cfg.To, err = parseTimeFlag("to", to); err != nil {
				return err
			}
			loc, err := archive.ParseURL(lakeURL)
			if err != nil {
				return usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
			}
			cfg.Bucket, cfg.Prefix = loc.Bucket, loc.Prefix
			if cfg.CacheDir == "" {
				if cfg.CacheDir, err = lakecache.DefaultDir(); err != nil {
					return usagef("--cache-dir (CLICKFLEET_CACHE_DIR): no user cache directory (%v): set one", err)
				}
			}
			if term.IsTerminal(int(os.Stderr.Fd())) {
				cfg.Progress = os.Stderr
			}
			cfg.Logger = g.log
			rep, _ := report.Lookup(args[0])
			var redisAddr, pgAddr string
			if rep.Federated {
				if redisURL != "" {
					rdb, err := newRedis(redisURL)
					if err != nil {
						return err
					}
					defer rdb.Close()
					cfg.Redis, redisAddr = rdb, rdb.Options().Addr
				}
				if pgDSN != "" {
					pc, err := pgxpool.ParseConfig(pgDSN)
					if err != nil {
						return usagef("--pg-dsn (CLICKFLEET_PG_DSN): %v", err)
					}
					pool, err := pgxpool.NewWithConfig(ctx, pc)
					if err != nil {
						return usagef("--pg-dsn (CLICKFLEET_PG_DSN): %v", err)
					}
					defer pool.Close()
					cfg.Postgres, pgAddr = pool, fmt.Sprintf("%s:%d", pc.ConnConfig.Host, pc.ConnConfig.Port)
				}
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			s3c, err := newS3(awsCfg, pathStyle)
			if err != nil {
				return err
			}
			runner, err := report.New(s3c, cfg)
			if err != nil {
				return settingUsage(err, reportFlags)
			}
			var w io.Writer = cmd.OutOrStdout()
			var file *os.File
			if out != "-" && out != "" {
				if file, err = os.Create(out); err != nil {
					return usagef("--out (CLICKFLEET_OUT): %v", err)
				}
				defer file.Close()
				w = file
			}
			bw := bufio.NewWriter(w)
			var res *report.Result
			if f == report.FormatParquet {
				res, err = runner.WriteParquet(ctx, args[0], bw)
			} else {
				res, err = runner.Run(ctx, args[0])
			}
			if err != nil {
				return reportError(err, redisAddr, pgAddr)
			}
			if f != report.FormatParquet {
				if err := res.Table.Write(bw, f); err != nil {
					return err
				}
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if file != nil {
				if err := file.Close(); err != nil {
					return err
				}
			}
			errOut := cmd.ErrOrStderr()
			for _, o := range res.Skipped {
				fmt.Fprintf(errOut, "clickfleet report: skipped s3://%s/%s: %v\n", cfg.Bucket, o.Key, o.Invalid)
			}
			if len(res.Skipped) > 0 {
				fmt.Fprintf(errOut, "clickfleet report: %d unreadable events objects left out of %s\n", len(res.Skipped), args[0])
			}
			for _, u := range res.Unloaded {
				fmt.Fprintf(errOut, "clickfleet report: unloaded to %s\n", u)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&lakeURL, "lake-url", "s3://clickfleet-lake/", "the lake: s3://bucket/prefix/ holding events/ (and receiving aggregates/)")
	fl.StringVar(&cfg.CacheDir, "cache-dir", "", "local copy of the lake (empty: clickfleet/lake under the user cache directory)")
	fl.StringVar(&from, "from", "", "first hour to read, UTC (RFC 3339, 2026-12-01T10, 2026-12-01, today, yesterday or -24h; empty: the beginning)")
	fl.StringVar(&to, "to", "", "end of the range, exclusive, UTC (empty: now)")
	fl.StringVar(&format, "format", "table", "output: table, csv, json or parquet")
	fl.StringVar(&out, "out", "-", "output file (-: standard output)")
	fl.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis holding the user hashes <key-prefix>user:<id> (last_search)")
	fl.StringVar(&cfg.KeyPrefix, "key-prefix", session.DefaultPrefix, "prefix of every Redis key")
	fl.StringVar(&pgDSN, "pg-dsn", "", "PostgreSQL connection string of the database holding customers (last_search)")
	fl.IntVar(&cfg.Concurrency, "concurrency", lakecache.DefaultConcurrency, "objects fetched at once while syncing the cache")
	fl.IntVar(&cfg.Threads, "threads", 0, "DuckDB threads (0: one per core)")
	fl.BoolVar(&cfg.NoUnload, "no-unload", false, "do not write events_by_country back to the lake")
	fl.StringVar(&pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	return cmd
}

// reportError adds to a report error the setting to change: the server a federated report could not
// read (and its address), or a setting out of range.
func reportError(err error, redisAddr, pgAddr string) error {
	var se *report.SourceError
	if errors.As(err, &se) {
		flag, addr := reportFlags[se.Field], redisAddr
		if se.Field == "Postgres" {
			addr = pgAddr
		}
		return fmt.Errorf("%w\n  %s at %s is set by --%s (%s): start it, or point the setting at a running server", err, se.Server, addr, flag, envName(flag))
	}
	if errors.Is(err, report.ErrUnknownReport) {
		return usageError{err}
	}
	var bad *settings.Error
	if errors.As(err, &bad) {
		return settingUsage(err, reportFlags)
	}
	return err
}
