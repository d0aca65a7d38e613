//go:build cgo

package report

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/lakecache"
)

// S3API is the part of the S3 client a Runner uses: listing and fetching for the cache, PutObject for
// the UNLOAD. *s3.Client has it.
type S3API interface {
	lakecache.S3API
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// RedisClient is the part of go-redis last_search uses; *redis.Client has it.
type RedisClient interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// Querier is the part of pgx last_search uses; *pgxpool.Pool and *pgx.Conn have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Config configures a Runner. Zero values take the documented defaults.
type Config struct {
	// Bucket and Prefix locate the lake (its events/ and aggregates/ live under Prefix, "" or ending in
	// "/"). Bucket is required.
	Bucket, Prefix string
	// CacheDir holds the local copy of the lake. Required.
	CacheDir string
	// From and To bound the hour partitions read, [From, To), whole UTC hours (From is rounded down, an
	// hour that starts before To is read); zero leaves a side open.
	From, To time.Time
	// Concurrency is how many objects are fetched at once. Default: 8.
	Concurrency int
	// Progress receives the sync's progress lines; nil: none.
	Progress io.Writer
	// Redis holds the user hashes <Prefix>user:<id> (last_search only). Required by last_search.
	Redis RedisClient
	// KeyPrefix is the Redis key prefix. Default: "cf:".
	KeyPrefix string
	// Postgres holds the customers table (last_search only). Required by last_search.
	Postgres Querier
	// NoUnload skips writing events_by_country back to the lake. Default: false (it is written).
	NoUnload bool
	// Threads bounds DuckDB's threads; 0: DuckDB's default (one per core).
	Threads int
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Validate fills in defaults and returns a *settings.Error naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Bucket == "":
		return settings.Invalid("Bucket", "is required")
	case c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/"):
		return settings.Invalid("Prefix", "must end in /, got %q", c.Prefix)
	case c.CacheDir == "":
		return settings.Invalid("CacheDir", "is required")
	case !c.From.IsZero() && !c.To.IsZero() && !c.From.Truncate(time.Hour).Before(c.To):
		return settings.Invalid("To", "must be after From (From %s, To %s)", c.From.UTC().Format(time.RFC3339), c.To.UTC().Format(time.RFC3339))
	case c.Threads < 0:
		return settings.Invalid("Threads", "must not be negative, got %d", c.Threads)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = session.DefaultPrefix
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Runner runs reports. Create it with New. Runs may happen one after another or at once (each opens its
// own in-memory DuckDB database).
type Runner struct {
	cfg   Config
	cache *lakecache.Cache
	api   S3API
	log   *zap.Logger
}

// New checks cfg. It does no I/O.
func New(api S3API, cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cache, err := lakecache.New(api, lakecache.Config{Dir: cfg.CacheDir, Concurrency: cfg.Concurrency, Progress: cfg.Progress,
		Check: checkParquet, Logger: cfg.Logger})
	if err != nil {
		return nil, settings.Within("Cache", err)
	}
	return &Runner{cfg: cfg, cache: cache, api: api, log: cfg.Logger.Named("report")}, nil
}

// checkParquet opens a Parquet file's footer and checks that it has the events table's columns.
func checkParquet(_, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("not a readable Parquet file: %w", err)
	}
	for _, c := range lake.Events.Columns {
		if _, ok := pf.Schema().Lookup(c.Name); !ok && c.Required {
			return fmt.Errorf("no column %s", c.Name)
		}
	}
	return nil
}

// Result is what a run produced besides its rows.
type Result struct {
	Report Report
	Table  *Table
	// Sync is what the lake sync found and did.
	Sync lakecache.Result
	// Skipped are the events objects the run left out because they are not readable Parquet.
	Skipped []lakecache.Object
	// Unloaded are the s3:// URLs the report was written back to (events_by_country).
	Unloaded []string
	// Elapsed is the time of the query alone (views, federated loads and the SQL), not the sync.
	Elapsed time.Duration
}

// Prepare syncs the events partitions of the range and returns the readable local files and the sync's
// result. It fails with ErrEmptyLake when there are none.
func (r *Runner) Prepare(ctx context.Context) ([]string, lakecache.Result, error) {
	return r.prepare(ctx, r.cfg.From, r.cfg.To)
}

// prepare is Prepare over the hours [from, to).
func (r *Runner) prepare(ctx context.Context, from, to time.Time) ([]string, lakecache.Result, error) {
	prefix := r.cfg.Prefix + lake.Events.Prefix
	res, err := r.cache.Sync(ctx, r.cfg.Bucket, prefix, from, to)
	if err != nil {
		return nil, res, fmt.Errorf("%w: %w", ErrSync, err)
	}
	for _, o := range res.Invalid() {
		r.log.Warn("skipping an unreadable events object", zap.String("key", o.Key), zap.Error(o.Invalid))
	}
	files := res.Files()
	if len(files) == 0 {
		what := "no objects"
		if n := len(res.Invalid()); n > 0 {
			what = fmt.Sprintf("%d objects, none readable", n)
		}
		return nil, res, fmt.Errorf("%w: s3://%s/%s has %s in %s: has 'clickfleet archive' written to this lake (--lake-url), and does the range hold data?",
			ErrEmptyLake, r.cfg.Bucket, prefix, what, r.rangeText())
	}
	return files, res, nil
}

func (r *Runner) rangeText() string {
	f := func(t time.Time, open string) string {
		if t.IsZero() {
			return open
		}
		return t.UTC().Format("2006-01-02T15:04Z")
	}
	return "[" + f(r.cfg.From, "the beginning") + ", " + f(r.cfg.To, "now") + ")"
}

// Run runs the report called name: it syncs the lake, defines the views, loads the federated tables the
// report reads, runs its SQL and returns the rows; events_by_country is also unloaded to the lake unless
// NoUnload. Errors: ErrUnknownReport, ErrEmptyLake, *SourceError (Redis, PostgreSQL), *settings.Error
// (a federated report without Redis or Postgres), S3 and DuckDB errors.
func (r *Runner) Run(ctx context.Context, name string) (*Result, error) {
	return r.run(ctx, name, nil)
}

// WriteParquet runs the report like Run and writes its rows to w as Parquet (Snappy), by DuckDB's COPY.
func (r *Runner) WriteParquet(ctx context.Context, name string, w io.Writer) (*Result, error) {
	return r.run(ctx, name, w)
}

func (r *Runner) run(ctx context.Context, name string, parquetOut io.Writer) (*Result, error) {
	rep, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if rep.Federated && r.cfg.Redis == nil {
		return nil, settings.Invalid("Redis", "is required by %s (it reads the Redis user hashes)", name)
	}
	if rep.Federated && r.cfg.Postgres == nil {
		return nil, settings.Invalid("Postgres", "is required by %s (it reads the PostgreSQL customers table)", name)
	}
	from, to := r.cfg.From, r.cfg.To
	if rep.Sessions {
		from, to = r.sessionsReadRange()
	}
	files, sres, err := r.prepare(ctx, from, to)
	if err != nil {
		return nil, err
	}
	res := &Result{Report: rep, Sync: sres, Skipped: sres.Invalid()}
	objects := make(map[string]lakecache.Object, len(sres.Objects))
	for _, o := range sres.Objects {
		objects[o.Path] = o
	}
	for {
		err := r.execute(ctx, rep, files, res, parquetOut)
		var se *SourceError
		if err == nil || errors.As(err, &se) || ctx.Err() != nil {
			return res, err
		}
		// A file whose footer is sound can still hold corrupt pages; DuckDB's error does not say which:
		// find the files that cannot be read alone, leave them out (and mark them in the cache), and run
		// again over the others.
		broken := r.broken(ctx, files)
		if len(broken) == 0 {
			return nil, err
		}
		keep := files[:0:0]
		for _, f := range files {
			reason, bad := broken[f]
			if !bad {
				keep = append(keep, f)
				continue
			}
			o := objects[f]
			o.Invalid = reason
			res.Skipped = append(res.Skipped, o)
			r.log.Warn("skipping an unreadable events object", zap.String("key", o.Key), zap.Error(reason))
			if merr := r.cache.MarkInvalid(r.cfg.Bucket, o.Key, reason); merr != nil {
				r.log.Warn("could not record an unreadable object in the cache", zap.String("key", o.Key), zap.Error(merr))
			}
		}
		if files = keep; len(files) == 0 {
			return nil, fmt.Errorf("%w: s3://%s/%s has no readable objects in %s (%d skipped)", ErrEmptyLake, r.cfg.Bucket,
				r.cfg.Prefix+lake.Events.Prefix, r.rangeText(), len(res.Skipped))
		}
	}
}

// execute runs rep over files in a fresh database, filling res.
func (r *Runner) execute(ctx context.Context, rep Report, files []string, res *Result, parquetOut io.Writer) error {
	start := time.Now()
	db, conn, err := r.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	if rep.Sessions {
		if err := r.defineSessions(ctx, conn, files); err != nil {
			return err
		}
	} else if _, err := conn.ExecContext(ctx, lake.DuckDBView(lake.Events, files)); err != nil {
		return fmt.Errorf("report: define the events view: %w", err)
	}
	if rep.Federated {
		if err := r.loadFederated(ctx, conn); err != nil {
			return err
		}
	}
	q := rep.SQL
	if rep.Name == SessionsReport {
		q = sessionsQuery
	}
	if res.Table, err = query(ctx, conn, q); err != nil {
		return fmt.Errorf("report %s: %w", rep.Name, err)
	}
	if parquetOut != nil {
		b, err := copyTo(ctx, conn, q, "parquet")
		if err != nil {
			return fmt.Errorf("report %s: %w", rep.Name, err)
		}
		if _, err := parquetOut.Write(b); err != nil {
			return err
		}
	}
	res.Elapsed = time.Since(start)
	if rep.Unload && !r.cfg.NoUnload {
		if res.Unloaded, err = r.unload(ctx, conn, rep); err != nil {
			return err
		}
	}
	return nil
}

// broken reads each file whole on its own (every column of every row) and returns those DuckDB cannot
// read, with its error.
func (r *Runner) broken(ctx context.Context, files []string) map[string]error {
	db, conn, err := r.open(ctx)
	if err != nil {
		return nil
	}
	defer db.Close()
	defer conn.Close()
	out := map[string]error{}
	for _, f := range files {
		var n sql.NullInt64
		q := "SELECT sum(length(CAST(t AS VARCHAR))) FROM read_parquet('" + strings.ReplaceAll(f, "'", "''") + "', hive_partitioning = false) t"
		if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			out[f] = fmt.Errorf("unreadable Parquet: %w", err)
		}
	}
	return out
}

// open opens an in-memory DuckDB database that never installs or loads extensions, and one connection
// (temporary tables live in a connection).
func (r *Runner) open(ctx context.Context) (*sql.DB, *sql.Conn, error) {
	dsn := "?autoinstall_known_extensions=false&autoload_known_extensions=false"
	if r.cfg.Threads > 0 {
		dsn += fmt.Sprintf("&threads=%d", r.cfg.Threads)
	}
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("report: open DuckDB: %w", err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("report: open DuckDB: %w", err)
	}
	return db, conn, nil
}

// query runs q and returns its rows with values normalised to nil, string, int64, float64, bool and
// time.Time (UTC).
func query(ctx context.Context, conn *sql.Conn, q string) (*Table, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			vals[i] = normalise(v)
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, rows.Err()
}

func normalise(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint64:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case *big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		f, _ := new(big.Float).SetInt(x).Float64()
		return f
	case duckdb.Decimal:
		return x.Float64()
	case time.Time:
		return x.UTC()
	case []byte:
		return string(x)
	}
	return v
}

// copyTo runs q through DuckDB's COPY into a temporary file of format (csv with a header, or parquet with
// Snappy) and returns the file's bytes.
func copyTo(ctx context.Context, conn *sql.Conn, q, format string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "clickfleet-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "out."+format)
	opts := "FORMAT csv, HEADER true"
	if format == "parquet" {
		opts = "FORMAT parquet, COMPRESSION snappy"
	}
	stmt := fmt.Sprintf("COPY (%s) TO '%s' (%s)", strings.TrimRight(strings.TrimSpace(q), ";"), strings.ReplaceAll(path, "'", "''"), opts)
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// UnloadKey returns the key a report's rows are unloaded to, in format csv or parquet: under
// aggregates/<report>/<format>/, named for the range ("all", or from-to as 20261201T10-20261201T13).
func (r *Runner) UnloadKey(report, format string) string {
	name := "all"
	if !r.cfg.From.IsZero() || !r.cfg.To.IsZero() {
		f := func(t time.Time) string {
			if t.IsZero() {
				return "open"
			}
			return t.UTC().Format("20060102T15")
		}
		name = f(r.cfg.From.Truncate(time.Hour)) + "-" + f(r.cfg.To)
	}
	return r.cfg.Prefix + "aggregates/" + report + "/" + format + "/" + name + "." + format
}

func (r *Runner) unload(ctx context.Context, conn *sql.Conn, rep Report) ([]string, error) {
	var out []string
	for _, format := range []string{"csv", "parquet"} {
		b, err := copyTo(ctx, conn, rep.SQL, format)
		if err != nil {
			return out, fmt.Errorf("report %s: unload as %s: %w", rep.Name, format, err)
		}
		key := r.UnloadKey(rep.Name, format)
		ct := "text/csv"
		if format == "parquet" {
			ct = "application/vnd.apache.parquet"
		}
		if _, err := r.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.cfg.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(b), ContentType: aws.String(ct)}); err != nil {
			return out, fmt.Errorf("report %s: unload to s3://%s/%s: %w", rep.Name, r.cfg.Bucket, key, err)
		}
		out = append(out, "s3://"+r.cfg.Bucket+"/"+key)
	}
	return out, nil
}

// withAppender calls fn with an appender on the temporary table of conn.
func withAppender(conn *sql.Conn, table string, fn func(a *duckdb.Appender) error) error {
	return conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), "temp", "main", table)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			a.Close()
			return err
		}
		return a.Close()
	})
}
