// Package replicawait makes Redis writes durable on replicas before a processor checkpoints past them:
// Wait returns only when a given number of replicas acknowledged every write the primary applied before
// it, from any connection.
//
// Redis replicates asynchronously (ElastiCache among others): a primary that fails right after a write
// can lose it, and a checkpoint taken after the write would then point past state that no longer
// exists. WAIT closes that window, but it is per connection: it waits for the replication offset of the
// calling client's own last write. Wait therefore writes one small key and calls WAIT on the same
// connection (one go-redis transaction object holds one connection); see Wait for why that one write
// covers the writes of every other connection that completed before it.
//
// It is not a consensus protocol: as Redis documents for WAIT, a failover may still promote a replica
// that did not acknowledge (with fewer acknowledging replicas than replicas in all), and a primary and
// its acknowledging replicas may fail together. It does not retry; callers decide what to write again.
package replicawait
