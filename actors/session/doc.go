// Package session is clickfleet's per-user logic, as plain code: the sessionizer (the rules of docs/contracts.md,
// the lab's LAG over the stream made precise), the last-access time, the high-intent offer filter, the
// replay guard on shard positions and the window of recently applied click ids (which recognises copies
// of an event that a producer's retry stored twice), plus the encoding of a user's state as the fields of
// the Redis hash cf:user:<id>.
//
// It is for deciding, per user and per event, what changes. It is not for I/O, concurrency or actors:
// package actors runs one [User] per actor and writes what it produces; nothing here reads a clock, so
// everything tests with plain values. Values are not safe for concurrent use.
package session
