// Package kpl reads and writes Kinesis Producer Library (KPL) aggregated
// records, the way the Java KCL's AggregatorUtil reads them.
//
// A KPL aggregate is one Kinesis record whose data is the magic bytes
// F3 89 9A C2, a protobuf AggregatedRecord holding many user records
// ("sub-records") with de-duplicated partition-key and explicit-hash-key
// tables, and the 16-byte MD5 of the protobuf bytes (see messages.proto in
// awslabs/amazon-kinesis-client). [Deaggregate] splits such a record into its
// sub-records, numbers them with sub-sequence numbers 0, 1, 2, … and drops the
// whole aggregate when a sub-record's hash key lies outside the shard's hash
// range, which happens when an aggregate written before a split or merge is
// read again from a child shard. [Aggregate] builds aggregates, for tests and
// for load generators.
//
// What it is for: the record-processing path of a KCL-compatible consumer,
// between GetRecords and the processor, and producing KPL-shaped test load.
//
// What it is not: a producer. It does no batching, no size accounting against
// the stream's record-size limit, no retries and no I/O; it does not expose the
// KPL's per-record tags (they are validated and skipped, as the KCL does), and
// it keeps no state, so every function is safe for concurrent use. Checkpointing
// at a sub-sequence number is the consumer's job.
package kpl
