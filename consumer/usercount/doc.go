// Package usercount is a consumer.Processor that counts records per user in Redis, exactly once: each
// user's hash remembers, per shard, the position of the last record it counted, and a Lua script counts
// only records beyond it. Replays after a crash, a lease move or an overlap of two owners therefore
// change nothing. It checkpoints only after Redis has acknowledged the counts — with Config.WaitReplicas,
// after that many replicas acknowledged them too, so that a failover to a replica loses no count it
// checkpointed past.
//
// It is the fleet's simplest processor, used to prove the consumer loses and doubles nothing; the actor
// processor (sessions, enrichment, outputs) replaces it in production.
package usercount
