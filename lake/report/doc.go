// Package report runs the lake's reports — the seed's Redshift Spectrum aggregates, its UNLOAD, its
// Athena federated query and the dashboard's datasets — on DuckDB over a local copy of the lake.
//
// Each report is one SQL file (sql/*.sql, embedded) written in the subset of SQL that DuckDB and Athena
// (Trino) share, over the tables events (the archive's Parquet, see package lake), redis_users and
// customers; on AWS the same files run on Athena over the Glue tables that 'clickfleet catalog' emits.
// A Runner syncs the partitions a time range needs into a cache directory (package lakecache: DuckDB has
// no S3 access here), checks each Parquet footer (an unreadable object is skipped and reported), defines
// the events view over the readable files, loads Redis user hashes (pipelined HGETALL) and PostgreSQL
// customers (pgx) into temporary tables for last_search, runs the file and writes the rows as a table,
// CSV, JSON or Parquet. events_by_country is also written back to the lake (CSV and Parquet under
// aggregates/events_by_country/), as the seed's UNLOAD.
//
// sql/sessions.sql is the sessionization lab's rule over events, with the actors' precise rules
// (docs/contracts.md, "Sessions"): arrival order by shard, sequence number (by length, then text) and
// sub-sequence; a new session past a gap of 10 s to the previously arrived event; start and device from
// the first-arrived event; the same-id rule; a producer's retry (a click id among the user's last 32 new
// ones) left out. Every report that reads FROM sessions (the report sessions itself, sessions_by_hour,
// session_length, events_per_session, sessions_by_device) gets it as the temporary table sessions, with
// the column open: a Runner reads the hour before and after its range, keeps the sessions that start in
// the range's whole hours, and marks open those within one gap of the end of their shard's data.
// Runner.Sessions returns them as messages.Session values, closed and open apart. On Athena there is no
// view: AthenaQuery inlines sessions.sql into the reports that read it.
//
// DuckDB is a C++ library linked through cgo; this package is the only one that imports it, and it
// builds only with cgo. It never installs or loads DuckDB extensions (autoinstall and autoload are off):
// parquet and json are built in. It is not a query server and keeps no database between runs.
package report
