// Package provision creates the resources clickfleet runs on: the Kinesis streams (input, offers, errors),
// the DynamoDB tables (each lease table with its owner index and its coordinator-state and worker-metrics
// tables, and `sessions` with its `user_id` index) and the PostgreSQL schema (`customers` with its
// change-notification trigger).
//
// Every step is idempotent — what exists is left as it is — and waits until the resource is usable
// (streams and tables ACTIVE). It talks to whatever endpoints the AWS SDK is configured for, so the same
// calls set up the local stack, LocalStack and AWS. It never deletes or reshapes an existing resource; a
// stream that exists with another shard count is reported, not resharded. The one exception is a lease
// table made before its owner index: it gets the index (lease.Upgrade: online where the server can add
// one, else by an offline copy that keeps every item and refuses while a worker runs).
package provision
