// Package consumer is the fleet's worker: it takes shard leases through package lease, reads each held
// shard with GetRecords or, in the EFO read mode, with enhanced fan-out (SubscribeToShard through a stream
// consumer of the application's own; package fanout), de-aggregates KPL records, follows resharding, and
// drives one Processor per held shard through its lifecycle; the read mode changes none of it.
//
// Lifecycle of a Processor (one per holding period of one shard):
//
//	Initialize → ProcessRecords* → exactly one of LeaseLost | ShardEnded | ShutdownRequested
//
// The worker never checkpoints on a processor's behalf: the processor checkpoints through the
// Checkpointer it is given, when its effects up to that record are durable. Records at or below the
// lease's checkpoint (sequence and sub-sequence) are never delivered again to a new holder, so a checkpoint
// inside a KPL aggregate resumes after the right sub-record. Children of a closed shard are processed only
// once every parent is checkpointed at SHARD_END.
//
// Reads keep within the shard's share of Kinesis' read budget (5 GetRecords calls per second per shard for
// every application together): a shard's calls are at least Config.MinCallInterval apart (500ms: consume
// and archive make 4 calls/s per shard at their defaults), and a throttled call comes back from the SDK at
// once and pauses the shard for a jittered backoff capped at Config.ThrottleBackoff (package
// internal/pace).
//
// Shard discovery uses ListShards and the ParentShardId/AdjacentParentShardId lineage only (not the
// ChildShards of GetRecords or of a subscription's last event, nor ShardFilter, nor MillisBehindLatest), so
// it behaves the same on Kinesis, kinesis-mock and kinesalite. It does not interpret record contents: that is the processor's business.
package consumer
