// Package fanout reads Kinesis shards with enhanced fan-out: through a stream consumer registered on the
// stream (RegisterStreamConsumer), each shard is pushed to the reader over a SubscribeToShard
// subscription, at up to 2 MiB/s per shard for that consumer alone, instead of being polled with
// GetRecords within the 5 calls and 2 MiB/s per shard that every polling application shares.
//
// EnsureConsumer finds or registers a stream consumer and waits until it is ACTIVE. Shard reads one
// shard through successive subscriptions: Kinesis ends each after five minutes, and Shard subscribes
// again from the last event's continuation sequence number, as it does after a broken stream, an idle
// one, or a refused subscription (ResourceInUseException, LimitExceededException: the previous
// subscription is not released yet, or the 1 call per second per consumer and shard is spent), after a
// short backoff. Events are taken one at a time, only once the previous one is handled: a slow handler
// slows the subscription down (HTTP/2 flow control) instead of filling memory.
//
// It is the transport only: what a position means for a lease, what happens at a shard's end, and
// records at or below a checkpoint are the caller's business (package consumer, consumer/streamtail).
package fanout
