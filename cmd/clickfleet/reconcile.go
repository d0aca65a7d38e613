//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/lakecache"
	"github.com/clickfleet/clickfleet/lake/reconcile"
	"github.com/clickfleet/clickfleet/lake/report"
	"github.com/clickfleet/clickfleet/messages"
)

// reconcileSettings are reconcile's flags.
type reconcileSettings struct {
	cfg                         report.Config
	lakeURL, from, to, format   string
	table, resultKey, pathStyle string
	segments                    int
	loc                         archive.Location
}

// errDiffer: the comparison found differences (exit 1). Every other failure of reconcile is a usage
// error (exit 2): the two sides could not be compared.
var errDiffer = errors.New("reconcile: the lake and the sessions table differ")

func newReconcileCommand(g *globals) *cobra.Command {
	var s reconcileSettings
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare the sessions the lake implies with the sessions table's rows (exit 0 equal, 1 different, 2 not compared)",
		Long: `reconcile runs the lab's sessionization over the lake's events on DuckDB (the report 'sessions', over the
range's whole hours and the hour beside each edge) and compares every session with the row of the same id
in the DynamoDB sessions table (--sessions-table): user_id, device_type, start_ms, last_event_ms and
event_count. A session is in the range when it starts in it ([--from rounded down to its hour, --to
rounded up), UTC; an open side takes everything); the table's rows are selected by the same rule on
start_ms, with one filtered, consistent Scan in --segments parallel segments.

It prints a summary and every difference: sessions missing from the table, rows extra in the table, and
fields that differ (the session id, the field, the lake's value and the table's). Sessions the lake sees
still open at the range's end (their last event within the gap of the end of their shard's data) are
listed apart with their row, never as differences. The result, as --format json prints it, is also
stored in the lake at --reconcile-key under the lake's prefix, where the dashboard shows it.

Exit status: 0 equal, 1 different, 2 not compared (a bad flag or range, an unreadable lake or table).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.check(g); err != nil {
				return err
			}
			res, err := s.run(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return usageError{err}
			}
			if err := writeReconcile(cmd.OutOrStdout(), s.format, res); err != nil {
				return usageError{err}
			}
			if !res.Equal {
				sm := res.Summary
				return fmt.Errorf("%w: %d missing from the table, %d extra in the table, %d differing", errDiffer, sm.Missing, sm.Extra, sm.Differing)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.table, "sessions-table", messages.SessionsTable, "the DynamoDB sessions table to compare with")
	f.StringVar(&s.lakeURL, "lake-url", "s3://clickfleet-lake/", "the lake: s3://bucket/prefix/ holding events/ (and receiving the result)")
	f.StringVar(&s.cfg.CacheDir, "cache-dir", "", "local copy of the lake (empty: clickfleet/lake under the user cache directory)")
	f.StringVar(&s.from, "from", "", "first hour of session starts, UTC (RFC 3339, 2026-12-01T10, 2026-12-01, today, yesterday or -24h; empty: the beginning)")
	f.StringVar(&s.to, "to", "", "end of the range of session starts, exclusive, rounded up to an hour, UTC (the forms of --from; empty: the end)")
	f.StringVar(&s.format, "format", "text", "output: text or json")
	f.StringVar(&s.resultKey, "reconcile-key", reconcile.ResultKey, "where the result is stored, under the lake's prefix (empty: not stored)")
	f.IntVar(&s.segments, "segments", reconcile.DefaultSegments, "parallel segments of the sessions table's scan")
	f.IntVar(&s.cfg.Concurrency, "concurrency", lakecache.DefaultConcurrency, "objects fetched at once while syncing the cache")
	f.IntVar(&s.cfg.Threads, "threads", 0, "DuckDB threads (0: one per core)")
	f.StringVar(&s.pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	return cmd
}

// check validates the flags (exit 2 naming the flag) and fills the report's configuration.
func (s *reconcileSettings) check(g *globals) error {
	var err error
	if s.format != "text" && s.format != "json" {
		return usagef("--format (CLICKFLEET_FORMAT) must be text or json, not %q", s.format)
	}
	if s.table == "" {
		return usagef("--sessions-table (CLICKFLEET_SESSIONS_TABLE) is empty")
	}
	if s.segments < 1 || s.segments > 1000 {
		return usagef("--segments (CLICKFLEET_SEGMENTS) must be 1 to 1000, not %d", s.segments)
	}
	if s.cfg.From, err = parseTimeFlag("from", s.from); err != nil {
		return err
	}
	if s.cfg.To, err = parseTimeFlag("to", s.to); err != nil {
		return err
	}
	if s.loc, err = archive.ParseURL(s.lakeURL); err != nil {
		return usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
	}
	s.cfg.Bucket, s.cfg.Prefix = s.loc.Bucket, s.loc.Prefix
	if s.cfg.CacheDir == "" {
		if s.cfg.CacheDir, err = lakecache.DefaultDir(); err != nil {
			return usagef("--cache-dir (CLICKFLEET_CACHE_DIR): no user cache directory (%v): set one", err)
		}
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		s.cfg.Progress = os.Stderr
	}
	s.cfg.NoUnload, s.cfg.Logger = true, g.log
	if err := s.cfg.Validate(); err != nil {
		return settingUsage(err, reportFlags)
	}
	return nil
}

// run reads both sides, compares them and stores the result. Notes on the lake go to errOut too.
func (s *reconcileSettings) run(ctx context.Context, errOut io.Writer) (*reconcile.Result, error) {
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		return nil, err
	}
	s3c, err := newS3(awsCfg, s.pathStyle)
	if err != nil {
		return nil, err
	}
	r, lake, notes, err := s.lakeSessions(ctx, s3c)
	if err != nil {
		return nil, err
	}
	rows, err := reconcile.ReadTable(ctx, dynamodb.NewFromConfig(awsCfg), s.table, r, s.segments)
	if err != nil {
		return nil, fmt.Errorf("%w\n  the sessions table is set by --sessions-table (CLICKFLEET_SESSIONS_TABLE)", err)
	}
	res := reconcile.Compare(r, lake, rows)
	res.At, res.LakeURL, res.Table, res.Notes = time.Now().UTC(), s.loc.String(), s.table, notes
	for _, n := range notes {
		fmt.Fprintf(errOut, "clickfleet reconcile: %s\n", n)
	}
	if s.resultKey != "" {
		key := s.loc.Prefix + strings.TrimPrefix(s.resultKey, "/")
		if err := reconcile.Store(ctx, s3c, s.loc.Bucket, key, res); err != nil {
			return nil, fmt.Errorf("%w\n  the result's place is set by --lake-url (CLICKFLEET_LAKE_URL) and --reconcile-key (CLICKFLEET_RECONCILE_KEY; empty: not stored)", err)
		}
	}
	return res, nil
}

// lakeSessions returns the range of session starts the lake's report covers and the sessions it implies
// there (report.Runner.Sessions). A range without events is a lake without sessions, said in a note.
func (s *reconcileSettings) lakeSessions(ctx context.Context, s3c *s3.Client) (reconcile.Range, reconcile.Lake, []string, error) {
	runner, err := report.New(s3c, s.cfg)
	if err != nil {
		return reconcile.Range{}, reconcile.Lake{}, nil, settingUsage(err, reportFlags)
	}
	from, to := runner.SessionsRange()
	r := reconcile.Range{From: from, To: to}
	ls, err := runner.Sessions(ctx)
	switch {
	case errors.Is(err, report.ErrEmptyLake):
		return r, reconcile.Lake{}, []string{"the lake holds no events for the range: " + err.Error()}, nil
	case errors.Is(err, report.ErrSync):
		return r, reconcile.Lake{}, nil, fmt.Errorf("%w\n  the lake is set by --lake-url (CLICKFLEET_LAKE_URL)", err)
	case err != nil:
		return r, reconcile.Lake{}, nil, err
	}
	var notes []string
	for _, o := range ls.Result.Skipped {
		notes = append(notes, fmt.Sprintf("unreadable events object left out of the lake's sessions: s3://%s/%s: %v", s.cfg.Bucket, o.Key, o.Invalid))
	}
	return r, reconcile.Lake{Sessions: ls.Closed, Open: ls.Open}, notes, nil
}

func writeReconcile(w io.Writer, format string, res *reconcile.Result) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(w)
}
