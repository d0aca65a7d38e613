// Package lease keeps a fleet of workers' shard leases in a DynamoDB lease
// table compatible with the Java Kinesis Client Library (KCL): it renews the
// leases a worker holds, takes expired and unowned ones, balances leases
// across workers by stealing, hands leases over gracefully on balance and on
// clean shutdown, and records checkpoints fenced so that a deposed worker can
// never write one.
//
// It knows nothing of what is in a shard: reading records, resharding
// discovery and the processor lifecycle belong to the consumer, which gets
// one Handle per holding period through Config.Process and asks the Table
// about lineage (CreateChild, MayStart, DeleteFinished).
//
// # Parts
//
//   - Table: reads and fenced writes on the lease table. EnsureTable creates
//     it with OwnerIndex, and the two tables that go with it
//     (CoordinatorStateTable, WorkerMetricsTable); Upgrade adds the index to a
//     table made before it; CheckIndex tells a worker at start whether the
//     table is ready.
//   - Plan and Observe: the pure planner (which leases to take or steal), a
//     function of (leases, worker, this worker's observations, now).
//   - Assign: the pure assignment of a leader (which lease goes to which
//     worker, by reported load or by count), a function of (leases, the
//     leader's observations, the live workers' loads, recent moves, now).
//   - Coordinator: one per worker; a renew loop (every RenewInterval) and a
//     handoff poll loop, and, by Config.Assignment, either the leader mode's
//     loops — the election and the load report (every RenewInterval), the
//     leader's assignment round and the adoption of the worker's own leases
//     (every TakeInterval) — or the scan mode's take loop, on an injected Clock.
//   - Handle: a holding period — its context, start checkpoint, Checkpointer
//     and Release.
//
// # The leader mode (AssignByLeader, the default)
//
// Reads must not grow as workers × shards, so one worker at a time — the
// leader — scans the lease table and assigns, and every other worker reads only
// its own leases:
//
//   - The leader lock is the item key="Leader" of CoordinatorStateTable:
//     {owner, leaderCounter}. Its holder bumps the counter every RenewInterval,
//     conditioned on owner and counter; every other worker reads it (eventually
//     consistent) and takes it over, conditioned on the counter it saw, once
//     that counter has stayed unchanged for FailoverTime by its own clock — the
//     rule of the leases themselves. The leader acts only while its lock is
//     provably its own by its own clock (the failover time since its last bump
//     was sent) and bounds each assignment write by that validity.
//   - Each round (TakeInterval) the leader scans the lease table and
//     WorkerMetricsTable eventually consistently, folds the scan into its
//     observations (Observe), keeps the workers whose report counter changed
//     within FailoverTime, and writes what Assign decides: a take (fenced on
//     the observed counter) of an unowned, released or expired lease on behalf
//     of its new owner, or a steal (the scan mode's handoff write) of a live
//     lease for balance. Every one of these writes is conditional on the lease's
//     counter as scanned, which a live owner bumps every RenewInterval; so a
//     stale scan, or a deposed leader's late write, fails its condition instead
//     of taking a lease from a live holder.
//   - Every worker reports its load (Config.Load) to WorkerMetricsTable every
//     RenewInterval, Queries OwnerIndex for its own keys every TakeInterval,
//     and adopts each key it does not hold whose consistent read names it: a
//     renew fenced on the counter the leader wrote, which starts its own clock on
//     the lease (a checkpointOwner still set makes it wait for the handoff as a
//     thief does).
//   - A worker that stops cleanly deletes its load report (the leader assigns it
//     nothing more), releases the leader lock if it holds it, then releases its
//     leases as always; the leader gives them away at its next round.
//
// A new leader has seen no lease's counter before it takes over, so the leases
// of workers that died before then are reassigned only after another
// FailoverTime of its own observation: about twice the failover time when the
// leader dies with them.
//
// # Table and writes
//
// Items use the KCL's attribute names: leaseKey (hash key, S), leaseOwner,
// leaseCounter, checkpoint, checkpointSubSequenceNumber,
// ownerSwitchesSinceCheckpoint, parentShardId (SS), childShardIds (SS),
// pendingCheckpoint, pendingCheckpointSubSequenceNumber, startingHashKey,
// endingHashKey and checkpointOwner. A lease is created by a PutItem
// conditioned on attribute_not_exists(leaseKey); every later write is an
// UpdateItem that sets or removes only its own attributes, so attributes
// written by other tools survive:
//
//	renew        if counter=c ∧ owner=me                 SET counter=c+1
//	take         if counter=c                            SET owner=me, counter=c+1 (ADD ownerSwitches 1 if owner changes)
//	steal        if counter=c ∧ owner=old ∧ no cpOwner   SET owner=thief, cpOwner=old, counter=c+1, ADD ownerSwitches 1
//	checkpoint   if counter=c ∧ owner=me                 SET checkpoint, sub, ownerSwitches=0, counter=c+1 REMOVE pending*
//	final cp     if cpOwner=me                           SET checkpoint, sub, ownerSwitches=0 REMOVE pending*
//	pass on      if cpOwner=me                           REMOVE cpOwner
//	end handoff  if counter=c ∧ owner=me ∧ cpOwner=old   REMOVE cpOwner, SET counter=c+1
//	release      if counter=c ∧ owner=me                 REMOVE owner, SET counter=c+1
//
// (cpOwner is checkpointOwner.) When a fenced write fails its condition the
// lease is re-read before it is called lost: if the item shows our owner and
// our counter plus one, an earlier attempt of the same write landed (the
// KCL's rule); if it names us as checkpointOwner, another worker claimed the
// lease for balance and we switch to handing it over.
//
// # Expiry and timing
//
// Expiry is never judged by comparing wall clocks. Each worker stamps each
// lease with its own clock's reading whenever a scan shows leaseCounter
// changed (Observe); a lease unchanged for FailoverTime is expired, an
// unowned one is available at once, and one unchanged for 3 × FailoverTime
// (or unowned and never seen renewed) is taken first. The owner's side: each
// successful counter bump re-arms a timer at (time the write was sent +
// FailoverTime); when it fires the holder's context is cancelled with
// ErrLeaseLost and every later write is refused. Since another worker stamps a
// change no earlier than it landed, and the write was sent before it landed,
// the owner gives up no later than anyone else may take over. Only
// differences of one worker's own readings are used, so a wall-clock offset
// between workers changes nothing (time.Time's monotonic reading is used).
// Defaults follow the KCL: FailoverTime 10s, RenewInterval FailoverTime/3 −
// 25ms, TakeInterval 2 × (FailoverTime + 25ms); steady-state upkeep is one
// write per RenewInterval per held lease (≈0.30/s), fewer when checkpoints
// renew the lease too.
//
// # Balancing (Plan)
//
// As the KCL's lease taker: workers are the owners of live leases plus self;
// target = ceil(leases/workers) capped by MaxLeasesPerWorker; take very old
// leases first, then available ones in random order up to the target; only
// when nothing is available steal from the most-loaded worker — up to
// MaxLeasesToStealAtOneTime if it is above the target, one if it is at the
// target and we need more than one. Leases at SHARD_END need no worker and
// are ignored; leases in a handoff are never stolen.
//
// # Graceful handoff (beyond the KCL)
//
// A steal is a handoff. The thief's steal makes it leaseOwner and records the
// old owner as checkpointOwner. The old owner's next renew fails its fence;
// the re-read shows checkpointOwner = itself, so it cancels the holder's
// context with ErrHandoffRequested. The holder finishes, writes its final
// checkpoint (fenced on checkpointOwner, not on the counter, which the thief
// keeps renewing) and calls Release, which removes checkpointOwner. The
// thief, polling every HandoffPollInterval, starts only once checkpointOwner
// is gone, from the checkpoint then in the item. If that has not happened
// within HandoffTimeout, the thief removes checkpointOwner itself, fenced on
// its own counter, and proceeds as after an ordinary take.
//
// A clean shutdown (Run's context ends) stops taking, cancels every holder
// with ErrShutdownRequested, waits up to ShutdownTimeout for them to
// checkpoint and Release (which removes leaseOwner), then releases the rest.
// Unowned leases are available at once, so other workers take them at their
// next take cycle instead of after the failover time.
//
// # Invariants
//
//  1. Every change of leaseOwner is conditioned on the counter its writer
//     observed and bumps it; at most one of any set of racing takes and
//     steals of one lease succeeds.
//  2. A holder runs (its context is not done) only while its worker is
//     leaseOwner with no checkpointOwner and has bumped the counter within
//     FailoverTime by its own clock. After a steal it may go on only to
//     finish: its writes are then fenced on checkpointOwner = itself.
//  3. A new owner's holder starts only when checkpointOwner is absent: after
//     the previous owner's final checkpoint and pass-on, or after the new
//     owner's own fenced removal, after which every write by the previous
//     owner fails. So a planned move never has two holders at once, and the
//     new one starts from the old one's last checkpoint.
//  4. A checkpoint is accepted only from the current holding period: while
//     holding, the (counter, owner) fence fails after any take or steal;
//     while handing over, the checkpointOwner fence fails once the handoff
//     ended. Locally, a Handle whose period ended returns ErrLeaseLost even if
//     the same worker holds the lease again, so reusing a worker id across
//     periods (checkpointOwner = worker id) cannot let an old holder write.
//     Worker ids must be unique per process.
//  5. A take of an expired lease keeps checkpointOwner: a taker of a lease
//     whose thief died mid-handoff waits for the previous owner just as the
//     thief would have. A release at shutdown of a lease still waiting for a
//     handoff keeps it too.
//  6. ownerSwitchesSinceCheckpoint goes up by one with every change of owner
//     and back to 0 with every checkpoint; a checkpoint clears
//     pendingCheckpoint.
//  7. Run never aborts a DynamoDB call in flight (each is bounded by its own
//     timeout), so the outcome of every write is known or re-read.
//
// Settings whose relations these rest on are refused by Config.Validate when they
// break them: RenewInterval at most FailoverTime/2 (a lease is renewed at least
// twice within its failover time), HandoffTimeout at least FailoverTime
// (Handle.ValidFor's bound on a draining holder's writes holds only while the new
// owner waits that long before it proceeds without them).
//
// # Failures and shutdown
//
// A permanent lease-table error (retry.IsPermanent: the table missing, a call
// denied by IAM) stops the coordinator: repeating it cannot help, and a worker
// that cannot write its leases must not look healthy. Coordinator.Err reports it
// at once and Run returns it after the shutdown below. Transient errors are
// logged and retried at the next round.
//
// Run shuts down in one order, each step bounded (Config.ShutdownBound): stop
// taking; ask every holder to finish (ErrShutdownRequested) and give them
// ShutdownTimeout to checkpoint and release; release what is left; wait
// ShutdownTimeout more for Process calls to return.
//
// Races this protocol settles: a steal against the owner's renew, checkpoint
// or release (each fails its counter fence, re-reads, and finds itself
// checkpointOwner: the checkpoint is retried under the handoff fence, the
// release becomes a pass-on); pass-on against the thief's timeout (both
// conditioned on checkpointOwner; the loser gets ErrLeaseLost); a renew whose
// response was lost (recognised on re-read); a worker taking back a lease it
// is still handing over (its new period waits for its own pass-on).
//
// What is not guaranteed: effects outside the lease table. A holder told of a
// loss may still be finishing a write elsewhere when another worker starts;
// downstream writes must carry their own guard (clickfleet's Redis writes are
// conditional on the sequence number they reflect).
package lease
