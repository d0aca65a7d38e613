// Package ingest is clickfleet's HTTP front door: the part the seed POC builds from API Gateway (request
// validation, API keys, throttling) in front of Kinesis. Clients POST events to /v1/events; the server
// authenticates the request, decodes and validates every event with package messages, and puts the valid
// ones on the "clickstream" stream (partition key user_id) in PutRecords calls shared by all concurrent
// requests.
//
// The rule it never breaks: a 2xx answer means every event of the request is durably on a stream (the
// events stream, or — with Config.InvalidToErrors — the error stream for the invalid ones). An event Kinesis
// did not take after retries is reported per event in a 503 answer, so a client resends only those.
//
// Every valid event without a click_id gets one (a UUIDv7) before its first PutRecords attempt, written
// into the event's JSON (its other bytes unchanged) and reported in its result. Delivery to Kinesis is at
// least once — a call that timed out after Kinesis stored it is retried and stores its events again — and
// the copies carry one click_id, by which the consumer drops them.
//
// Answers of POST /v1/events:
//
//	200  every event is on the stream; "results" gives each event's shard, sequence number and click_id
//	202  with InvalidToErrors: the valid events are on the stream and the invalid ones on the error stream
//	400  the body is not what the content type says, or an event is invalid: "errors" lists index, field, reason
//	401  no x-api-key header;  403  a key that is not configured
//	408  the body did not arrive within the read timeout
//	413  the body, one event, or the number of events is over its limit
//	415  a content type other than JSON or NDJSON, or a content encoding
//	429  the key's token bucket is empty; Retry-After says when to come back
//	503  Kinesis did not take some or all events (the per-event results say which), or the server is stopping
//
// It also serves /healthz (the process runs), /readyz (the stream answers DescribeStreamSummary) and
// /metrics (Prometheus).
//
// It is not a consumer, does not enrich or sessionize, and keeps no state beyond its token buckets: events
// are in Kinesis or in a failure answer, never in a queue of its own. See [Server] for the lifecycle and
// [Config] for every setting and its default.
package ingest
