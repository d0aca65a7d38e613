// Package pace spaces one reader's GetRecords calls on one Kinesis shard within its share of the shard's
// read budget.
//
// Kinesis allows 5 GetRecords calls per second per shard, shared by every application reading the stream
// (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html). Each application keeps
// its calls on a shard at least its poll interval apart, so the applications' rates add up within the 5:
// consume and archive at 500 ms each make 4 calls/s per shard under continuous traffic, tail at 1 s makes 1.
// After a call that returned nothing a reader waits longer (its idle time). After a throttle
// (ProvisionedThroughputExceededException: others used the budget) it pauses with a jittered backoff that
// starts at the poll interval, doubles up to a cap and starts over after a success, so a shard is never
// left unread for much longer than the cap once the throttling ends.
//
// It is not a rate limiter across shards or processes: each shard reader keeps to its own share.
package pace
