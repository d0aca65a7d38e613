package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Checkpointer records how far a shard has been processed. Both methods are
// fenced: they succeed only while this worker holds the lease (or, during a
// handoff out of it, until it passes the lease on), and return an error
// matching ErrLeaseLost otherwise — after which the caller must stop.
type Checkpointer interface {
	// Checkpoint records (seq, subSeq) as processed. It must not be behind
	// the current checkpoint (ErrInvalidCheckpoint).
	Checkpoint(ctx context.Context, seq string, subSeq int64) error
	// CheckpointShardEnd records that the whole closed shard is processed.
	CheckpointShardEnd(ctx context.Context) error
}

// Handle is one period of holding one lease, given to Config.Process. Its
// methods are safe for concurrent use.
//
// The holder processes the shard from Start() until Context() is done, then
// finds out why with context.Cause:
//   - ErrLeaseLost: another worker owns the shard now. Stop at once; do not
//     checkpoint (it would fail with ErrLeaseLost anyway).
//   - ErrHandoffRequested: another worker claimed the shard for balance.
//     Finish in-flight work, Checkpoint, then Release: the new owner starts
//     from that checkpoint. Checkpoints keep succeeding until Release or
//     until the new owner's HandoffTimeout passes.
//   - ErrShutdownRequested: this worker is stopping. Likewise finish,
//     Checkpoint and Release within Config.ShutdownTimeout.
//
// The end of a shard is not a context event: the holder notices it while
// reading, calls CheckpointShardEnd (after RecordChildShards and creating
// the children's leases), then Release or returns.
//
// Checkpoint after the context is done with a context of your own: the
// handle's context is already cancelled then.
type Handle struct {
	e     *entry
	ctx   context.Context
	start Lease
}

var _ Checkpointer = (*Handle)(nil)

// ShardID returns the lease key (the shard id).
func (h *Handle) ShardID() string { return h.e.key }

// Context is cancelled, with one of the causes described on Handle, when the
// holding period ends.
func (h *Handle) Context() context.Context { return h.ctx }

// Start returns the checkpoint to resume from: a sequence number (resume
// after it, skipping sub-sequences up to it), or TRIM_HORIZON, LATEST,
// AT_TIMESTAMP or SHARD_END.
func (h *Handle) Start() Checkpoint { return h.start.Checkpoint }

// Lease returns the lease as it was when this holding period started.
func (h *Handle) Lease() Lease { return h.start.Clone() }

// Checkpoint records (seq, subSeq) as processed, resets
// ownerSwitchesSinceCheckpoint and clears any pending checkpoint. It fails
// with ErrInvalidCheckpoint if the position is malformed or behind the current
// checkpoint, and with ErrLeaseLost once the lease is no longer this worker's.
// Other errors (DynamoDB unavailable) leave the outcome unknown; retrying is
// safe.
func (h *Handle) Checkpoint(ctx context.Context, seq string, subSeq int64) error {
	return h.checkpoint(ctx, Checkpoint{SequenceNumber: seq, SubSequence: subSeq})
}

// CheckpointShardEnd records SHARD_END: every record of the closed shard is
// processed, so its children may start. Errors as for Checkpoint.
func (h *Handle) CheckpointShardEnd(ctx context.Context) error {
	return h.checkpoint(ctx, ShardEnd)
}

func (h *Handle) checkpoint(ctx context.Context, cp Checkpoint) error {
	err := h.e.write(ctx, "checkpoint",
		func(cur Lease) (*update, error) {
			if err := checkAdvance(cur.Checkpoint, cp); err != nil {
				return nil, fmt.Errorf("checkpoint shard %s: %w", h.e.key, err)
			}
			return checkpointUpdate(cp), nil
		},
		func(cur Lease) bool { return cur.Checkpoint == cp })
	if err != nil {
		return err
	}
	h.e.log.Debug("checkpointed", zapCheckpoint(cp))
	return nil
}

// RecordChildShards adds shard ids to the lease's childShardIds (at the
// shard's end, before CheckpointShardEnd). Fenced like Checkpoint.
func (h *Handle) RecordChildShards(ctx context.Context, children []string) error {
	if len(children) == 0 {
		return nil
	}
	children = slices.Clone(children)
	return h.e.write(ctx, "record_children",
		func(Lease) (*update, error) { return childrenUpdate(children), nil },
		func(cur Lease) bool {
			for _, c := range children {
				if !slices.Contains(cur.ChildShardIDs, c) {
					return false
				}
			}
			return true
		})
}

// Release ends this holding period: call it after the final checkpoint. If a
// handoff was requested the lease passes to the worker that claimed it;
// otherwise it becomes unowned and any worker may take it at its next take
// cycle. Release cancels Context with ErrLeaseReleased. It is idempotent, and
// returns an error matching ErrLeaseLost if the lease was lost first.
func (h *Handle) Release(ctx context.Context) error {
	return h.e.release(ctx, h)
}

// ValidFor returns how much longer this holding period's lease is provably this worker's by its own
// (monotonic) clock: the failover time minus the time since the last successful renewal or checkpoint was
// sent, or zero once the lease is lost, released or expired. Other workers only take a lease after they
// have seen its counter unchanged for the failover time, counted from when they read it (after we sent the
// write), so no other worker can hold it before ValidFor has run out. During a handoff out (after
// ErrHandoffRequested) it counts from the last renewal too, which holds while Config.HandoffTimeout is at
// least the failover time (its default). Call it right before a write that a deposed owner must not make,
// and bound that write by the answer. It does no I/O and never blocks on a write in flight; safe for
// concurrent use.
func (h *Handle) ValidFor() time.Duration {
	e := h.e
	if h.ctx.Err() != nil {
		if c := context.Cause(h.ctx); errors.Is(c, ErrLeaseLost) || errors.Is(c, ErrLeaseReleased) {
			return 0
		}
	}
	if e.stateIs(stateDone) || e.expired.Load() {
		return 0
	}
	sent := e.bumpAt.Load()
	if sent == nil {
		return 0
	}
	return max(e.cfg().FailoverTime-e.cfg().Clock.Now().Sub(*sent), 0)
}
