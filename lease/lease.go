package lease

import (
	"errors"
	"fmt"
	"slices"

	"github.com/clickfleet/clickfleet/lease/position"
)

// Sentinel errors. Match them with errors.Is; the package wraps them with the
// shard and worker they concern.
var (
	// ErrLeaseLost means this worker no longer holds the lease: another worker
	// took it, it was not renewed within the failover time by this worker's
	// own clock, or it was released. A holder that sees it must stop at once
	// and never write a checkpoint or any other state for the shard again.
	ErrLeaseLost = errors.New("lease: lease lost")

	// ErrHandoffRequested is the cause of a held lease's context when another
	// worker has claimed the lease for balance. The holder should finish what
	// it is doing, checkpoint, and call Handle.Release; its checkpoints still
	// succeed until it releases or the new owner's handoff timeout expires.
	ErrHandoffRequested = errors.New("lease: handoff requested")

	// ErrShutdownRequested is the cause of a held lease's context when the
	// coordinator is shutting down cleanly. The holder should finish,
	// checkpoint, and call Handle.Release.
	ErrShutdownRequested = errors.New("lease: coordinator shutting down")

	// ErrLeaseReleased is the cause of a held lease's context once the lease
	// has been released or passed on (by Handle.Release, or when Process
	// returned).
	ErrLeaseReleased = errors.New("lease: lease released")

	// ErrLeaseExists is returned by Table.Create for a lease key that is
	// already in the table.
	ErrLeaseExists = errors.New("lease: lease already exists")

	// ErrLeaseNotFound is returned when a lease key is not in the table.
	ErrLeaseNotFound = errors.New("lease: lease not found")

	// ErrInvalidCheckpoint is returned for a checkpoint that is malformed or
	// that would move a shard's checkpoint backwards or past SHARD_END.
	ErrInvalidCheckpoint = errors.New("lease: invalid checkpoint")

	// ErrInvalidConfig is wrapped by Config.Validate for a setting out of range.
	ErrInvalidConfig = errors.New("lease: invalid configuration")
)

// Checkpoint is a position in a shard: a Kinesis sequence number and the sub-sequence number of a
// record inside a KPL aggregate, or one of the sentinel positions (TrimHorizon, Latest, AtTimestamp,
// ShardEnd). It is package position's one type.
type Checkpoint = position.Position

// Sentinel positions, stored in the checkpoint attribute as the Java KCL does.
var (
	TrimHorizon = position.TrimHorizon
	Latest      = position.Latest
	AtTimestamp = position.AtTimestamp
	ShardEnd    = position.ShardEnd
)

// checkAdvance returns an ErrInvalidCheckpoint error unless moving from cur to
// next is allowed: next is a valid sequence number (or SHARD_END) not behind
// cur, and cur is not SHARD_END.
func checkAdvance(cur, next Checkpoint) error {
	if next.SubSequence < 0 {
		return fmt.Errorf("%w: negative sub-sequence %d", ErrInvalidCheckpoint, next.SubSequence)
	}
	if cur.IsShardEnd() {
		if next.IsShardEnd() {
			return nil
		}
		return fmt.Errorf("%w: shard already checkpointed at SHARD_END, cannot move to %s", ErrInvalidCheckpoint, next)
	}
	if next.IsShardEnd() {
		return nil
	}
	if !next.IsSequence() {
		return fmt.Errorf("%w: %q is not a sequence number", ErrInvalidCheckpoint, next.SequenceNumber)
	}
	if !cur.IsSequence() {
		return nil // from TRIM_HORIZON, LATEST, AT_TIMESTAMP or nothing, any sequence is ahead
	}
	if next.Compare(cur) < 0 {
		return fmt.Errorf("%w: %s is behind the current checkpoint %s", ErrInvalidCheckpoint, next, cur)
	}
	return nil
}

// Lease is one item of the lease table, with the Java KCL's attribute names
// (in brackets). The zero value is an unowned lease with no key.
type Lease struct {
	Key                          string      // leaseKey: the shard id
	Owner                        string      // leaseOwner: worker id, "" when unowned
	Counter                      int64       // leaseCounter: bumped by every fenced write
	Checkpoint                   Checkpoint  // checkpoint, checkpointSubSequenceNumber
	OwnerSwitchesSinceCheckpoint int64       // ownerSwitchesSinceCheckpoint
	ParentShardIDs               []string    // parentShardId (string set: parent and adjacent parent)
	ChildShardIDs                []string    // childShardIds (string set)
	PendingCheckpoint            *Checkpoint // pendingCheckpoint, pendingCheckpointSubSequenceNumber
	CheckpointOwner              string      // checkpointOwner: the previous owner during a handoff
	StartingHashKey              string      // startingHashKey (decimal 128-bit)
	EndingHashKey                string      // endingHashKey (decimal 128-bit)
}

// Clone returns a deep copy of l.
func (l Lease) Clone() Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	l.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	if l.PendingCheckpoint != nil {
		p := *l.PendingCheckpoint
		l.PendingCheckpoint = &p
	}
	return l
}

// InHandoff reports whether the lease is being handed over: its new owner
// (Owner) must not process it until the previous owner (CheckpointOwner) has
// written its final checkpoint and removed CheckpointOwner.
func (l Lease) InHandoff() bool { return l.CheckpointOwner != "" }
