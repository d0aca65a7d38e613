// Package messages defines clickfleet's wire events and the records derived
// from them: the clickstream event in both seed schemas, the enriched event,
// the session record written to DynamoDB and the error record written to the
// error stream.
//
// It is for turning bytes from the "clickstream" stream into a validated
// [Event] (see [Decode] and [DecodeInto]), turning an [Event] back into bytes
// in the shape it arrived in (see [Event.AppendJSON]), and naming things
// consistently across the fleet ([SessionID], [DerivedClickID]).
//
// Two event shapes are accepted by one decoder:
//
//   - the POC shape (seed aws-clickstream-poc): "timestamp" as
//     "2021-07-12 12:01:58.732726" (UTC) or RFC 3339, "user_id", "pixel_id",
//     "click_id", "insertion_timestamp", "event_name", "user_ip" and
//     "additional_data" {time_on_data, percent_viewed, product_id, price};
//   - the lab shape (seed kinesis-sessionization-lab): "user_id",
//     "event_timestamp" (Unix milliseconds, a JSON number or a string of
//     digits), "event_name", "event_type", "device_type".
//
// A record with "event_timestamp" is a lab event, otherwise one with
// "timestamp" is a POC event. Either may carry the enrichment fields "name",
// "country", "region" and "city".
//
// The package is not for I/O, sessionization, enrichment lookups or
// filtering: it holds data types, the pure functions that encode, decode,
// validate and name them, and nothing else. It imports only the standard
// library and keeps no package-level mutable state; every function is safe
// for concurrent use on distinct values.
//
// Decoding is on the consumer's hot path. The decoder is a small hand-written
// JSON scanner specialised to these shapes: it accepts exactly what
// encoding/json accepts as syntax (checked by fuzzing against json.Valid),
// never builds a map, and allocates the event's strings in a single block.
package messages
