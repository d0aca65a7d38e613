// Package clickgen generates click events like the two seed documents do and writes them to a stream.
//
// Two profiles: "poc" (the clickstream POC: numeric user ids with a stable random public IPv4 each,
// Search/AddToCart/ViewContent/Purchase, additional_data) and "lab" (the sessionization lab: user1..user3,
// checkout/search/category/detail/navigate, one click every 2 s and a 15 s pause every 60 clicks).
//
// Event time and send time are separate: event timestamps follow the profile's simulated clock, while a
// time scale compresses the real pacing, so the lab's two-minute sessions are generated in seconds with
// the same gaps in their timestamps. A seed makes the event sequence reproducible. It is not a load
// balancer or a benchmark harness (see bench/), and it does not decode what it writes.
package clickgen
