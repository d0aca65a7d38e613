// Package lakecache keeps a local copy of the lake's objects, for engines that cannot read S3 (DuckDB
// here has no httpfs): Sync lists a table's partitions in a time range (ListObjectsV2) and fetches the
// objects it does not hold yet (GetObject), skipping those whose ETag it has already stored.
//
// The copy mirrors keys under Dir/<bucket>/<key>; what it knows of each object (ETag, size, and whether
// the check found it unreadable) is kept under Dir/.objects/<bucket>/<key>.json. A download goes to a
// temporary file renamed into place, and its record is written after the rename, so an interrupted sync
// never leaves a partial object that a later one trusts: it fetches again what it cannot vouch for.
// Objects that disappeared from a listed partition are removed from the copy.
//
// It reads S3 and writes local files only; it knows nothing of SQL. It is not a general S3 sync tool:
// keys outside year=/month=/day=/hour= partitions are ignored.
package lakecache
