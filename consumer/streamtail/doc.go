// Package streamtail reads every shard of a Kinesis stream and hands each record to a function: the
// `clickfleet tail` debugging view of a stream, and a simple reader for tests.
//
// It follows resharding by listing shards again every few seconds, keeps no checkpoints and takes no
// leases: it is not the consumer (see consumer/), and two tails each see every record. It polls with
// GetRecords, or reads with enhanced fan-out through a stream consumer of its own (Options.FanOut), so
// that it takes nothing from the polling budget the stream's applications share.
package streamtail
