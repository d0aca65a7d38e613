package replicawait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotAcknowledged is wrapped by the error Wait returns when fewer replicas than asked acknowledged
// within the timeout. It is transient: the writes may be acknowledged later, or be lost with the
// primary.
var ErrNotAcknowledged = errors.New("replicawait: fewer replicas acknowledged the writes than required")

// ErrReplica is wrapped by the error Wait returns when the server it reached is a replica (its role
// changed under a failover): transient, unlike the Redis error reply it replaces.
var ErrReplica = errors.New("replicawait: the server is a replica (a failover in progress?)")

// Watcher is the part of a go-redis client Wait uses: Watch runs fn with a transaction object that keeps
// one connection for all its commands (*redis.Client and redis.UniversalClient have it).
type Watcher interface {
	Watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error
}

// Key returns the key Wait writes for a processor of shard under prefix: prefix + "ack:" + shard. Its
// value is informative only (what the caller last made durable).
func Key(prefix, shard string) string { return prefix + "ack:" + shard }

// DefaultTimeout is the wait processors use when their configuration sets none: a few round trips of
// replication under load, well below a lease's failover time.
const DefaultTimeout = 2 * time.Second

// minTimeout is the shortest WAIT Wait sends: WAIT's 0 means forever.
const minTimeout = time.Millisecond

// Wait writes value to key (SET) and then, on the same connection, waits with WAIT until replicas
// replicas acknowledged it, at most timeout (shortened to ctx's deadline, at least 1 ms). It returns
// the number of replicas that acknowledged and nil when that is at least replicas, or an error wrapping
// ErrNotAcknowledged when fewer did, or the Redis or network error. replicas ≤ 0 returns (0, nil)
// without I/O. Safe for concurrent use when rdb is.
//
// Why one write covers the others. A primary has one replication stream; every write command, from any
// connection, is appended to it as it executes, at a growing offset. Redis remembers for each
// connection the offset reached by that connection's last write, and WAIT returns once enough replicas
// acknowledged (REPLCONF ACK) an offset at or beyond it; a replica acknowledges an offset only when it
// has processed the stream up to it. The SET here is sent after the caller's other writes were answered
// — on whichever pooled connections they ran, transactions included — so it lands in the stream after
// them, at a larger offset: a replica that acknowledged the SET holds them all. The SET and the WAIT
// must share a connection (WAIT on another one would see no write of its own and return at once); the
// transaction object pins one, and fails rather than switch to another if it breaks. WAIT is not sent
// inside MULTI (there it does not block).
func Wait(ctx context.Context, rdb Watcher, key, value string, replicas int, timeout time.Duration) (int, error) {
	if replicas <= 0 {
		return 0, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	timeout = max(timeout, minTimeout)
	var acked int64
	err := rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := tx.Set(ctx, key, value, 0).Err(); err != nil {
			return fmt.Errorf("SET %s: %w", key, err)
		}
		n, err := tx.Wait(ctx, replicas, timeout).Result()
		if err != nil {
			if strings.Contains(err.Error(), "WAIT cannot be used with replica") {
				return fmt.Errorf("WAIT %d %d after SET %s: %w", replicas, timeout.Milliseconds(), key, ErrReplica)
			}
			return fmt.Errorf("WAIT %d %d after SET %s: %w", replicas, timeout.Milliseconds(), key, err)
		}
		acked = n
		return nil
	})
	if err != nil {
		return int(acked), err
	}
	if acked < int64(replicas) {
		return int(acked), fmt.Errorf("%w: %d of %d within %s (after SET %s)", ErrNotAcknowledged, acked, replicas, timeout, key)
	}
	return int(acked), nil
}
