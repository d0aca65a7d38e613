// Package names keeps customers' names and prices in Redis, copied from PostgreSQL.
//
// A Syncer copies customers(customer_id, name, price_per_click) into the fields `name` and
// `price_per_click` of the Redis hash `<prefix>user:<customer_id>` (the hash the actors share; the Syncer
// writes only these two fields and never deletes the key; a deleted customer loses just these fields). It
// copies everything every Interval and, in between, applies each change at once when the table's trigger
// NOTIFYs the channel Channel. It reconnects to PostgreSQL with backoff and copies
// everything again after each reconnect, so a change made while it was disconnected is not missed. A
// database without the customers table is waited for (not Ready, a warning a minute) until
// 'clickfleet setup' creates it: a deployment may start the Syncer before the schema exists.
//
// # Reading names
//
// Readers (the UserActor) read `name` (and `price_per_click`) from `<prefix>user:<id>`, normally with the
// rest of the user's hash when the actor starts (HGETALL) — no extra round trip. A process that runs a
// Syncer itself can also ask it: Syncer.Lookup answers from memory without blocking.
//
// LoadDemo fills the customers table with generated customers for the demo.
//
// It is not a general PostgreSQL-to-Redis replicator: it knows one table.
package names
