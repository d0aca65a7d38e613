// Package archive is the lake's writer: a consumer.Processor that does what the seed's Firehose delivery
// streams did — per held shard it buffers records and writes, to S3, the raw records as they arrived
// (NDJSON, gzip by default), the enriched and flattened events as Parquet with ZSTD (schema in package
// lake), and the records that fail decoding or validation with their reason.
//
// Objects (per shard, hour = UTC ApproximateArrivalTimestamp of the object's first record):
//
//	<raw>/year=YYYY/month=MM/day=DD/hour=HH/<stream>-<shard>-<first seq>-<first sub>.ndjson.gz
//	<events>/year=…/hour=HH/<same name>.parquet
//	<errors>/year=…/hour=HH/<same name>.ndjson.gz
//
// An object rolls at Config.BufferBytes of raw input, at Config.BufferInterval, or at the hour boundary,
// whichever comes first, and at a shard's end or a clean stop.
//
// Exactly once: a shard has at most one object set in flight; it is stored raw object first, then events,
// then errors, each with If-None-Match: * (so an object, once stored, is never replaced), and only then is
// the shard checkpointed past its last record. A replay after a crash starts at the same record and so
// names the same objects; when the raw object already exists, its metadata (first and last position)
// says which records it holds, and this holder adopts that range — storing the missing siblings of a
// shorter set, or buffering up to the end of a longer one — so two holders never split the same records
// differently. Before each PUT the lease's validity by this worker's own clock is checked
// (consumer.InitInput.ValidFor) and the PUT is bounded by it, so a deposed owner stops writing.
//
// Unreachable S3 is retried with backoff (package retry) while the shard waits: nothing is checkpointed,
// nothing is dropped, and Archiver.Healthy is false. A permanent error (no such bucket, access denied) is
// reported on Archiver.Fatal for the process to stop.
//
// It is not a query engine and it does not create buckets (clickfleet setup does).
package archive
