// Package retry is clickfleet's one way of retrying I/O: a jittered, capped exponential backoff, a loop
// that runs an operation until it succeeds, its context ends or its error is permanent, and the classifier
// that tells the two kinds of error apart for every server the pipeline talks to (Kinesis, DynamoDB, S3
// and the other AWS APIs through smithy-go, Redis, PostgreSQL, the network).
//
// Permanent errors are those that repeat however often the call is made — a missing stream, table or
// bucket, a denied permission, a rejected request, a failing Lua script — so a process facing one stops
// and says so instead of retrying forever while it looks healthy. Everything else (throttling, server
// faults, timeouts, refused or reset connections, errors nobody classified) is transient and retried.
// For AWS the permanent codes are an explicit list; the rest follows the SDK's own retryer (its
// throttling, timeout and 5xx rules), and a code that is in neither — S3's 409 ConditionalRequestConflict,
// a code new to the API — is transient: a retry that might help is tried rather than stopping the
// process. Every retry loop therefore logs (or counts) each retry with its error (Policy.OnRetry), so an
// error that keeps coming back is seen, and a loop that must end bounds itself (Policy.Attempts, its
// context).
//
// It is not a circuit breaker and does not limit retries by time: callers bound an operation with its
// context (and with Policy.Attempts where a caller must give up).
package retry
