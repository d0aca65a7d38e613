package consumer

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/clickfleet/clickfleet/lease"
)

// comparePositions orders two record positions: sequence numbers as unsigned decimal integers, then
// sub-sequence numbers. Both must be real sequence numbers, not sentinels.
func comparePositions(a, b lease.Checkpoint) int {
	if c := compareSequences(a.SequenceNumber, b.SequenceNumber); c != 0 {
		return c
	}
	switch {
	case a.SubSequence < b.SubSequence:
		return -1
	case a.SubSequence > b.SubSequence:
		return 1
	}
	return 0
}

// compareSequences compares decimal sequence numbers without converting them (they exceed 64 bits).
func compareSequences(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// trackingCheckpointer passes checkpoints to the lease and remembers whether SHARD_END was written.
type trackingCheckpointer struct {
	lease.Checkpointer
	shardEnd atomic.Bool
}

func (t *trackingCheckpointer) CheckpointShardEnd(ctx context.Context) error {
	if err := t.Checkpointer.CheckpointShardEnd(ctx); err != nil {
		return err
	}
	t.shardEnd.Store(true)
	return nil
}
