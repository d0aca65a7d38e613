// Package lakegen makes lakes for tests and benchmarks: a synthetic trace of POC clickstream records
// spread over shards and hours (with a share of malformed ones), a Locator with fixed answers for the
// trace's addresses, a directory-backed stand-in for S3, and Archive, which runs the trace through the
// real archive processor (package archive) — so a generated lake has exactly the objects, keys and Parquet
// files a running archive writes.
//
// It is for tests and benchmarks only (internal); it is not a load generator for streams (see clickgen).
package lakegen
