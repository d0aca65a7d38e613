package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/lakecache"
	"github.com/clickfleet/clickfleet/lake/report"
)

func newCatalogCommand(_ *globals) *cobra.Command {
	var (
		lakeURL, database, format, tables, cacheDir string
		firstYear, lastYear                         int
	)
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Print the lake's table definitions: Athena DDL, Glue TableInput JSON or DuckDB views",
		Long: `catalog prints the definitions of the lake's tables (events: the enriched Parquet; raw_events: the raw
NDJSON; errors: rejected records), all made from the one column list the archive writes with:

  --format athena   CREATE EXTERNAL TABLE statements with partition projection over year/month/day/hour
                    (integer projections, two digits): no crawler and no MSCK REPAIR TABLE needed
  --format glue     Glue TableInput JSON (the CreateTable API, CloudFormation's AWS::Glue::Table)
  --format duckdb   DuckDB views over the local copy 'clickfleet report' keeps in --cache-dir, and with events
                    the view sessions (the lab's sessionization, as 'clickfleet report sessions' computes it)
  --format named-queries
                    the reports as Athena named queries: a JSON array of CreateNamedQuery inputs (Name,
                    Description, Database, QueryString), those of the template's AWS::Athena::NamedQuery.
                    A report over the view sessions has the sessions SQL inlined as its first WITH query;
                    last_search, which reads Redis and PostgreSQL, is left out (its Athena version reads the
                    lake alone: deploy/aws/athena/last_search.sql)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, err := archive.ParseURL(lakeURL)
			if err != nil {
				return usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
			}
			var ts []*lake.Table
			for _, name := range strings.Split(tables, ",") {
				t := tableNamed(strings.TrimSpace(name))
				if t == nil {
					return usagef("--tables (CLICKFLEET_TABLES): unknown table %q (known: events, raw_events, errors)", name)
				}
				ts = append(ts, t)
			}
			if firstYear > lastYear || firstYear < 1970 || lastYear > 9999 {
				return usagef("--first-year, --last-year: %d..%d is not a range of years", firstYear, lastYear)
			}
			c := lake.Catalog{Location: loc.String(), Database: database, FirstYear: firstYear, LastYear: lastYear}
			out := cmd.OutOrStdout()
			switch format {
			case "athena":
				for i, t := range ts {
					if i > 0 {
						fmt.Fprintln(out)
					}
					fmt.Fprint(out, c.AthenaDDL(t))
				}
			case "glue":
				b, err := c.GlueJSON(ts...)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			case "duckdb":
				if cacheDir == "" {
					if cacheDir, err = lakecache.DefaultDir(); err != nil {
						return usagef("--cache-dir (CLICKFLEET_CACHE_DIR): %v", err)
					}
				}
				root := filepath.Join(cacheDir, loc.Bucket, filepath.FromSlash(loc.Prefix))
				for _, t := range ts {
					fmt.Fprint(out, lake.DuckDBView(t, []string{lake.GlobFor(t, root)}))
					if t == lake.Events {
						fmt.Fprint(out, report.SessionsView())
					}
				}
			case "named-queries":
				b, err := namedQueries(database)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			default:
				return usagef("--format (CLICKFLEET_FORMAT): %q is not athena, glue, duckdb or named-queries", format)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&lakeURL, "lake-url", "s3://clickfleet-lake/", "the lake: s3://bucket/prefix/ holding raw/, events/ and errors/")
	f.StringVar(&database, "database", "clickfleet", "Athena/Glue database of the tables (empty: unqualified names)")
	f.StringVar(&format, "format", "athena", "athena, glue, duckdb or named-queries")
	f.StringVar(&tables, "tables", "events,raw_events,errors", "comma-separated tables to print")
	f.StringVar(&cacheDir, "cache-dir", "", "the local lake copy of --format duckdb (empty: the user cache directory's clickfleet/lake)")
	f.IntVar(&firstYear, "first-year", lake.DefaultFirstYear, "first year of the year partition's projection")
	f.IntVar(&lastYear, "last-year", lake.DefaultLastYear, "last year of the year partition's projection")
	return cmd
}

// namedQuery is the Athena API's CreateNamedQuery input.
type namedQuery struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
	Database    string `json:"Database,omitempty"`
	QueryString string `json:"QueryString"`
}

// namedQueries returns every report that runs on Athena over the catalogued tables as a named query in
// database, as an indented JSON array.
func namedQueries(database string) ([]byte, error) {
	var qs []namedQuery
	for _, name := range report.Names() {
		rep, err := report.Lookup(name)
		if err != nil || rep.Federated {
			continue
		}
		q, err := report.AthenaQuery(name)
		if err != nil {
			return nil, err
		}
		qs = append(qs, namedQuery{Name: name, Description: rep.Description, Database: database, QueryString: q})
	}
	return json.MarshalIndent(qs, "", "  ")
}

// tableNamed returns the lake table called name, or nil.
func tableNamed(name string) *lake.Table {
	for _, t := range lake.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}
