// Package provision creates the resources clickfleet runs on: the Kinesis streams (input, offers, errors),
// the DynamoDB tables (the lease table and `sessions` with its `user_id` index) and the PostgreSQL schema
// (`customers` with its change-notification trigger).
//
// Every step is idempotent — what exists is left as it is — and waits until the resource is usable
// (streams and tables ACTIVE). It talks to whatever endpoints the AWS SDK is configured for, so the same
// calls set up the local stack, LocalStack and AWS. It never deletes or reshapes an existing resource; a
// stream that exists with another shard count is reported, not resharded.
package provision
