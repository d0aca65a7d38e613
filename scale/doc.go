// Package scale is the stream autoscaler behind `clickfleet scale`: it measures a Kinesis stream's
// incoming rate, compares it with what the open shards can take (1 MiB/s and 1,000 records/s each), and
// resizes the stream with UpdateShardCount (UNIFORM_SCALING) toward a target utilisation, within the
// API's limits. It does what the seed's CloudWatch alarm and Lambda did, as one process.
//
// # Parts
//
//   - Policy and Decide: the pure decision — thresholds held for a window, cool-downs, the ×2 / ÷2 bound
//     of one call, minimum and maximum shards, the budget of calls per rolling 24 hours — a function of
//     (policy, stream, samples, history, now), table-tested without I/O.
//   - Source: where the incoming rate comes from. CloudWatch reads the stream's IncomingBytes and
//     IncomingRecords (AWS/Kinesis, one-minute sums); Workers reads the consume workers' /metrics
//     (clickfleet_consumer_read_bytes_total and …_read_records_total), for local stacks without
//     CloudWatch.
//   - Stream: DescribeStreamSummary and UpdateShardCount, with the API's refusals told apart
//     (ErrRefused: beyond ×2 or ÷2, the 24-hour call limit, the account's shard limit; ErrBusy: the stream
//     is not ACTIVE).
//   - Scaler: the loop. Each interval it reads the rate, decides, acts, and records the decision. One
//     Scaler at a time acts on a stream: it holds a lease (package lease: fenced on leaseCounter, expiry by
//     its own monotonic clock) on a row of a lease table of its own, and keeps its call history and the
//     times of its last resizes on that row, so the next holder after a crash or a restart goes on with
//     the same budget and cool-downs.
//
// What it is not: it does not scale the consumer fleet (that is the ECS service's scaling on the
// workers' lag), and it never touches an on-demand stream, whose capacity Kinesis manages.
package scale
