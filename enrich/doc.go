// Package enrich holds the one rule by which the pipeline enriches an event, shared by every output that
// carries enriched events (the actors' offers, the archive's Parquet rows): the user's name and the
// location of the event's address, and a stable click id when the event has none.
//
// The lookups themselves live in the sub-packages: enrich/geo (addresses → country, region, city) and
// enrich/names (customers' names into Redis). This package does no I/O.
package enrich
