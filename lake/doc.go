// Package lake describes the S3 lake's tables once: the enriched event schema (the flattened columns the
// archive writes as Parquet), the Hive partition columns, and the object layout
// (raw/, events/, errors/ under year=/month=/day=/hour= prefixes).
//
// The column list here is the only definition of the events table: the archive's Parquet schema is built
// from it (its typed rows, EventRow, are tested to match it field for field), and catalog emitters
// (Athena DDL, Glue TableInput, DuckDB views) are meant to read the same list, so the writer and the
// catalog cannot drift apart.
//
// It does no I/O and knows nothing of Kinesis or S3 clients; it is not a query engine.
package lake
