// Package route is the seed's KDA SQL filter as configuration: named routes, each a CEL predicate over an
// event's fields, an output stream and a projection (the fields to emit, enrichment on or off). It parses
// routes from flags ("NAME=STREAM:EXPR") and from a YAML file, compiles every predicate once into a [Set]
// that is safe for concurrent use, and encodes the output record of a matching event.
//
// It does no I/O and knows nothing of Kinesis: the actors evaluate a Set per event and write the outputs
// inside their flush barrier; provisioning creates the streams [Set.Streams] names.
//
// # Fields
//
// A predicate names fields bare (percent_viewed > 60) or through e (has(e.price) && e.price > 100). The
// fields, both seed shapes' (see [Fields]):
//
//	event_name, user_id, device_type  string, always present (device_type "unknown" when not sent)
//	event_type, pixel_id, click_id, user_ip, timestamp, insertion_timestamp  string
//	event_time_ms  int, always present (Unix ms)
//	schema  string, always present: "poc" or "lab"
//	percent_viewed, time_on_data, price  double (POC additional_data)
//	product_id  int (POC additional_data)
//
// Absent fields are absent, not zero: a string field that was missing or empty on the wire and an
// additional_data field that was not sent are not set. has(e.f) tests presence. Any other use of an
// absent field makes the predicate's evaluation fail, and a failed evaluation is no match: percent_viewed
// > 60, percent_viewed <= 60 and !(percent_viewed > 60) all do not match an event without percent_viewed.
// CEL's && and || absorb such a failure when the other side decides (false && …, true || …), so
// !has(e.price) || e.price < 10 matches events without a price. Numbers compare across int and double
// (price > 100 is fine). A name that is not a field, or a field used as the wrong type, is an error when
// the route is compiled, never a silent false.
package route
