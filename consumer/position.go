package consumer

import (
	"context"
	"sync/atomic"

	"github.com/clickfleet/clickfleet/lease"
)

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
