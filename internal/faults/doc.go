// Package faults injects faults between clickfleet's processes and the servers they talk to, for chaos
// tests and benchmarks on the local stack.
//
// Three layers, used together or alone:
//   - Proxies runs Toxiproxy (github.com/Shopify/toxiproxy/v2) in process: one TCP proxy per server
//     (Kinesis, DynamoDB, Redis, S3, PostgreSQL), each of which can add latency, cap bandwidth, stall
//     connections (timeout) or reset them, be switched off and on, and be pointed at another server
//     (SetUpstream: a failover moving an endpoint).
//   - AWSLayer is an HTTP reverse proxy in front of an AWS emulator that answers a configurable fraction
//     of calls with the error AWS itself sends when it throttles or fails
//     (ProvisionedThroughputExceededException, LimitExceededException, ThrottlingException, 500
//     InternalFailure, 503 ServiceUnavailable, S3's 503 SlowDown), in the service's own wire shape, so
//     the SDK's retryer and clickfleet's backoff see what they would see on AWS. It can also answer the
//     next N matching calls with any status and error code (AWSLayer.Reply: S3's 409
//     ConditionalRequestConflict, say), before or after the call reached the server. It counts calls per
//     operation and second, faulted or not, so a test can tell a backoff from a tight retry loop. With
//     Fault.Entries it fails single entries of Kinesis PutRecords calls instead (a partial failure: the
//     call succeeds, some entries carry an ErrorCode, the others are stored), for the code that must
//     retry just those.
//   - Limits, in front of an AWSLayer to a Kinesis emulator, enforces Kinesis' documented limits summed
//     over every caller — per shard 5 GetRecords calls/s and 2 MiB/s read, 1,000 records/s and 1 MiB/s
//     written, 5 GetShardIterator calls/s; the control-plane operations' rates — and answers a call over
//     one as AWS does (ProvisionedThroughputExceededException, LimitExceededException), counting calls and
//     refusals per operation and shard. The local stack runs it as a process (cmd/kinesis-limits,
//     deploy/local/stack up --aws-limits) so that tests and benchmarks read within AWS's limits.
//
// The emulators never throttle, stall or reset a connection, nor enforce AWS's limits; these layers make
// the code paths that handle that testable. This package is for tests and benchmarks, not for production processes.
package faults
