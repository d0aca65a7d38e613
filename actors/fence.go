package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
)

// errDeposed stops a write because the lease is no longer provably this worker's by its own clock.
var errDeposed = fmt.Errorf("%w: lease validity ran out by this worker's clock", lease.ErrLeaseLost)

// errFenced stops the shard because a newer owner raised the shard's fence in Redis.
var errFenced = fmt.Errorf("%w: a newer owner raised the shard's fence", lease.ErrLeaseLost)

// claimFence raises the shard's fence in Redis (session.FenceKey) to this holding period's epoch, before
// any user state is read: from then on no write of an earlier owner lands (writeState's transactions refuse
// lower epochs), however late it arrives. A fence above the epoch means a newer owner, unless the lease
// is still provably ours after the fence was read: then it was left by an earlier lease table whose
// counters started again, and it is set back to the epoch (if unchanged meanwhile).
func (sh *shardShared) claimFence(ctx context.Context) error {
	key := session.FenceKey(sh.f.cfg.Prefix, sh.shard)
	epoch := strconv.FormatInt(sh.epoch, 10)
	seen := ""
	for range 3 {
		var fence int64
		err := sh.write(ctx, "raise the shard's fence", func(ctx context.Context) error {
			pipe := sh.f.cfg.Redis.Pipeline()
			c := fenceScript.Eval(ctx, pipe, []string{key}, epoch, seen) // once per holding period: no EVALSHA
			_, err := pipe.Exec(ctx)
			if err == nil {
				fence, err = c.Int64()
			}
			if err != nil {
				return fmt.Errorf("raise %s to %s: %w", key, epoch, err)
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case fence == sh.epoch:
			return nil
		case fence > sh.epoch && sh.validFor != nil && sh.validFor() <= 0:
			return fmt.Errorf("%w (%s is %d, this holding period's lease counter %d)", errFenced, key, fence, sh.epoch)
		case fence > sh.epoch:
			sh.log.Warn("the shard's fence is above the lease's counter while the lease is ours: the lease table was created again; setting the fence back",
				zap.String("key", key), zap.Int64("fence", fence), zap.Int64("lease_counter", sh.epoch))
			seen = strconv.FormatInt(fence, 10)
		default: // lowered by another holder's reset meanwhile
			seen = ""
		}
	}
	return fmt.Errorf("%w: %s keeps changing", errFenced, key)
}

// claimFenceDurably is claimFence followed, with Config.WaitReplicas set, by a wait for that many
// replicas (waitReplicas): no user state is read before every write made ahead of the fence — a previous
// owner's last flush, written but never acknowledged by replicas, among them — is on the replicas, so
// the holding period never builds on state a failover could take back. When the wait falls short, the
// fence is claimed again (a failover may have lost it) and waited for again, after a backoff.
func (sh *shardShared) claimFenceDurably(ctx context.Context) error {
	if sh.f.cfg.WaitReplicas == 0 {
		return sh.claimFence(ctx)
	}
	return sh.retry(ctx, "claim the shard's fence durably", func() error {
		if err := sh.claimFence(ctx); err != nil {
			return err
		}
		return sh.waitReplicas(ctx, "fence:"+strconv.FormatInt(sh.epoch, 10))
	})
}

// readFence reads the shard's fence (session.FenceKey; 0 when it is not set).
func (sh *shardShared) readFence(ctx context.Context) (int64, error) {
	key := session.FenceKey(sh.f.cfg.Prefix, sh.shard)
	var fence int64
	err := sh.write(ctx, "read the shard's fence", func(ctx context.Context) error {
		pipe := sh.f.cfg.Redis.Pipeline()
		c := pipe.Get(ctx, key)
		_, _ = pipe.Exec(ctx)
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			fence = 0
			return nil
		}
		if err != nil {
			return fmt.Errorf("GET %s: %w", key, err)
		}
		fence, err = parseFence(key, v)
		return err
	})
	return fence, err
}

// parseFence reads v, the value of the fence key, as a lease counter; anything else is a permanent error
// naming the key (never read as 0: a fence nobody can compare fences nothing).
func parseFence(key, v string) (int64, error) {
	fence, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, retry.Permanent(fmt.Errorf("%s holds %q, not a lease counter: %w", key, v, err))
	}
	return fence, nil
}
