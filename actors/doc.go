// Package actors is clickfleet's record processor: a consumer.Processor built on protoactor-go
// (github.com/asynkron/protoactor-go) that sessionizes users, tracks their last access, writes the
// events each output route selects (by default the high-intent offers) and routes bad records to the
// error stream, with exactly-once results.
//
// # Actor tree
//
// One [Factory] per worker process owns one *actor.ActorSystem. Each holding period of a shard gets a
// processor whose Initialize spawns a ShardActor; the ShardActor spawns one UserActor child per user id
// seen on the shard (state rehydrated from the Redis hash cf:user:<id>, loaded in pipelined batches off
// the actor), and routes the records to them: a live user's records wait in the ShardActor, in shard
// order, and travel with the user's next flush request — one message per user per flush, however many
// batches its records came in (the flush's records share one array, each user's a slice of it; with
// 100k users a batch of 1000 records touches ~1000 users, so a message per user per batch was a
// message per record). The user actors' mailboxes run
// on the factory's pool of one goroutine per CPU rather than a new goroutine per activation (with one
// actor per user, almost every message finds its mailbox idle). Idle users are passivated by one
// periodic sweep of the ShardActor (not per-actor ReceiveTimeout, which races); a passivated user's
// records that arrive while its actor stops are buffered and delivered to its next incarnation. The
// per-user logic is package session's plain code.
//
// # Flush barrier and writer
//
// Every FlushInterval, or when FlushMaxRecords records are unflushed, the ShardActor asks the users that
// received records since the last barrier, and those whose session row trigger is due, for their effects
// (records of the shard up to position S were routed before the request, so the replies cover everything
// ≤ S). Each user adds its reply to the barrier under a mutex and counts it down; the last one sends the
// ShardActor a single message (not one message per user). A writer
// goroutine, off the mailboxes, then writes them in this order, each stage batched and retried with
// backoff until it succeeds or the holding period ends:
//
//  1. a guard probe: the shard's fence (below). Above the holding period's lease counter, a newer owner
//     started and the flush stops as lease lost; equal to it, no one else can have written the shard's
//     users since they were loaded, so nothing more is read. Otherwise (no lease counter, or a fence lost
//     with a Redis restart) each user's pos:<shard> is read by a small script 128 users a call in one
//     pipeline, and a user whose stored position is at or beyond the flushed one was written by someone
//     at least as far (a deposed owner's late flush, or a duplicate), so its effects are dropped;
//  2. outputs: Kinesis PutRecords of each route's outputs, stream by stream, then of error records,
//     each user's in its order (see Order on the output streams; failed entries sent again);
//  3. sessions: DynamoDB BatchWriteItem of the session rows whose triggers fired, absolute values, 25 per
//     call (UnprocessedItems retried);
//  4. state: Redis transactions of 256 users (MULTI/EXEC, WriteConcurrency at a time), each watching the
//     shard's fence, that set each user's fields and pos:<shard> and keep the shard's set of users whose
//     rows lag (cf:rows:<shard>) in step; with Config.WaitReplicas, then a wait until that many replicas
//     acknowledged them (below), the state written again while they do not;
//
// and only then checkpoints S. One flush per shard is in flight at a time; records keep being routed
// meanwhile and go to their users with the next barrier's requests. ProcessRecords returns once its
// batch is routed, but waits while FlushMaxRecords records are unflushed, and while a due flush cannot
// start — the previous one is being written, or users' state loads (backpressure: so a flush covers
// about FlushInterval of records under full load, not FlushMaxRecords; and new users come with nearly
// every batch, so a reader that went on would keep a load in flight and the flush waiting).
//
// # Order on the output streams
//
// A stream keeps the order in which a partition key's records (a user's) are stored, but a PutRecords
// call can fail some entries and store the others, later records of the same user among them. So the
// writer groups each stream's records by user, each user's in its order, and packs whole users into
// calls (500 records, 5 MiB): calls that share no user go WriteConcurrency at a time, and the calls over
// which a user too large for one call continues are made one after another. A call is repeated until
// every record of it is stored. After a partial failure, a user whose entry failed sends again that
// entry and every later record of its in the call, the ones Kinesis stored too (they are now ahead of it
// on the stream; stored again behind it, the last copy of each of the user's records is in order), and
// from then on a few per attempt (one, doubling while none of them fails), so that a throttled shard is
// not sent a user's whole remainder again and again; users without a failed entry are done. An attempt
// that stored some records is followed after the first backoff pause, one that stored none after a
// growing one. Hence, on every output stream, each user's records are stored in the user's order; the
// only copies out of place are records Kinesis stored in the same call behind a failed one of their
// user, each stored again after it. Keeping the last copy of each click_id gives every user's records in
// order — replays repeat a suffix of a user's records, which keeps that true.
//
// # Session rows
//
// A session's row is not rewritten at every flush. The UserActor decides, when asked to flush, with
// package session's RowCheck: the row is written at the first flush after the session starts, when it
// closes (the next event beyond the gap — the old session's final values go into that flush — or
// Config.Rules.GapMs + Config.SessionCloseDelay of processing time without a record of the user), while
// open at most every Config.SessionUpdateInterval, when an event reopens a session the idle timer
// closed, and, for open sessions whose rows lag, at the end of the holding period (a clean stop, a
// handoff, a shard's end). The ShardActor keeps each user's next trigger time from its last reply, files
// the user by it in a timing wheel (slots of 250 ms; filing again when the trigger moves costs O(1)), and
// at each flush asks the users whose trigger is due (not only those with new records), visiting only the
// slots passed since the last flush, not every user; a user idle for
// PassivateAfter is closed at a flush before it is passivated.
//
// What the table holds for the open session (its count, write time, closed or not) is part of the user
// state (session.Row, the hash field session_row), written with the rest by the state write (stage 4:
// a MULTI/EXEC transaction that WATCHes the shard's fence), which also adds the user to or removes it
// from the shard's lagging set in the same transaction. A new holding period reads that set first and
// loads its users, so rows left lagging by a crash or a lost lease are written at their next trigger
// even when the users send nothing more. A user with no new record whose row state changed (an idle
// close) is written row-only: session_row without pos:<shard>, kept by the probe only while the stored
// position is still the user's own (with the fence at the holding period's own lease counter no one
// else can have moved it). Effects the probe drops as stale reset the user's row state, so its row is
// written again at the next flush.
//
// # Routes
//
// Config.Routes (package route; default: the one offers route) are compiled once, by Config.Validate
// when New is called, into a route.Set shared read-only by every actor. Each applied record — not a
// replay, not a copy — is matched against every route in the UserActor (route.Set.Match, no I/O); a
// record that matches at least one is an output, queued behind pending lookups like any other so the
// user's order holds on every route's stream (and the writer keeps it there: Order on the output
// streams). Its outputs, one per matching route and in the routes' order, are encoded when it
// completes: the whole event or the route's projection, enriched (name, location, geo_status mark) only
// for routes that say so, each with its click_id. They travel in the flush reply with the sessions and
// are written in stage 2 above, so routes share the offers' delivery: at least once, identical bytes on
// a replay, before the checkpoint.
//
// # Enrichment
//
// Offers leave enriched as the seed's "Enrichment" Lambda did: the input event plus "name", "country",
// "region" and "city" (messages.Event.AppendJSON writes them after the event's own fields). The UserActor
// does it; the ShardActor is not involved.
//
//   - Name: the `name` field that the names sync (package enrich/names) keeps in cf:user:<id>, read by the
//     HGETALL that hydrates the actor — no extra round trip. A name that changes while the actor lives is
//     picked up at its next hydrate (after passivation, default 2 min idle, or in the next holding period).
//   - Location: with Config.Geo set, for each applied record with a user_ip the actor asks Cached (memory
//     only, no I/O). On a miss it calls Resolve, whose callback only sends geoResolved to the actor; the
//     lookup (Redis geo cache, then the provider) runs on the resolver's goroutines, never in Receive.
//   - Order: while a lookup is pending, the user's later records that are outputs or carry an address wait
//     behind it in the actor's queue, and are completed in arrival order as answers come: outputs keep
//     the user's order, and the user's location is always that of its latest located record. Sessions,
//     last access and the replay guard are not held back.
//   - The user's location (country, region, city of the latest record whose address was found) is part of
//     the user state: session.User carries it, and the state write stores it with last_access_ms.
//   - Barrier: a user asked to flush while lookups of its records are pending (all of them are covered by
//     the request) holds its reply — the effects as of the request, with records arriving meanwhile going
//     to the next flush — and sends it once those lookups answered. The resolver answers every Resolve
//     within its lookup timeout (StatusUnavailable if the provider has not answered by then), so a
//     barrier waits at most that long; nothing is ever dropped.
//   - Outage: an answer of StatusUnavailable (provider down, timing out, rate-limiting, circuit open) emits
//     the output at once without location, marked "geo_status":"unavailable"; it is not enriched later.
//     Failures are not cached, so the next record from that address is looked up again. Addresses that are
//     not public or not in the database (unknown, not_found) give no location and no mark. Without
//     Config.Geo, outputs carry the name only, no location and no mark.
//
// The hot path (a cache hit, nothing pending) allocates nothing beyond route matching (a few small CEL
// values per route, about 0.2 µs for the default route) and the outputs' encoding.
//
// # Exactly-once results
//
// A record's effects are written before any checkpoint at or beyond it, so a crash replays only records
// whose effects may or may not be written. A user's state carries the position of the last record it
// applied on each shard; a rehydrated user skips records at or below it, and since state is written last,
// everything the stored state reflects has its outputs and closed sessions' rows written already (the
// open session's row as far as its session_row says; the shard's lagging set names the users whose rows
// lag). Session rows are absolute values keyed by ids derived from event data, so rewriting them is idempotent; offers may repeat,
// always with the same click_id (a missing one is derived from shard, sequence and sub-sequence). A
// deposed owner's late flush is dropped by the probe, and its state write cannot land once a newer
// owner started (the fence, below). After a reshard a child shard has no stored position, so all its records are new.
//
// Deposed owners are fenced twice. Every write attempt of a flush (probe, outputs, rows, state, each
// retry) starts only while the lease is provably this worker's by its own clock
// (consumer.InitInput.ValidFor) and is bounded by that validity; at zero the shard stops as lease lost.
// And a new holding period first raises the shard's fence in Redis (cf:fence:<shard>, session.FenceKey)
// to its lease counter (InitInput.LeaseCounter, larger for every later take), before it reads any user
// state; a state write is a transaction that WATCHes the fence and runs only if it is not above the
// writer's counter (Redis refuses the EXEC if the fence changed after that check), so an old owner's
// state write that was already on its way (paused, or held by the network) never lands after the new
// owner started, within a holding period only its owner writes the shard's users (in flush order, so a
// user's state never moves backwards), and
// the probe's premise — whoever stored a position wrote the rows for it, and no older view overwrote
// them — holds. A refused write stops the shard as lease lost, not the worker. A fence that is not a
// lease counter (an integer) is never read as 0: raising it, the probe and the state write stop with a
// permanent error naming the key. An old owner's session row write already sent before its validity ran
// out can still land late (rows are unconditional absolute values); the row's next trigger rewrites it.
//
// "Written" means acknowledged by Redis, and Redis replicates asynchronously: a primary that fails over
// right after a flush can lose state the checkpoint has already passed, and the next owner would then
// skip records whose effects are gone. Config.WaitReplicas closes that: after the state transactions,
// the writer waits (internal/replicawait: a SET of cf:ack:<shard> and a WAIT on the same connection,
// which covers every write answered before it on any connection) until that many replicas acknowledged;
// when fewer do within Config.WaitTimeout, or the wait fails, it writes the flush's state again — the
// primary that took it may be gone — and waits again, after a backoff, and checkpoints only once the
// replicas have it. A holding period waits the same way once after raising the fence, before it reads
// any state: it then never builds (in memory, and in the users' skipped records) on a previous owner's
// writes a failover could still take back.
//
// Copies of an event under new positions — a producer's PutRecords call that timed out after Kinesis
// stored it, sent again — are dropped by click_id: the user's state keeps the fingerprints of the user's
// last session.RecentClicksSize (32) applied click ids (session.RecentClicks, stored in the hash field
// recent_clicks with the other fields by the state write, so it survives passivation, crashes, lease
// moves and reshards), and a record whose click_id is among them changes nothing but is counted in
// clickfleet_actors_duplicate_records_total. Records without click_id are never dropped this way: the id
// derived from their position differs between copies. The ingest gives every event a click_id.
//
// The messages the actors exchange are defined in this package (messages.go), not in package messages.
package actors
