// Package actors is clickfleet's record processor: a consumer.Processor built on protoactor-go
// (github.com/asynkron/protoactor-go) that sessionizes users, tracks their last access, filters
// high-intent events and routes bad records to the error stream, with exactly-once results.
//
// # Actor tree
//
// One [Factory] per worker process owns one *actor.ActorSystem. Each holding period of a shard gets a
// processor whose Initialize spawns a ShardActor; the ShardActor spawns one UserActor child per user id
// seen on the shard (state rehydrated from the Redis hash cf:user:<id>, loaded in pipelined batches off
// the actor), and routes each batch to them: one message per user per batch, that user's records in
// order. Idle users are passivated by one periodic sweep of the ShardActor (not per-actor
// ReceiveTimeout, which races); a passivated user's records that arrive while its actor stops are
// buffered and delivered to its next incarnation. The per-user logic is package session's plain code.
//
// # Flush barrier and writer
//
// Every FlushInterval, or when FlushMaxRecords records are unflushed, the ShardActor asks the users that
// received records since the last barrier for their effects (the barrier counts replies; records of the
// shard up to position S were routed before the request, so the replies cover everything ≤ S). A writer
// goroutine, off the mailboxes, then writes them in this order, each stage batched and retried with
// backoff until it succeeds or the holding period ends:
//
//  1. a guard probe: one pipelined HGET of each user's pos:<shard>; a user whose stored position is at or
//     beyond the flushed one was written by someone at least as far (a deposed owner's late flush, or a
//     duplicate), so its effects are dropped;
//  2. outputs: Kinesis PutRecords of offers and error records (failed entries retried);
//  3. sessions: DynamoDB BatchWriteItem of absolute session rows, 25 per call (UnprocessedItems retried);
//  4. state: one Redis pipeline of a Lua script per user that sets the user's fields and pos:<shard> only
//     if the flushed position is beyond the stored one (compare-on-sequence);
//
// and only then checkpoints S. One flush per shard is in flight at a time; records keep flowing into the
// actors meanwhile. ProcessRecords returns once its batch is routed, but waits while FlushMaxRecords
// records are unflushed (backpressure).
//
// # Exactly-once results
//
// A record's effects are written before any checkpoint at or beyond it, so a crash replays only records
// whose effects may or may not be written. A user's state carries the position of the last record it
// applied on each shard; a rehydrated user skips records at or below it, and since state is written last,
// everything the stored state reflects has its sessions and outputs written already. Session rows are
// absolute values keyed by ids derived from event data, so rewriting them is idempotent; offers may repeat,
// always with the same click_id (a missing one is derived from shard, sequence and sub-sequence). A
// deposed owner's state write cannot move a user backwards (the Lua guard), and its late flush is dropped
// by the probe. After a reshard a child shard has no stored position, so all its records are new.
//
// The messages the actors exchange are defined in this package (messages.go), not in package messages.
package actors
